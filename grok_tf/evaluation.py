"""Full-set evaluation and its schedule."""

import math

import numpy as np
import tensorflow as tf

from grok_tf import losses
from grok_tf import methods


def evaluation_steps(num_steps: int, every_steps: int, per_decade: int) -> list:
  """Sorted steps to evaluate at: dense early, log-spaced later, plus a fixed interval.

  Every step up to 10, `per_decade` log-spaced steps per decade after that, every multiple
  of `every_steps`, and the last step.
  """
  steps = set(range(min(10, num_steps) + 1))
  if per_decade > 0:
    exponents = np.arange(1, math.log10(max(num_steps, 10)) * per_decade + 1) / per_decade
    steps.update(int(round(10 ** e)) for e in exponents)
  steps.update(range(0, num_steps + 1, every_steps))
  steps.add(num_steps)
  return sorted(s for s in steps if s <= num_steps)


class Evaluator:
  """Loss, accuracy and softmax-collapse fraction of a model on a whole set of equations, in
  one graph call.

  Args:
    model: a `Transformer`.
    batch_size: most examples per chunk of the set; a set is cut into as few chunks as that
      allows, of equal size (4,656 examples at 2,048: 3 chunks of 1,552, not 3 of 2,048).
    loss_fn: `(logits (batch, 2, vocab), targets (batch, 2)) -> (batch,)` per-example loss.
    shards: independent forward passes per chunk, run side by side on the CPU cores.
  """

  def __init__(self, model, batch_size: int, loss_fn=losses.cross_entropy, shards: int = 1):
    self.model = model
    self.batch_size = batch_size
    self.loss_fn = loss_fn
    self.shards = shards
    self._sums = tf.function(self._sums_impl, input_signature=[
        tf.TensorSpec([None, None, 7], tf.int32), tf.TensorSpec([None, None], tf.float32)])
    self._padded = {}

  def _sums_impl(self, batches, mask):
    """(num_batches, batch, 7) tokens, (num_batches, batch) 0/1 mask -> (loss sum, #correct,
    #collapsed)."""
    def body(i, loss_sum, num_correct, num_collapsed):
      for tokens, weights in zip(tf.split(batches[i], self.shards),
                                 tf.split(mask[i], self.shards)):
        inputs, targets = losses.answer_targets(tokens)
        logits = self.model.answer_logits(inputs, training=False)
        loss_sum += tf.reduce_sum(self.loss_fn(logits, targets) * weights)
        num_correct += tf.reduce_sum(tf.cast(losses.correct(logits, targets), tf.float32)
                                     * weights)
        num_collapsed += tf.reduce_sum(
            tf.cast(methods.softmax_collapse(logits), tf.float32) * weights)
      return i + 1, loss_sum, num_correct, num_collapsed
    _, loss_sum, num_correct, num_collapsed = tf.while_loop(
        lambda i, *_: i < tf.shape(batches)[0], body,
        (tf.constant(0), tf.constant(0.0), tf.constant(0.0), tf.constant(0.0)))
    return loss_sum, num_correct, num_collapsed

  def _pad(self, name: str, tokens: np.ndarray):
    """(num_chunks, chunk, 7) tokens and (num_chunks, chunk) mask of a set, zero-padded to
    equal chunks whose size is a multiple of the shards."""
    if name not in self._padded:
      num_chunks = math.ceil(len(tokens) / self.batch_size)
      chunk = self.shards * math.ceil(len(tokens) / (num_chunks * self.shards))
      padded = np.zeros((num_chunks * chunk, tokens.shape[1]), np.int32)
      padded[:len(tokens)] = tokens
      mask = np.zeros(num_chunks * chunk, np.float32)
      mask[:len(tokens)] = 1.0
      self._padded[name] = (tf.constant(padded.reshape(num_chunks, chunk, -1)),
                            tf.constant(mask.reshape(num_chunks, chunk)))
    return self._padded[name]

  def run(self, sets: dict):
    """Yields (f"{name}/loss", value), (f"{name}/accuracy", value) and
    (f"{name}/softmax_collapse", share of examples whose float32 softmax is exactly one-hot)
    for each named set of (num, 7) token arrays."""
    for name, tokens in sets.items():
      loss_sum, num_correct, num_collapsed = self._sums(*self._pad(name, tokens))
      yield f"{name}/loss", float(loss_sum) / len(tokens)
      yield f"{name}/accuracy", float(num_correct) / len(tokens)
      yield f"{name}/softmax_collapse", float(num_collapsed) / len(tokens)
