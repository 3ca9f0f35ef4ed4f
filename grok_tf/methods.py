"""Training interventions beyond the paper's recipe, all off by default (`config.methods`).

- The paper's ablations not covered by other fields: Gaussian noise on the update and
  Gaussian weight noise in the forward pass (training only).
- Grokfast (Lee et al. 2024, arXiv:2405.20233): low-pass filter the gradient and add the
  amplified slow component back, g_hat = g + lambda * filter(g), before AdamW. `EmaFilter`
  (alpha, lambda) and `MovingAverageFilter` (window, lambda) keep their state in
  tf.Variables that the rolling checkpoint carries, so resume stays exact.
- OrthoGrad (Prieto et al. 2025, arXiv:2501.04697): `orthogonalize` removes from each
  weight tensor's gradient its component along the weights and restores the gradient's norm.
  (StableMax cross-entropy, from the same paper, is `losses.stablemax_cross_entropy`.)
- `softmax_collapse_fraction(logits)`: the share of examples whose float32 softmax is already
  exactly one-hot, where softmax cross-entropy stops giving a gradient.

Randomness is stateless, keyed by (seed, purpose, step, variable index), so nothing about it
needs saving: a resumed run draws the same noise as an uninterrupted one.

`MethodHooks` bundles everything `train.make_train_steps` calls; with every method off each
hook is a Python-level no-op and the training graph is exactly the paper recipe's.
"""

import tensorflow as tf

# Second words of the stateless noise keys, one per kind of noise.
_WEIGHT_NOISE_KEY = 1
_UPDATE_NOISE_KEY = 2


class EmaFilter(tf.Module):
  """Grokfast-EMA: mu <- alpha * mu + (1 - alpha) * g; returns g + lambda * mu.

  As in the reference implementation, the average starts at the first gradient (mu_0 = g_0).
  A step with a non-finite gradient (a skipped mixed_float16 step) leaves the state unchanged.

  Args:
    variables: the trained variables; one average of each variable's shape is kept.
    alpha: the EMA momentum in [0, 1) (0.98 in the paper).
    lamb: the amplification lambda >= 0 (2 in the paper).
  """

  def __init__(self, variables, alpha: float, lamb: float):
    super().__init__(name="grokfast_ema")
    self.alpha = alpha
    self.lamb = lamb
    self.averages = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                                 name=f"ema_{i}") for i, v in enumerate(variables)]
    self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")

  def apply(self, gradients):
    """Filters one step's gradients (a list matching `variables`); returns the new list."""
    first = tf.equal(self.count, 0)
    finite = _all_finite(gradients)
    filtered = []
    for average, gradient in zip(self.averages, gradients):
      updated = tf.where(first, gradient,
                         self.alpha * average + (1.0 - self.alpha) * gradient)
      average.assign(tf.where(finite, updated, average))
      filtered.append(gradient + self.lamb * updated)
    self.count.assign_add(tf.cast(finite, tf.int64))
    return filtered


class MovingAverageFilter(tf.Module):
  """Grokfast-MA: returns g + lambda * mean(last `window` gradients) once `window` gradients
  have been seen, and g unchanged before that (the reference's warm-up).

  The last gradients live in a ring buffer of shape (window, *variable shape) per variable.
  A step with a non-finite gradient (a skipped mixed_float16 step) leaves the state unchanged.

  Args:
    variables: the trained variables.
    window: the number of gradients averaged (100 in the paper).
    lamb: the amplification lambda >= 0 (5 in the paper).
  """

  def __init__(self, variables, window: int, lamb: float):
    super().__init__(name="grokfast_ma")
    self.window = window
    self.lamb = lamb
    self.buffers = [tf.Variable(tf.zeros([window, *v.shape], v.dtype), trainable=False,
                                name=f"window_{i}") for i, v in enumerate(variables)]
    self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")

  def apply(self, gradients):
    """Filters one step's gradients (a list matching `variables`); returns the new list."""
    slot = self.count % self.window
    full = self.count + 1 >= self.window
    finite = _all_finite(gradients)
    filtered = []
    for buffer, gradient in zip(self.buffers, gradients):
      kept = tf.where(finite, gradient, tf.gather(buffer, slot))
      buffer.scatter_nd_update(tf.reshape(slot, [1, 1]), kept[tf.newaxis])
      mean = tf.reduce_mean(buffer, axis=0)  # (*variable shape)
      filtered.append(tf.where(full, gradient + self.lamb * mean, gradient))
    self.count.assign_add(tf.cast(finite, tf.int64))
    return filtered


def _all_finite(tensors):
  """Scalar bool: no NaN or Inf in any of `tensors`."""
  return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def orthogonalize(gradients, variables, epsilon: float = 1e-30):
  """OrthoGrad: per tensor, g_perp = g - (w.g / w.w) w, rescaled to the norm of g.

  Args:
    gradients: list of gradient tensors, one per variable.
    variables: the matching weights.
    epsilon: added to denominators (the reference's 1e-30) so zero weights pass g through.

  Returns:
    The list of perpendicular gradients, each with its input's shape and norm.
  """
  result = []
  for gradient, variable in zip(gradients, variables):
    w = tf.cast(tf.reshape(variable, [-1]), gradient.dtype)
    g = tf.reshape(gradient, [-1])
    projection = tf.reduce_sum(w * g) / (tf.reduce_sum(w * w) + epsilon)
    perpendicular = g - projection * w
    scale = tf.norm(g) / (tf.norm(perpendicular) + epsilon)
    result.append(tf.reshape(perpendicular * scale, tf.shape(gradient)))
  return result


def noise_seed(seed: int, purpose: int, step, index: int):
  """(2,) int64 stateless seed for one variable's noise at one step."""
  base = tf.constant([seed, purpose], tf.int64)
  folded = tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64))
  return tf.random.experimental.stateless_fold_in(folded, index)


def gaussian_noise(variables, std, seed: int, purpose: int, step):
  """One N(0, std^2) tensor per variable, a pure function of (seed, purpose, step)."""
  return [tf.random.stateless_normal(v.shape, noise_seed(seed, purpose, step, i),
                                     stddev=tf.cast(std, v.dtype), dtype=v.dtype)
          for i, v in enumerate(variables)]


def softmax_collapse(logits):
  """(batch,) bool: at every answer position the float32 softmax's largest probability is
  exactly 1.0, so softmax cross-entropy gives this example (numerically) no gradient.

  Args:
    logits: (batch, positions, vocabulary).
  """
  probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
  return tf.reduce_all(tf.equal(tf.reduce_max(probabilities, axis=-1), 1.0), axis=-1)


def softmax_collapse_fraction(logits):
  """Scalar float32: the share of the batch whose softmax has collapsed to one-hot."""
  return tf.reduce_mean(tf.cast(softmax_collapse(logits), tf.float32))


class MethodHooks:
  """The configured interventions, as the hooks the training step calls.

  Args:
    methods_config: `config.methods`.
    variables: the trained variables (the model's `trainable_variables`).
    seed: the run's seed, the first word of every noise key.
  """

  def __init__(self, methods_config, variables, seed: int):
    self.config = methods_config
    self.variables = variables
    self.seed = seed
    self.filter = None
    if methods_config.grokfast == "ema":
      self.filter = EmaFilter(variables, methods_config.grokfast_alpha,
                              methods_config.grokfast_lambda)
    elif methods_config.grokfast == "ma":
      self.filter = MovingAverageFilter(variables, methods_config.grokfast_window,
                                        methods_config.grokfast_lambda)

  @property
  def state(self) -> dict:
    """{name: trackable} the rolling checkpoint must carry (empty with no filter)."""
    return {"grokfast": self.filter} if self.filter is not None else {}

  def perturb_weights(self, step):
    """Adds N(0, weight_noise_std^2) to every weight for one forward pass.

    Returns:
      The clean weight values for `restore_weights`, or None when weight noise is off.
    """
    if not self.config.weight_noise_std:
      return None
    clean = [tf.identity(v) for v in self.variables]
    noise = gaussian_noise(self.variables, self.config.weight_noise_std, self.seed,
                           _WEIGHT_NOISE_KEY, step)
    for variable, value, n in zip(self.variables, clean, noise):
      variable.assign(value + n)
    return clean

  def restore_weights(self, clean) -> None:
    """Puts back the exact weights `perturb_weights` saved (the gradient was taken at the
    noisy point and is applied to the clean one)."""
    if clean is not None:
      for variable, value in zip(self.variables, clean):
        variable.assign(value)

  def transform_gradients(self, gradients):
    """The Grokfast filter, then OrthoGrad (each only when configured). Sparse gradients
    (the embedding's IndexedSlices) are made dense first: the filters mix steps."""
    if self.filter is not None or self.config.orthograd:
      gradients = [tf.convert_to_tensor(g) for g in gradients]
    if self.filter is not None:
      gradients = self.filter.apply(gradients)
    if self.config.orthograd:
      gradients = orthogonalize(gradients, self.variables)
    return gradients

  def add_update_noise(self, step, learning_rate) -> None:
    """After the optimizer's update: w <- w + learning_rate * N(0, update_noise_std^2), i.e.
    noise on the (roughly unit-scale) Adam update direction."""
    if not self.config.update_noise_std:
      return
    std = tf.cast(learning_rate, tf.float32) * self.config.update_noise_std
    noise = gaussian_noise(self.variables, std, self.seed, _UPDATE_NOISE_KEY, step)
    for variable, n in zip(self.variables, noise):
      variable.assign_add(n)
