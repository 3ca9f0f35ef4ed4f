"""Gradient-outer-product analysis of a run's checkpoint series (`grok-analyze`).

What it reproduces: the measures of Mallinar et al. 2024 (input AGOP: circulant deviation
and AGOP alignment improve before validation accuracy moves), the parameter-gradient outer
products the replication guide asks for (Gram matrix of per-example gradients on a fixed
probe set), and Nanda et al. 2023's Fourier progress measures, on every saved checkpoint
(step 0 and every power of two) of a `grok-train` run.

Command:
  grok-analyze --workdir=runs/RUN                                 # all measures
  grok-analyze --workdir=runs/RUN --config=configs/analysis.py:quick
  grok-analyze --workdir=runs/RUN --config.measures=agop,fourier --config.steps=0,1024,4096

Expected on a 2-core CPU for the default model (2 layers, width 128, x/y mod 97): see the
README section "Analysis" for measured seconds per checkpoint; a run's ~15 checkpoints take
minutes. Analysed checkpoints are cached in RUN/analysis/checkpoints/ and not recomputed.
"""

import ml_collections


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  # Which measures: a comma-separated subset of "agop", "gradients", "fourier".
  config.measures = "agop,gradients,fourier"
  # Which series checkpoints: "all", or comma-separated steps such as "0,256,4096".
  config.steps = "all"
  # Also analyse the newest rolling checkpoint (a run's final weights are usually not at a
  # power of two); it then serves as the "final" checkpoint of the alignment measures.
  config.include_latest = True
  # Seed of the example subsets (AGOP subsample, gradient probe set).
  config.seed = 0

  config.agop = ml_collections.ConfigDict()
  # Examples the AGOP averages over: "train" (as Mallinar et al.) or "all" (every equation).
  config.agop.examples = "train"
  # At most this many of them, a seeded subset; 0 = all. Cost grows linearly.
  config.agop.max_examples = 2048
  # Examples per Jacobian call (m backward passes each).
  config.agop.batch_size = 128
  # Compile the Jacobian with XLA (about 2x faster on CPU).
  config.agop.xla = True
  # How many of the largest eigenvalues to report for each AGOP matrix.
  config.agop.top_eigenvalues = 5
  # How many checkpoints (spread over the analysed ones) get AGOP heatmap images.
  config.agop.heatmaps = 4

  config.gradients = ml_collections.ConfigDict()
  # Probe set: a seeded, fixed subset of training and validation equations.
  config.gradients.train_examples = 256
  config.gradients.validation_examples = 256
  # Examples per per-example-gradient call (memory: batch x parameters floats).
  config.gradients.batch_size = 64
  # How many of the largest eigenvalues of F to report.
  config.gradients.top_eigenvalues = 5

  config.fourier = ml_collections.ConfigDict()
  # Number of key frequencies (largest embedding Fourier norms of the final checkpoint).
  config.fourier.key_frequencies = 5

  if arg == "quick":
    config.agop.max_examples = 512
    config.gradients.train_examples = 64
    config.gradients.validation_examples = 64
  elif arg:
    raise ValueError(f"configs/analysis.py: unknown argument {arg!r}; allowed: quick")
  return config
