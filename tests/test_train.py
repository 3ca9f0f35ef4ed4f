"""The real training entry point on the smoke config: what it writes, and what reads it."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from grok_tf import checkpoints
from grok_tf import logs
from conftest import REPO

EXPECTED_TAGS = {"train/loss", "train/accuracy", "validation/loss", "validation/accuracy",
                 "optim/learning_rate", "optim/grad_norm", "weights/norm",
                 "weights/norm_embedding", "weights/norm_block_0", "weights/norm_unembedding"}


def _grok_train(*args, cwd=REPO):
  return subprocess.run([os.path.join(os.path.dirname(sys.executable), "grok-train"), *args],
                        cwd=cwd, capture_output=True, text=True, timeout=300,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_smoke_run_writes_config_split_metrics_and_curve(smoke_run):
  workdir, config, summary = smoke_run
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f) == json.loads(config.to_json())
  split = np.load(os.path.join(workdir, "split.npz"))
  assert len(split["train_indices"]) + len(split["validation_indices"]) == 23 * 23
  rows = logs.read_rows(os.path.join(workdir, "metrics.jsonl"))
  assert [r["step"] for r in rows][:11] == list(range(11)) and rows[-1]["step"] == 64
  assert EXPECTED_TAGS <= set(rows[-1])
  assert summary["final_step"] == 64
  assert rows[-1]["train/accuracy"] > rows[0]["train/accuracy"]
  with open(os.path.join(workdir, "curves.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_checkpoints_at_zero_and_powers_of_two(smoke_run):
  workdir, _, _ = smoke_run
  assert [step for step, _ in checkpoints.series(workdir)] == [0, 1, 2, 4, 8, 16, 32, 64]
  assert checkpoints.latest(workdir)[0] == 64


def test_tensorboard_events_read_back(smoke_run):
  workdir, _, _ = smoke_run
  accumulator = event_accumulator.EventAccumulator(
      os.path.join(workdir, "tensorboard"), size_guidance={"tensors": 0})
  accumulator.Reload()
  assert EXPECTED_TAGS <= set(accumulator.Tags()["tensors"])
  rows = logs.read_rows(os.path.join(workdir, "metrics.jsonl"))
  events = accumulator.Tensors("validation/accuracy")
  assert [e.step for e in events] == [r["step"] for r in rows]
  np.testing.assert_allclose([float(tf.make_ndarray(e.tensor_proto)) for e in events],
                             [r["validation/accuracy"] for r in rows], rtol=1e-6)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_tensorboard_server_serves_the_scalar_tags(smoke_run):
  workdir, _, _ = smoke_run
  port = _free_port()
  server = subprocess.Popen(
      [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir",
       os.path.join(workdir, "tensorboard"), "--host", "127.0.0.1", "--port", str(port)],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    tags = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not tags:
      time.sleep(1)
      try:
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/tags"
        tags = json.load(urllib.request.urlopen(url, timeout=5))
      except OSError:
        continue
    assert EXPECTED_TAGS <= set(tags["."])
  finally:
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.slow
def test_cli_shorthand_flags_and_rerun_of_a_finished_workdir(tmp_path):
  workdir = str(tmp_path / "run")
  args = ["--config=configs/default.py:smoke", f"--workdir={workdir}", "--operation=x-y",
          "--prime=11", "--training_fraction=0.6", "--weight_decay=0.5",
          "--config.train.num_steps=20"]
  result = _grok_train(*args)
  assert result.returncode == 0, result.stderr
  assert "tensorboard --logdir" in result.stdout
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  assert saved["data"]["operation"] == "x-y" and saved["data"]["modulus"] == 11
  assert saved["data"]["training_fraction"] == 0.6 and saved["optim"]["weight_decay"] == 0.5
  assert saved["train"]["num_steps"] == 20
  rows = logs.read_rows(os.path.join(workdir, "metrics.jsonl"))
  again = _grok_train(*args)
  assert again.returncode == 0, again.stderr
  assert logs.read_rows(os.path.join(workdir, "metrics.jsonl")) == rows


def test_grok_plot_draws_any_workdir(smoke_run, tmp_path):
  workdir, _, _ = smoke_run
  output = str(tmp_path / "curve.png")
  result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "grok-plot"),
                           f"--workdir={workdir}", f"--output={output}"],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  assert os.path.getsize(output) > 10_000


def test_progress_measures_during_training(tmp_path):
  from grok_tf import train  # pylint: disable=import-outside-toplevel
  from conftest import load_config  # pylint: disable=import-outside-toplevel
  config = load_config("default", "smoke")
  config.train.num_steps = 8
  config.eval.progress_measures = True
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  rows = logs.read_rows(os.path.join(workdir, "metrics.jsonl"))
  assert all(0 <= row["progress/fourier_gini"] < 1 for row in rows)
  squared = [row["progress/sum_squared_weights"] for row in rows]
  assert squared[0] > 0 and squared[-1] != squared[0]
