"""The training-fraction sweep: steps to 99% validation accuracy against training fraction.

Power et al. 2022, figure 1 (centre): x+y, x-y and x/y mod 97 trained on 10%, 30%, 50%, 70%
and 90% of the table, with the recipe of configs/default.py (AdamW, weight decay 1, 1e5
updates at most; a run stops once validation accuracy has held >= 99% for 5 evaluations).
15 runs, one SLURM job array.

Command:
  grok-sweep --sweep=configs/sweep_fraction.py --dry-run          # the 15 points, no submission
  grok-sweep --sweep=configs/sweep_fraction.py --max_concurrent=8 # submit the job array
  grok-sweep --sweep=configs/sweep_fraction.py --local=2          # no SLURM: 2 runs at a time
  grok-aggregate --sweep_dir=sweeps/fraction                      # table + figure
  grok-sweep --sweep=configs/sweep_fraction.py:smoke --local=1    # 3 tiny runs, ~10 s each
  grok-sweep --sweep=configs/sweep_fraction.py:cpu --local=2      # the replication's CPU budget

Expected (paper): the steps needed grow steeply as the fraction shrinks, and below a
task-dependent fraction nothing generalises within 1e5 updates; x-y and x/y need about the
same fraction, the symmetric x+y less. A run that never
generalises trains the whole budget: about 2 hours on 2 CPU cores.
"""

import ml_collections


def get_config(arg=None):
  sweep = ml_collections.ConfigDict()
  # Sweep name: default directory sweeps/<name>, SLURM job name grok-<name>.
  sweep.name = "fraction"
  # Run config of every point, FILE[:ARG] relative to this directory.
  sweep.base = "default.py"
  # Grid: run-config fields -> tuple of values; every combination is one run.
  sweep.grid = ml_collections.ConfigDict()
  sweep.grid.data = ml_collections.ConfigDict()
  # Operation names from grok_tf.operations.OPERATIONS.
  sweep.grid.data.operation = ("x+y", "x-y", "x/y")
  # Fraction of the table used for training.
  sweep.grid.data.training_fraction = (0.1, 0.3, 0.5, 0.7, 0.9)
  # Seeds of the initialisation and data order; add more to get error bars.
  sweep.grid.seed = (0,)

  if arg == "cpu":
    # docs/replication.md: 30-90% with an 8,000-update budget (a run that does not
    # generalise costs ~10 minutes on one of two CPU cores instead of ~2 hours).
    sweep.name = "fraction_cpu"
    sweep.grid.data.training_fraction = (0.3, 0.4, 0.5, 0.7, 0.9)
    sweep.fixed = ml_collections.ConfigDict()
    sweep.fixed.train = ml_collections.ConfigDict()
    sweep.fixed.train.num_steps = 8000
  elif arg == "smoke":
    sweep.name = "fraction_smoke"
    sweep.base = "default.py:smoke"
    sweep.grid.data.operation = ("x+y",)
    sweep.grid.data.training_fraction = (0.3, 0.5, 0.7)
  elif arg:
    raise ValueError(f"configs/sweep_fraction.py: unknown argument {arg!r}; allowed: cpu, smoke")
  return sweep
