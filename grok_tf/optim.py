"""AdamW with the paper's learning-rate schedule and weight-decay forms."""

import math

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="grok_tf")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `learning_rate` over `warmup_steps` updates, then constant or cosine.

  As in the original code, update s (0-based) gets lr * min(1, s / warmup_steps), so the very
  first update has learning rate 0. With `decay_steps` > 0 the rate then follows a cosine
  from `learning_rate` down to `final_fraction * learning_rate` at `decay_steps`.
  """

  def __init__(self, learning_rate, warmup_steps, decay_steps=0, final_fraction=0.1):
    self.learning_rate = learning_rate
    self.warmup_steps = warmup_steps
    self.decay_steps = decay_steps
    self.final_fraction = final_fraction

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warmup = (tf.minimum(1.0, step / self.warmup_steps) if self.warmup_steps > 0
              else tf.constant(1.0))
    if self.decay_steps <= 0:
      return self.learning_rate * warmup
    progress = tf.minimum(step, self.decay_steps) / self.decay_steps
    cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
    return self.learning_rate * warmup * (self.final_fraction + (1 - self.final_fraction) * cosine)

  def get_config(self):
    return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps, "final_fraction": self.final_fraction}


def make_schedule(optim_config, num_steps: int) -> WarmupSchedule:
  return WarmupSchedule(optim_config.learning_rate, optim_config.warmup_steps,
                        num_steps if optim_config.schedule == "cosine" else 0,
                        optim_config.cosine_final_fraction)


def make_optimizer(optim_config, num_steps: int, dtype_policy: str = "float32"):
  """Keras AdamW with every hyperparameter set from the config (Keras defaults differ).

  Weight decay toward zero is AdamW's own decoupled decay (w <- w - lr * wd * w, before the
  Adam update, on every variable). For decay toward the initial weights the optimizer's
  decay is off and `decay_toward` applies w <- w - lr * wd * (w - w0) instead.
  Under mixed_float16 the optimizer is wrapped in a dynamic `LossScaleOptimizer`.
  """
  toward_zero = optim_config.weight_decay_target == "zero"
  optimizer = keras.optimizers.AdamW(
      learning_rate=make_schedule(optim_config, num_steps),
      weight_decay=optim_config.weight_decay if toward_zero else 0.0,
      beta_1=optim_config.beta_1, beta_2=optim_config.beta_2, epsilon=optim_config.epsilon)
  if dtype_policy == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def decay_toward(variables, targets, rate):
  """Decoupled decay toward `targets`: v <- v - rate * (v - target), rate = lr * wd."""
  for variable, target in zip(variables, targets):
    variable.assign_sub(tf.cast(rate, variable.dtype) * (variable - target))
