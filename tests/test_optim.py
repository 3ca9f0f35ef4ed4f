"""AdamW against a hand-computed decoupled step, and the learning-rate schedule."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from grok_tf import optim
from conftest import load_config


def _hand_adamw(w, w0, grads, lr, wd, b1, b2, eps, target):
  """Decoupled AdamW as the paper states it, over successive gradients (float64)."""
  m = np.zeros_like(w)
  v = np.zeros_like(w)
  for t, g in enumerate(grads, start=1):
    w = w - lr * wd * (w - (w0 if target == "init" else 0.0))
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
  return w


@pytest.mark.parametrize("target", ["zero", "init"])
def test_adamw_steps_equal_hand_computation(target):
  config = load_config("default").optim
  config.warmup_steps = 0
  config.weight_decay = 0.5
  config.weight_decay_target = target
  w0 = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
  variable = tf.Variable(w0)
  initial = [tf.constant(w0)]
  optimizer = optim.make_optimizer(config, num_steps=100)
  optimizer.build([variable])
  rng = np.random.default_rng(0)
  grads = [rng.normal(size=4).astype(np.float32) for _ in range(3)]
  for g in grads:
    if target == "init":
      optim.decay_toward([variable], initial, optimizer.learning_rate * config.weight_decay)
    optimizer.apply([tf.constant(g)], [variable])
  # Keras folds the bias corrections into the step size, lr * sqrt(1 - b2^t) / (1 - b1^t) *
  # m / (sqrt(v) + eps): the paper's form up to where eps = 1e-8 enters, below float32
  # precision here.
  expected = _hand_adamw(w0.astype(np.float64), w0, grads, config.learning_rate,
                         config.weight_decay, config.beta_1, config.beta_2, config.epsilon,
                         target)
  np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-7)
  assert optimizer.beta_2 == 0.98 and optimizer.epsilon == 1e-8


def test_decay_toward_init_leaves_initial_weights_fixed_without_gradient():
  config = load_config("default").optim
  config.warmup_steps = 0
  config.weight_decay_target = "init"
  w0 = np.array([1.0, -2.0], np.float32)
  variable = tf.Variable(w0)
  optimizer = optim.make_optimizer(config, num_steps=10)
  optim.decay_toward([variable], [tf.constant(w0)], optimizer.learning_rate)
  optimizer.apply([tf.zeros(2)], [variable])
  np.testing.assert_array_equal(variable.numpy(), w0)
  assert optimizer.weight_decay == 0.0


def test_warmup_then_constant_and_cosine():
  schedule = optim.WarmupSchedule(1e-3, warmup_steps=10)
  values = [float(schedule(s)) for s in (0, 5, 10, 1000)]
  np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 1e-3], rtol=1e-6)
  cosine = optim.WarmupSchedule(1e-3, warmup_steps=10, decay_steps=100, final_fraction=0.1)
  np.testing.assert_allclose([float(cosine(50)), float(cosine(100)), float(cosine(500))],
                             [1e-3 * (0.1 + 0.9 * 0.5), 1e-4, 1e-4], rtol=1e-5)


def test_mixed_float16_wraps_in_loss_scale_optimizer():
  import keras  # pylint: disable=import-outside-toplevel
  optimizer = optim.make_optimizer(load_config("default").optim, 10, "mixed_float16")
  assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def _compiled_apply(optimizer, variables):
  """optimizer.apply(gradients, variables) as a tf.function of the gradients, as in training."""
  @tf.function
  def apply(gradients):
    optimizer.apply(gradients, variables)
  return apply


def test_fused_adamw_follows_keras_adamw_on_model_variables():
  config = load_config("default").optim  # 10-step warm-up, weight decay 1 toward zero
  config.learning_rate = 0.05  # large enough for the decay to matter within 15 steps
  rng = np.random.default_rng(0)
  shapes = [(3, 5), (5,), (7, 2)]
  grads = [[tf.constant(rng.normal(size=s), tf.float32) for s in shapes] for _ in range(15)]
  results = []
  for optimizer in (optim.make_optimizer(config, num_steps=100),
                    keras.optimizers.AdamW(
                        learning_rate=optim.make_schedule(config, 100),
                        weight_decay=config.weight_decay, beta_1=config.beta_1,
                        beta_2=config.beta_2, epsilon=config.epsilon)):
    variables = [keras.Variable(np.linspace(-1, 1, int(np.prod(s))).reshape(s), dtype="float32")
                 for s in shapes]
    optimizer.build(variables)
    for g in grads:
      _compiled_apply(optimizer, variables)(g)
    results.append([v.numpy() for v in variables + optimizer.variables])
  fused, reference = results
  assert isinstance(optim.make_optimizer(config, 100), optim.FusedAdamW)
  assert len(fused) == len(reference)  # same state: iterations, moments, learning rate
  for f, r in zip(fused, reference):
    np.testing.assert_allclose(f, r, rtol=1e-5, atol=1e-7)
