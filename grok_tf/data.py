"""Equation tables, the train/validation split, and the in-graph batch stream.

An equation is the token sequence `<eos> x op y = z <eos>` (7 tokens). Element tokens come
first, so residue r (or permutation index r) is token r; then the operator, `=` and `<eos>`.
The model reads the first 6 tokens and predicts the next token at every position; only the
predictions of `z` (input position 4, the `=`) and of the final `<eos>` (input position 5)
count for the loss and accuracy.
"""

import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from grok_tf import operations

SEQUENCE_LENGTH = 7
INPUT_LENGTH = SEQUENCE_LENGTH - 1
# Input positions whose next-token targets are the answer tokens `z` and `<eos>`: the last
# ones of the input (the model's `answer_logits` relies on it).
ANSWER_POSITIONS = (4, 5)
OPERAND_POSITIONS = (1, 3)


@dataclasses.dataclass(frozen=True)
class Table:
  """Every equation of one operation.

  Attributes:
    operation: the registry name.
    modulus: p for modular operations, 120 for S5.
    x, y, z: (num_equations,) int64 operands and answers (element indices).
    tokens: (num_equations, 7) int32 full sequences.
    vocabulary: token strings; element tokens first, then op, "=", "<eos>".
  """

  operation: str
  modulus: int
  x: np.ndarray
  y: np.ndarray
  z: np.ndarray
  tokens: np.ndarray
  vocabulary: tuple

  @property
  def num_elements(self) -> int:
    return len(self.vocabulary) - 3

  @property
  def eos_token(self) -> int:
    return len(self.vocabulary) - 1


def num_elements(operation: str, modulus: int) -> int:
  return 120 if operations.get(operation).group == "s5" else modulus


def vocabulary(operation: str, modulus: int) -> tuple:
  op = operations.get(operation)
  if op.group == "s5":
    elements = ["".join(map(str, perm)) for perm in operations.PERMUTATIONS.tolist()]
  else:
    elements = [str(r) for r in range(modulus)]
  return tuple(elements + [operation, "=", "<eos>"])


def encode(x: np.ndarray, y: np.ndarray, z: np.ndarray, n: int) -> np.ndarray:
  """(num,) operands and answers -> (num, 7) int32 token sequences for n elements."""
  op_token, equals_token, eos_token = n, n + 1, n + 2
  column = lambda v: np.full_like(x, v)
  return np.stack([column(eos_token), x, column(op_token), y, column(equals_token), z,
                   column(eos_token)], axis=1).astype(np.int32)


def table_size(operation: str, modulus: int) -> int:
  """Number of equations: n*n, or n*(n-1) when y = 0 is skipped (division)."""
  n = num_elements(operation, modulus)
  return n * (n - 1) if operations.get(operation).nonzero_y else n * n


def make_table(operation: str, modulus: int) -> Table:
  """All equations of `operation`: p*p pairs, p*(p-1) for division, 14,400 on S5."""
  op = operations.get(operation)
  n = num_elements(operation, modulus)
  x, y = (a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(n), np.arange(n),
                                                          indexing="ij"))
  if op.nonzero_y:
    x, y = x[y != 0], y[y != 0]
  z = op.fn(x, y, modulus).astype(np.int64)
  return Table(operation, modulus, x, y, z, encode(x, y, z, n), vocabulary(operation, modulus))


def split_indices(num_equations: int, training_fraction: float, seed: int):
  """A seeded random split: (train_indices, validation_indices), each sorted, int64."""
  num_train = int(round(training_fraction * num_equations))
  if not 0 < num_train < num_equations:
    raise ValueError(
        f"data.training_fraction: {training_fraction} of {num_equations} equations leaves an "
        f"empty split; allowed: a fraction giving 1..{num_equations - 1} training equations")
  order = np.random.default_rng(seed).permutation(num_equations)
  return np.sort(order[:num_train]), np.sort(order[num_train:])


def add_label_noise(z: np.ndarray, count: int, num_elements_: int, seed: int) -> np.ndarray:
  """A copy of answers `z` where `count` random entries get a different random answer."""
  if count > len(z):
    raise ValueError(f"data.label_noise_count: {count} exceeds the {len(z)} training "
                     f"equations; allowed: 0..{len(z)}")
  rng = np.random.default_rng([seed, 1])
  noisy = z.copy()
  where = rng.choice(len(z), size=count, replace=False)
  noisy[where] = (z[where] + rng.integers(1, num_elements_, size=count)) % num_elements_
  return noisy


@dataclasses.dataclass(frozen=True)
class Splits:
  """The table and its split. `train_tokens` carry any label noise; (num, 7) int32."""

  table: Table
  train_indices: np.ndarray
  validation_indices: np.ndarray
  train_tokens: np.ndarray
  validation_tokens: np.ndarray


def make_splits(data_config) -> Splits:
  """Builds the table, the split by `data_config.split_seed`, and the label noise."""
  table = make_table(data_config.operation, data_config.modulus)
  train, validation = split_indices(len(table.z), data_config.training_fraction,
                                    data_config.split_seed)
  z_train = add_label_noise(table.z[train], data_config.label_noise_count, table.num_elements,
                            data_config.split_seed)
  train_tokens = encode(table.x[train], table.y[train], z_train, table.num_elements)
  return Splits(table, train, validation, train_tokens, table.tokens[validation])


def save_split(splits: Splits, path: str) -> None:
  """Writes the split (equation indices and operands/answers) to an .npz, atomically."""
  tmp = path + ".tmp.npz"
  np.savez(tmp, train_indices=splits.train_indices,
           validation_indices=splits.validation_indices, train_tokens=splits.train_tokens,
           validation_tokens=splits.validation_tokens,
           vocabulary=np.array(splits.table.vocabulary))
  os.replace(tmp, path)


def batch_size(train_size: int, max_batch_size: int, full_batch: bool) -> int:
  """The paper's rule: min(max_batch_size, ceil(train_size / 2)), or the whole set."""
  return train_size if full_batch else min(max_batch_size, math.ceil(train_size / 2))


def shard_sizes(batch_size: int, num_shards: int) -> list:
  """Sizes of `num_shards` near-equal consecutive shards of a batch: (10, 3) -> [4, 3, 3]."""
  return [batch_size // num_shards + (i < batch_size % num_shards) for i in range(num_shards)]


class BatchStream:
  """Training batches as a pure function of the step, computed in-graph.

  The training examples are read as one endless sequence of epochs, each a fresh seeded
  permutation; batch s holds positions [s*B, (s+1)*B) of that sequence. Every example is
  seen once per epoch, batches keep a fixed size, and no state other than the step is
  needed to resume the data order exactly.

  Args:
    tokens: (num_train, 7) int32 training sequences.
    batch_size: B, at most num_train.
    seed: the training seed; with the epoch number it keys each permutation.
  """

  def __init__(self, tokens: np.ndarray, batch_size_: int, seed: int):
    self.tokens = tf.constant(tokens, tf.int32)
    self.num_examples = len(tokens)
    self.batch_size = batch_size_
    self.seed = seed

  def _permutation(self, epoch):
    """(num_examples,) int32 permutation keyed by (seed, epoch); XLA-compatible (argsort of
    Philox uniforms, where StatelessShuffle has no XLA kernel)."""
    seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(epoch, tf.int64)])
    keys = tf.random.stateless_uniform([self.num_examples], seed=seed, alg="philox")
    return tf.argsort(keys, stable=True)

  def batch(self, step):
    """(batch_size, 7) int32 tokens of batch `step` (an int64 scalar tensor)."""
    if self.batch_size == self.num_examples:
      return self.tokens  # full batch: the order does not matter
    n = tf.constant(self.num_examples, tf.int64)
    start = tf.cast(step, tf.int64) * self.batch_size
    epoch = start // n
    # Two consecutive permutations cover any window of B <= n positions.
    order = tf.concat([self._permutation(epoch), self._permutation(epoch + 1)], axis=0)
    window = tf.slice(order, [start % n], [self.batch_size])  # static size, also under XLA
    return tf.gather(self.tokens, window)

