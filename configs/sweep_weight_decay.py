"""The weight-decay ablation: x/y mod 97 with AdamW weight decay 0 against 1.

Power et al. 2022, the regularisation ablations (weight decay helps generalisation
most): steps to 99% validation accuracy against training fraction (30%, 50%, 70%) with
weight decay 0 and 1, otherwise the recipe of configs/default.py. 6 runs, one job array.

Command:
  grok-sweep --sweep=configs/sweep_weight_decay.py --dry-run
  grok-sweep --sweep=configs/sweep_weight_decay.py
  grok-aggregate --sweep_dir=sweeps/weight_decay
  grok-sweep --sweep=configs/sweep_weight_decay.py:cpu --local=2  # the replication's runs

Expected (paper): weight decay 1 beats no weight decay at a fixed budget: with 1, x/y at
50% generalises within a few thousand updates; with 0 much later or not within the 1e5
updates (about 2 hours per run on 2 CPU cores).
"""

import ml_collections


def get_config(arg=None):
  sweep = ml_collections.ConfigDict()
  # Sweep name: default directory sweeps/<name>, SLURM job name grok-<name>.
  sweep.name = "weight_decay"
  # Run config of every point, FILE[:ARG] relative to this directory.
  sweep.base = "default.py"
  # Grid: run-config fields -> tuple of values; every combination is one run.
  sweep.grid = ml_collections.ConfigDict()
  sweep.grid.optim = ml_collections.ConfigDict()
  # Decoupled AdamW weight decay.
  sweep.grid.optim.weight_decay = (0.0, 1.0)
  sweep.grid.data = ml_collections.ConfigDict()
  # Fraction of the table used for training.
  sweep.grid.data.training_fraction = (0.3, 0.5, 0.7)
  # Seeds of the initialisation and data order.
  sweep.grid.seed = (0,)
  if arg == "cpu":
    # docs/replication.md: 50% only, both runs trained 10,000 updates without early stop,
    # so their curves compare at the same budget (and weight decay 1 is the headline run),
    # with the progress measures logged at every evaluation.
    sweep.name = "weight_decay_cpu"
    sweep.grid.data.training_fraction = (0.5,)
    sweep.fixed = ml_collections.ConfigDict()
    sweep.fixed.train = ml_collections.ConfigDict()
    sweep.fixed.train.num_steps = 10_000
    sweep.fixed.train.early_stop_evals = 0
    sweep.fixed.eval = ml_collections.ConfigDict()
    sweep.fixed.eval.progress_measures = True
  elif arg:
    raise ValueError(f"configs/sweep_weight_decay.py: unknown argument {arg!r}; allowed: cpu")
  return sweep
