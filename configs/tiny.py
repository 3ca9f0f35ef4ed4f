"""Grokking in under a minute: x+y mod 31, 70% of the table, a 1-layer width-64 model.

The smallest instance in this repo that shows the paper's effect on a CPU: training accuracy
reaches 99% around step 220, validation accuracy stays low for several hundred more updates
and reaches 99% around step 1,100 (seed 0, measured here: steps 224 and 1,122, a 5x delay;
1,000 with train.batch_shards=1, whose float rounding differs). Full-batch
AdamW with learning rate 3e-3 and weight decay 1; stops once validation accuracy has held
>= 99% for 3 evaluations. The science tests and the analysis tests train this config.

Command:
  grok-train --config=configs/tiny.py
Expected: ~1,600 updates (the early stop), under 10 s of training on a 2-core CPU.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(arg=None):
  del arg
  config = default.get_config()
  config.data.operation = "x+y"
  config.data.modulus = 31
  config.data.training_fraction = 0.7
  config.model.num_layers = 1
  config.model.width = 64
  config.model.hidden_width = 256
  config.optim.learning_rate = 3e-3
  config.optim.full_batch = True
  config.train.num_steps = 3000
  config.train.steps_per_call = 100
  config.train.early_stop_evals = 3
  config.eval.every_steps = 50
  config.checkpoint.every_steps = 500
  return config
