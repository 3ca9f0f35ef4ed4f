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


@keras.saving.register_keras_serializable(package="grok_tf")
class FusedAdamW(keras.optimizers.AdamW):
  """Keras AdamW's update in a few kernels per variable.

  Keras recomputes the learning-rate schedule and the bias corrections for every variable
  and applies Adam as separate element-wise ops: 94 of the paper's step's 498 kernels, even
  after TensorFlow's graph optimizer has merged the repeated scalars (this class: 34). Here
  the step's scalars are computed once, each variable is decayed (w <- w - lr * wd * w,
  before the Adam update, as Keras does) and then updated by TensorFlow's fused Adam kernel,
  which evaluates Keras's formula:
    m <- m + (g - m)(1 - beta_1);  v <- v + (g^2 - v)(1 - beta_2)
    w <- w - lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon).
  Same variables, state and checkpoints as keras.optimizers.AdamW; amsgrad is not supported.
  """

  def __init__(self, *args, amsgrad=False, **kwargs):
    if amsgrad:
      raise ValueError("FusedAdamW: amsgrad=True is not supported; use keras.optimizers.AdamW")
    super().__init__(*args, **kwargs)

  def _apply_weight_decay(self, variables):
    del variables  # applied in _backend_update_step, just before each variable's update

  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    learning_rate = tf.cast(learning_rate, tf.float32)
    step = tf.cast(self.iterations + 1, tf.float32)
    beta_1, beta_2 = tf.constant(self.beta_1, tf.float32), tf.constant(self.beta_2, tf.float32)
    beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
    epsilon = tf.constant(self.epsilon, tf.float32)
    decay = learning_rate * self.weight_decay if self.weight_decay else None
    for gradient, variable in zip(grads, trainable_variables):
      index = self._get_variable_index(variable)
      decays = decay is not None and self._use_weight_decay(variable)
      if isinstance(variable, keras.Variable):
        variable = variable.value  # the tf.Variable, as Keras's own update step uses
      if decays:
        variable.assign_sub(variable * decay)
      tf.raw_ops.ResourceApplyAdam(
          var=variable.handle, m=self._momentums[index].handle,
          v=self._velocities[index].handle, beta1_power=beta_1_power,
          beta2_power=beta_2_power, lr=learning_rate, beta1=beta_1, beta2=beta_2,
          epsilon=epsilon, grad=tf.cast(gradient, tf.float32))


def make_optimizer(optim_config, num_steps: int, dtype_policy: str = "float32"):
  """AdamW (`FusedAdamW`) with every hyperparameter set from the config (Keras defaults
  differ).

  Weight decay toward zero is AdamW's own decoupled decay (w <- w - lr * wd * w, before the
  Adam update, on every variable). For decay toward the initial weights the optimizer's
  decay is off and `decay_toward` applies w <- w - lr * wd * (w - w0) instead.
  Under mixed_float16 the optimizer is wrapped in a dynamic `LossScaleOptimizer`.
  """
  toward_zero = optim_config.weight_decay_target == "zero"
  optimizer = FusedAdamW(
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
