"""Which operations generalise: every operation of the catalog at a fixed budget.

Power et al. 2022, figure 4 (the minimal training fraction per operation) in the form a CPU
budget allows: the best validation accuracy after at most 3,000 updates with 70% of each
table, with the recipe of configs/default.py (mod 97; the S5 operations use their 120 x 120
table). 17 runs; add fractions to the grid for the paper's full picture.

Command:
  grok-sweep --sweep=configs/sweep_operations.py --local=2    # ~25 minutes on 2 CPU cores
  grok-aggregate --sweep_dir=sweeps/operations                # table + figures

Expected (paper): symmetric operations (x+y, x*y, x^2+y^2, x^2+xy+y^2) generalise from less
data than asymmetric ones; x-y and x/y need about the same fraction; x^3+xy^2+y does not
generalise at any fraction within 1e5 updates.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from grok_tf import operations  # pylint: disable=g-import-not-at-top,wrong-import-position


def get_config(arg=None):
  sweep = ml_collections.ConfigDict()
  # Sweep name: default directory sweeps/<name>, SLURM job name grok-<name>.
  sweep.name = "operations"
  # Run config of every point, FILE[:ARG] relative to this directory.
  sweep.base = "default.py"
  # Grid: run-config fields -> tuple of values; every combination is one run.
  sweep.grid = ml_collections.ConfigDict()
  sweep.grid.data = ml_collections.ConfigDict()
  # Every operation of the catalog.
  sweep.grid.data.operation = tuple(operations.OPERATIONS)
  sweep.grid.data.training_fraction = (0.7,)
  sweep.grid.seed = (0,)
  # Set in every point: the budget.
  sweep.fixed = ml_collections.ConfigDict()
  sweep.fixed.train = ml_collections.ConfigDict()
  sweep.fixed.train.num_steps = 3000

  if arg == "smoke":
    sweep.name = "operations_smoke"
    sweep.base = "default.py:smoke"
    sweep.grid.data.operation = ("x+y", "x.y")
    sweep.grid.data.training_fraction = (0.5,)
    sweep.fixed.train.num_steps = 32
  elif arg:
    raise ValueError(f"configs/sweep_operations.py: unknown argument {arg!r}; allowed: smoke")
  return sweep
