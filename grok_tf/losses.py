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


def correct(logits, targets):
  """(batch,) bool: every answer token's argmax equals its target."""
  predicted = tf.argmax(logits, axis=-1, output_type=targets.dtype)
  return tf.reduce_all(tf.equal(predicted, targets), axis=-1)
