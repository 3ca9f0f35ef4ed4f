"""Loss and accuracy on the answer tokens of each equation."""

import tensorflow as tf


def answer_targets(tokens):
  """(batch, 7) full sequences -> ((batch, 6) inputs, (batch, 2) answer targets z, <eos>)."""
  return tokens[:, :-1], tokens[:, -2:]


def cross_entropy(logits, targets):
  """Per-example mean softmax cross-entropy over the answer tokens.

  Args:
    logits: (batch, 2, vocabulary) float32.
    targets: (batch, 2) int.

  Returns:
    (batch,) float32.
  """
  losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
  return tf.reduce_mean(losses, axis=-1)


def stablemax(logits):
  """StableMax (Prieto et al. 2025) over the last axis: s(z_i) / sum_j s(z_j), with
  s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0. Grows linearly instead of
  exponentially, so it cannot round to an exactly one-hot output the way softmax does."""
  s = _stablemax_s(logits)
  return s / tf.reduce_sum(s, axis=-1, keepdims=True)


def _stablemax_s(logits):
  """s(x) elementwise, float32 (> 0 for every finite x)."""
  logits = tf.cast(logits, tf.float32)
  # tf.minimum keeps the unused branch finite (1 / (1 - x) has a pole at x = 1).
  return tf.where(logits >= 0, logits + 1.0, 1.0 / (1.0 - tf.minimum(logits, 0.0)))


def stablemax_cross_entropy(logits, targets):
  """Per-example mean StableMax cross-entropy over the answer tokens, the drop-in
  alternative to `cross_entropy` (same shapes: (batch, 2, vocab), (batch, 2) -> (batch,))."""
  s = _stablemax_s(logits)  # (batch, 2, vocab)
  target_s = tf.gather(s, targets, axis=-1, batch_dims=2)  # (batch, 2)
  losses = tf.math.log(tf.reduce_sum(s, axis=-1)) - tf.math.log(target_s)
  return tf.reduce_mean(losses, axis=-1)


# The training loss by `config.optim.loss`.
LOSSES = {"softmax": cross_entropy, "stablemax": stablemax_cross_entropy}


def correct(logits, targets):
  """(batch,) bool: every answer token's argmax equals its target."""
  predicted = tf.argmax(logits, axis=-1, output_type=targets.dtype)
  return tf.reduce_all(tf.equal(predicted, targets), axis=-1)
