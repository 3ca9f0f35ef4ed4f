"""The paper's claims on small seeded instances: it groks, late; and every dtype policy trains."""

import math
import os

import pytest

from grok_tf import logs
from grok_tf import train
from conftest import load_config


@pytest.mark.slow
def test_small_modulus_groks_long_after_memorising(tmp_path):
  """configs/tiny.py: x+y mod 31, 70%, weight decay 1 (about a minute of CPU)."""
  summary = train.train_and_evaluate(load_config("tiny"), str(tmp_path / "run"))
  assert summary["best_validation_accuracy"] >= 0.99
  assert summary["step_train_99"] is not None and summary["step_validation_99"] is not None
  # The grokking delay: validation reaches 99% several times later than training did.
  assert summary["step_validation_99"] >= 3 * summary["step_train_99"]


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_policies_train(tmp_path, policy):
  config = load_config("default", "smoke")
  config.train.dtype_policy = policy
  config.train.num_steps = 32
  workdir = str(tmp_path / policy)
  summary = train.train_and_evaluate(config, workdir)
  assert summary["final_step"] == 32
  losses = [row["train/loss"] for row in logs.read_rows(os.path.join(workdir, "metrics.jsonl"))]
  assert all(math.isfinite(loss) for loss in losses)
  assert losses[-1] < 0.8 * losses[0]  # it learns: the training loss falls by a fifth
