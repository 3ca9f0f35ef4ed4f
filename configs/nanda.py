"""Nanda et al. 2023 (arXiv:2301.05217), "Progress measures for grokking": x+y mod 113.

One-layer transformer (width 128, 4 heads, MLP 512, ReLU), 30% of the table for training,
full-batch AdamW lr 1e-3, weight decay 1, constant learning rate after warm-up.
Reported: grokking around 1e4 full-batch updates.

Command:
  grok-train --config=configs/nanda.py
Expected: validation accuracy leaves chance after several thousand full-batch updates
(40,000-update budget, no early stop).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(arg=None):
  del arg
  config = default.get_config()
  config.data.operation = "x+y"
  config.data.modulus = 113
  config.data.training_fraction = 0.3
  config.model.num_layers = 1
  config.optim.full_batch = True
  config.train.num_steps = 40_000
  config.train.early_stop_evals = 0
  return config
