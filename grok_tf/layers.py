"""Keras layers of the paper's decoder-only transformer.

Every layer follows the keras-hub contract: constructor arguments stored under their own
names, weights created in `build()`, `get_config()` chained to `super()`, `**kwargs` passed
up (so `dtype` carries the mixed-precision policy). Projections multiply 2-D activations
(batch*seq, width): a rank-3 `x @ W` becomes a much slower batched matmul on CPU.
"""

import math

import keras
import numpy as np
from keras import ops

_PACKAGE = "grok_tf"


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
  """(length, width) float32 encoding: sin on even, cos on odd features (Vaswani et al.)."""
  positions = np.arange(length)[:, None]
  rates = 1.0 / 10000.0 ** (np.arange(0, width, 2) / width)
  table = np.zeros((length, width), np.float32)
  table[:, 0::2] = np.sin(positions * rates)
  table[:, 1::2] = np.cos(positions * rates)[:, :width // 2]
  return table


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TokenAndPositionEmbedding(keras.layers.Layer):
  """Learned token embedding plus a fixed sinusoidal position encoding.

  Args:
    vocabulary_size: number of tokens.
    width: embedding width d.
    max_length: longest sequence the position table covers.

  Call arguments:
    tokens: (batch, seq) int token ids, seq <= max_length.

  Returns:
    (batch, seq, width) embeddings in the compute dtype.
  """

  def __init__(self, vocabulary_size, width, max_length, **kwargs):
    super().__init__(**kwargs)
    self.vocabulary_size = vocabulary_size
    self.width = width
    self.max_length = max_length

  def build(self, tokens_shape):
    self.embeddings = self.add_weight(
        name="embeddings", shape=(self.vocabulary_size, self.width),
        initializer=keras.initializers.RandomNormal(stddev=1.0))
    self.positions = sinusoidal_positions(self.max_length, self.width)

  def call(self, tokens):
    seq = ops.shape(tokens)[1]
    embedded = ops.take(ops.cast(self.embeddings, self.compute_dtype), tokens, axis=0)
    positions = ops.cast(self.positions, self.compute_dtype)[:seq]  # (seq, width)
    return embedded + positions  # (batch, seq, width)

  def get_config(self):
    return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
            "width": self.width, "max_length": self.max_length}


def _positions_from(x, first: int, axis: int):
  """x[..., first:, ...] along `axis` (a static int): a split, whose gradient is a cheap
  concatenation where a strided slice's gradient op is slow on CPU; x itself when first = 0."""
  return ops.split(x, [first], axis=axis)[1] if first else x


def _dense_weight(layer, name, shape):
  """A bias-free projection kernel with the fan-in/fan-out Glorot-uniform initializer."""
  return layer.add_weight(name=name, shape=shape,
                          initializer=keras.initializers.GlorotUniform())


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CausalSelfAttention(keras.layers.Layer):
  """Multi-head self-attention where position i attends to positions <= i; no biases.

  Args:
    num_heads: number of heads; `width` must be divisible by it.
    width: model width d (the input's last axis).

  Call arguments:
    inputs: (batch, seq, width).
    first_query: outputs are computed for positions first_query.. only (keys and values
      still cover every position), exactly those rows of the full output.

  Returns:
    (batch, seq - first_query, width).
  """

  def __init__(self, num_heads, width, **kwargs):
    super().__init__(**kwargs)
    self.num_heads = num_heads
    self.width = width

  def build(self, inputs_shape):
    self.query_key_value = _dense_weight(self, "query_key_value", (self.width, 3 * self.width))
    self.output_kernel = _dense_weight(self, "output", (self.width, self.width))

  def call(self, inputs, first_query=0):
    batch, seq = ops.shape(inputs)[0], ops.shape(inputs)[1]
    heads, head_width = self.num_heads, self.width // self.num_heads
    flat = ops.reshape(inputs, (-1, self.width))  # (batch*seq, width)
    qkv = ops.matmul(flat, ops.cast(self.query_key_value, self.compute_dtype))
    qkv = ops.reshape(qkv, (batch, seq, 3, heads, head_width))
    qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # (3, batch, heads, seq, head_width)
    query, key, value = ops.unstack(qkv, 3, axis=0)  # each (batch, heads, seq, head_width)
    query = _positions_from(query, first_query, axis=2)  # (batch, heads, queries, head_width)
    scores = ops.matmul(query, ops.swapaxes(key, -1, -2)) / math.sqrt(head_width)
    # (batch, heads, queries, seq); a key after the query gets -1e9 before the float32 softmax.
    future = 1.0 - ops.tril(ops.ones((seq, seq), "float32"))[first_query:]
    weights = ops.softmax(ops.cast(scores, "float32") - 1e9 * future, axis=-1)
    attended = ops.matmul(ops.cast(weights, self.compute_dtype), value)
    attended = ops.transpose(attended, (0, 2, 1, 3))  # (batch, queries, heads, head_width)
    out = ops.matmul(ops.reshape(attended, (-1, self.width)),
                     ops.cast(self.output_kernel, self.compute_dtype))
    return ops.reshape(out, (batch, seq - first_query, self.width))

  def get_config(self):
    return {**super().get_config(), "num_heads": self.num_heads, "width": self.width}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FeedForward(keras.layers.Layer):
  """Position-wise two-layer perceptron without biases.

  Args:
    width: model width d.
    hidden_width: inner width (the paper: 4d).
    activation: a Keras activation name, e.g. "relu" or "gelu".

  Call arguments:
    inputs: (batch, seq, width).

  Returns:
    (batch, seq, width).
  """

  def __init__(self, width, hidden_width, activation="relu", **kwargs):
    super().__init__(**kwargs)
    self.width = width
    self.hidden_width = hidden_width
    self.activation = activation

  def build(self, inputs_shape):
    self.hidden_kernel = _dense_weight(self, "hidden", (self.width, self.hidden_width))
    self.output_kernel = _dense_weight(self, "output", (self.hidden_width, self.width))

  def call(self, inputs):
    shape = ops.shape(inputs)
    flat = ops.reshape(inputs, (-1, self.width))  # (batch*seq, width)
    hidden = getattr(ops, self.activation)(  # ops.relu / ops.gelu: one fused op each
        ops.matmul(flat, ops.cast(self.hidden_kernel, self.compute_dtype)))
    out = ops.matmul(hidden, ops.cast(self.output_kernel, self.compute_dtype))
    return ops.reshape(out, shape)

  def get_config(self):
    return {**super().get_config(), "width": self.width, "hidden_width": self.hidden_width,
            "activation": self.activation}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DecoderBlock(keras.layers.Layer):
  """Post-LayerNorm residual block: x = LN(x + attn(x)); x = LN(x + ffn(x)).

  Args:
    width, num_heads, hidden_width, activation: as in the sub-layers.
    dropout_rate: residual dropout on each sub-layer's output (training only).

  Call arguments:
    inputs: (batch, seq, width).
    training: whether dropout is active.
    first_query: compute the outputs at positions first_query.. only: exactly those rows
      of the full output, for less work where only they are needed (the last block).

  Returns:
    (batch, seq - first_query, width).
  """

  def __init__(self, width, num_heads, hidden_width, activation="relu", dropout_rate=0.0,
               **kwargs):
    super().__init__(**kwargs)
    self.width = width
    self.num_heads = num_heads
    self.hidden_width = hidden_width
    self.activation = activation
    self.dropout_rate = dropout_rate
    policy = kwargs.get("dtype")
    self.attention = CausalSelfAttention(num_heads, width, dtype=policy, name="attention")
    self.feed_forward = FeedForward(width, hidden_width, activation, dtype=policy, name="mlp")
    self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy,
                                                          name="attention_norm")
    self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-5, dtype=policy,
                                                             name="mlp_norm")
    self.dropout = keras.layers.Dropout(dropout_rate, dtype=policy)

  def build(self, inputs_shape):
    for layer in (self.attention, self.feed_forward, self.attention_norm,
                  self.feed_forward_norm):
      layer.build(inputs_shape)

  def call(self, inputs, training=False, first_query=0):
    attended = self.attention(inputs, first_query=first_query)
    x = self.attention_norm(_positions_from(inputs, first_query, axis=1) +
                            self.dropout(attended, training=training))
    return self.feed_forward_norm(
        x + self.dropout(self.feed_forward(x), training=training))

  def get_config(self):
    return {**super().get_config(), "width": self.width, "num_heads": self.num_heads,
            "hidden_width": self.hidden_width, "activation": self.activation,
            "dropout_rate": self.dropout_rate}
