"""Shared test fixtures: config loading and one trained smoke run per session."""

import importlib.util
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def load_config(name: str, arg=None):
  """`get_config(arg)` of configs/<name>.py, loaded the way ml_collections loads it."""
  spec = importlib.util.spec_from_file_location(f"grok_config_{name}", CONFIGS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
  """(workdir, config, summary) of one `train_and_evaluate` on configs/default.py:smoke."""
  from grok_tf import train  # pylint: disable=import-outside-toplevel
  config = load_config("default", "smoke")
  workdir = str(tmp_path_factory.mktemp("smoke") / "run")
  summary = train.train_and_evaluate(config, workdir)
  return workdir, config, summary
