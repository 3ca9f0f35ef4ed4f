"""The paper's main experiment: x/y mod 97, 50% of the table for training, AdamW wd 1.

Power et al. 2022, figure 1 with the appendix recipe (2-layer transformer, width 128, AdamW
lr 1e-3, betas 0.9/0.98, weight decay 1, 10-step warm-up, batch 512). Training accuracy
reaches 99% within a few hundred steps; validation accuracy stays near chance, then jumps to
99% a few thousand steps later (the grokking delay). Unlike the paper presets in
`configs/paper.py`, this one stops early once validation accuracy has held >= 99% for
5 evaluations, so the command below finishes in minutes.

Command:
  grok-train                                     # same as --config=configs/default.py
  grok-train --config=configs/default.py:smoke   # a 1-layer model on x+y mod 23, seconds

Expected on a 2-core CPU (float32, seed 0, measured): training accuracy >= 99% at step 562,
validation accuracy >= 99% at step 3,300 after 77 s (seeds 1 and 2: 3,800 and 3,600 steps,
85 and 84 s); the early stop comes 5 evaluations (~400 updates) later.
"""

import ml_collections


def get_config(arg=None):
  config = ml_collections.ConfigDict()
  # Seed of the initial weights, the data order and dropout.
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # Operation name from grok_tf.operations.OPERATIONS, e.g. "x+y", "x/y", "x.y" (S5).
  config.data.operation = "x/y"
  # Modulus p of the modular operations (prime where an inverse is needed); unused on S5.
  config.data.modulus = 97
  # Fraction of all equations used for training, in (0, 1); the rest validate.
  config.data.training_fraction = 0.5
  # Seed of the train/validation split (separate from `seed`, so seeds can vary per split).
  config.data.split_seed = 0
  # Number of training equations whose answer is replaced by a random wrong one.
  config.data.label_noise_count = 0

  config.model = ml_collections.ConfigDict()
  # Decoder blocks.
  config.model.num_layers = 2
  # Model width d (embedding and residual stream).
  config.model.width = 128
  # Attention heads; width must be divisible by it.
  config.model.num_heads = 4
  # Feed-forward inner width.
  config.model.hidden_width = 512
  # Feed-forward activation: "relu" or "gelu".
  config.model.activation = "relu"
  # Residual dropout rate (training only).
  config.model.dropout_rate = 0.0

  config.optim = ml_collections.ConfigDict()
  # Peak learning rate.
  config.optim.learning_rate = 1e-3
  # Adam first- and second-moment decay rates and epsilon.
  config.optim.beta_1 = 0.9
  config.optim.beta_2 = 0.98
  config.optim.epsilon = 1e-8
  # Decoupled weight decay: w <- w - lr * weight_decay * (w - target) each update.
  config.optim.weight_decay = 1.0
  # Decay target: "zero" (AdamW) or "init" (toward the initial weights).
  config.optim.weight_decay_target = "zero"
  # Updates of linear learning-rate warm-up (update 0 has learning rate 0).
  config.optim.warmup_steps = 10
  # After warm-up: "constant", or "cosine" down to cosine_final_fraction * lr at num_steps.
  config.optim.schedule = "constant"
  config.optim.cosine_final_fraction = 0.1
  # Largest batch; the batch is min(batch_size, ceil(train size / 2)) as in the paper.
  config.optim.batch_size = 512
  # Use the whole training set as every batch instead.
  config.optim.full_batch = False
  # Training loss: "softmax" cross-entropy (the paper) or "stablemax" (Prieto et al. 2025).
  config.optim.loss = "softmax"

  # Interventions beyond the paper's recipe (grok_tf/methods.py), all off by default.
  config.methods = ml_collections.ConfigDict()
  # Grokfast gradient filter before AdamW: "none", "ema" or "ma" (moving average).
  config.methods.grokfast = "none"
  # Grokfast-EMA momentum alpha: mu <- alpha * mu + (1 - alpha) * g.
  config.methods.grokfast_alpha = 0.98
  # Grokfast amplification lambda: g_hat = g + lambda * filtered g (paper: 2 EMA, 5 MA).
  config.methods.grokfast_lambda = 2.0
  # Grokfast-MA window: number of most recent gradients averaged (updates).
  config.methods.grokfast_window = 100
  # OrthoGrad: remove each weight tensor's gradient component along the weights, keep norm.
  config.methods.orthograd = False
  # Paper ablation: after each update w <- w + lr * N(0, std^2) (noise on the update
  # direction, relative to Adam's unit-scale step); 0 disables.
  config.methods.update_noise_std = 0.0
  # Paper ablation: Gaussian weight noise std in the training forward pass (paper: 0.01);
  # the gradient at the noisy weights updates the clean ones; 0 disables.
  config.methods.weight_noise_std = 0.0

  config.train = ml_collections.ConfigDict()
  # Budget of optimizer updates (the paper: 1e5).
  config.train.num_steps = 100_000
  # Keras dtype policy: "float32", "mixed_bfloat16" or "mixed_float16" (with loss scaling).
  config.train.dtype_policy = "float32"
  # Most training updates per compiled call. Evaluations and checkpoints fall between
  # calls, and a stop signal is acted on at the end of the current call (~2 s here).
  config.train.steps_per_call = 25
  # Each batch is cut into this many near-equal shards whose forward and backward passes run
  # side by side, one core each, and whose gradients are summed: the same loss and
  # gradients as one pass over the batch, up to float rounding. On this 2-core CPU 2 shards
  # took the paper's step from 27 to 34 steps/s (float32); 1 is the plain one-pass step.
  config.train.batch_shards = 2
  # Compile the training step with XLA.
  config.train.xla = False
  # TensorFlow op determinism: identical results for identical seeds.
  config.train.deterministic = True
  # Stop once validation accuracy >= early_stop_accuracy for early_stop_evals evaluations
  # in a row; early_stop_evals = 0 trains the whole budget.
  config.train.early_stop_accuracy = 0.99
  config.train.early_stop_evals = 5

  config.eval = ml_collections.ConfigDict()
  # Full train and validation sets are evaluated at every step up to 10, at
  # points_per_decade log-spaced steps per decade, and every every_steps updates.
  config.eval.every_steps = 100
  config.eval.points_per_decade = 20
  # Examples per evaluation forward pass.
  config.eval.batch_size = 2048
  # Also log the analysis measures that need no data at every evaluation: the Gini
  # coefficient of the residue embeddings' Fourier norms (x+y, x-y, x*y, x/y) and the sum
  # of squared weights (`progress/...` tags). The full analysis is `grok-analyze`.
  config.eval.progress_measures = False

  config.checkpoint = ml_collections.ConfigDict()
  # Updates between rolling checkpoints for resuming (the series at step 0 and every
  # power of two is always kept for analysis).
  config.checkpoint.every_steps = 1000

  if arg == "smoke":
    config.data.operation = "x+y"
    config.data.modulus = 23
    config.model.num_layers = 1
    config.model.width = 32
    config.model.hidden_width = 128
    config.optim.full_batch = True
    config.train.num_steps = 64
    config.train.steps_per_call = 100
    config.train.early_stop_evals = 0
    config.eval.every_steps = 16
    config.checkpoint.every_steps = 32
  elif arg:
    raise ValueError(f"configs/default.py: unknown argument {arg!r}; allowed: smoke")
  return config
