"""The paper's decoder-only transformer, assembled from `grok_tf.layers`."""

import keras
from keras import ops

from grok_tf import data
from grok_tf import layers


@keras.saving.register_keras_serializable(package="grok_tf")
class Transformer(keras.Model):
  """Embedding, a stack of post-LayerNorm decoder blocks, and an untied output projection.

  Args:
    vocabulary_size: number of tokens.
    num_layers: decoder blocks.
    width: model width d.
    num_heads: attention heads (width must be divisible by it).
    hidden_width: feed-forward inner width.
    activation: feed-forward activation name.
    dropout_rate: residual dropout (training only).
    max_length: longest input sequence.

  Call arguments:
    tokens: (batch, seq) int token ids.
    training: whether dropout is active.

  Returns:
    (batch, seq, vocabulary_size) float32 next-token logits at every position.
  """

  def __init__(self, vocabulary_size, num_layers=2, width=128, num_heads=4, hidden_width=512,
               activation="relu", dropout_rate=0.0, max_length=data.INPUT_LENGTH, **kwargs):
    super().__init__(**kwargs)
    self.vocabulary_size = vocabulary_size
    self.num_layers = num_layers
    self.width = width
    self.num_heads = num_heads
    self.hidden_width = hidden_width
    self.activation = activation
    self.dropout_rate = dropout_rate
    self.max_length = max_length
    policy = self.dtype_policy
    self.embedding = layers.TokenAndPositionEmbedding(vocabulary_size, width, max_length,
                                                      dtype=policy, name="embedding")
    # Blocks are attributes (not only a list) so tf.train.Checkpoint tracks them.
    for i in range(num_layers):
      setattr(self, f"block_{i}", layers.DecoderBlock(
          width, num_heads, hidden_width, activation, dropout_rate, dtype=policy,
          name=f"block_{i}"))

  @property
  def blocks(self):
    return [getattr(self, f"block_{i}") for i in range(self.num_layers)]

  def build(self, tokens_shape=None):
    self.embedding.build((None, self.max_length))
    for block in self.blocks:
      block.build((None, self.max_length, self.width))
    self.unembedding = self.add_weight(name="unembedding",
                                       shape=(self.width, self.vocabulary_size),
                                       initializer=keras.initializers.GlorotUniform())
    self.built = True

  def hidden(self, tokens, training=False, first_query=0):
    """(batch, seq) tokens -> (batch, seq - first_query, width) final hidden states at
    positions first_query.. (the last block computes only those; the others all)."""
    x = self.embedding(tokens)
    for block in self.blocks[:-1]:
      x = block(x, training=training)
    return self.blocks[-1](x, training=training, first_query=first_query)

  def unembed(self, hidden):
    """(batch, seq, width) hidden states -> (batch, seq, vocabulary_size) float32 logits."""
    batch, seq = ops.shape(hidden)[0], ops.shape(hidden)[1]
    flat = ops.reshape(hidden, (-1, self.width))  # 2-D for a plain matmul
    logits = ops.matmul(flat, ops.cast(self.unembedding, self.compute_dtype))
    return ops.cast(ops.reshape(logits, (batch, seq, self.vocabulary_size)), "float32")

  def call(self, tokens, training=False):
    return self.unembed(self.hidden(tokens, training=training))

  def answer_logits(self, tokens, training=False):
    """(batch, 6) tokens -> (batch, 2, vocabulary_size) float32 logits at the answer
    positions only: the same numbers as `call(tokens)[:, 4:6]` for less work. Nothing at
    the other positions of the last block reaches these logits, so that block computes its
    attention output and feed-forward at the 2 answer positions only (keys and values at
    all 6), and the output projection runs on those 2 rows."""
    return self.unembed(self.hidden(tokens, training, first_query=data.ANSWER_POSITIONS[0]))

  def get_config(self):
    return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
            "num_layers": self.num_layers, "width": self.width, "num_heads": self.num_heads,
            "hidden_width": self.hidden_width, "activation": self.activation,
            "dropout_rate": self.dropout_rate, "max_length": self.max_length}


def build_model(model_config, vocabulary_size: int, dtype_policy: str = "float32"):
  """A built `Transformer` from the `config.model` fields and a Keras dtype policy name."""
  model = Transformer(vocabulary_size, num_layers=model_config.num_layers,
                      width=model_config.width, num_heads=model_config.num_heads,
                      hidden_width=model_config.hidden_width,
                      activation=model_config.activation,
                      dropout_rate=model_config.dropout_rate,
                      dtype=keras.DTypePolicy(dtype_policy), name="transformer")
  model.build()
  return model


def non_embedding_parameter_count(model: Transformer) -> int:
  """Attention and feed-forward weights: 393,216 for the paper's model."""
  return sum(int(w.numpy().size) for block in model.blocks
             for layer in (block.attention, block.feed_forward) for w in layer.weights)


def weight_groups(model: Transformer) -> dict:
  """Variables by group name: embedding, block_<i>, unembedding."""
  groups = {"embedding": model.embedding.trainable_weights}
  for block in model.blocks:
    groups[block.name] = block.trainable_weights
  groups["unembedding"] = [model.unembedding]
  return groups
