"""Operation tables against brute force, the split, label noise and the batch stream."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from grok_tf import data
from grok_tf import operations
from grok_tf import validation
from conftest import load_config

P = 7


def _brute_force_mod(name, x, y, p):
  inv = lambda v: next(u for u in range(1, p) if u * v % p == 1)
  return {
      "x+y": lambda: (x + y) % p,
      "x-y": lambda: (x - y) % p,
      "x*y": lambda: (x * y) % p,
      "x/y": lambda: (x * inv(y)) % p,
      "x/y_if_y_odd_else_x-y": lambda: (x * inv(y)) % p if y % 2 == 1 else (x - y) % p,
      "x^2+y^2": lambda: (x * x + y * y) % p,
      "x^2+xy+y^2": lambda: (x * x + x * y + y * y) % p,
      "x^2+xy+y^2+x": lambda: (x * x + x * y + y * y + x) % p,
      "x^3+xy": lambda: (x**3 + x * y) % p,
      "x^3+xy^2+y": lambda: (x**3 + x * y * y + y) % p,
      "x^2+y": lambda: (x * x + y) % p,
      "x^3+y": lambda: (x**3 + y) % p,
      "+*": lambda: (x + y) % p if x % 2 == 0 else (x * y) % p,
      "+-": lambda: (x + y) % p if x % 2 == 0 else (x - y) % p,
  }[name]()


def _brute_force_s5(name, x, y):
  perms = list(itertools.permutations(range(5)))
  a, b = perms[x], perms[y]
  compose = lambda f, g: tuple(f[g[i]] for i in range(5))  # apply g, then f
  inverse = lambda f: tuple(sorted(range(5), key=lambda i: f[i]))
  result = {"x.y": lambda: compose(a, b),
            "x.y.x^-1": lambda: compose(compose(a, b), inverse(a)),
            "x.y.x": lambda: compose(compose(a, b), a)}[name]()
  return perms.index(result)


@pytest.mark.parametrize("name", [n for n, op in operations.OPERATIONS.items()
                                  if op.group == "mod"])
def test_modular_tables_match_brute_force(name):
  table = data.make_table(name, P)
  expected_size = P * (P - 1) if operations.get(name).nonzero_y else P * P
  assert len(table.z) == expected_size
  for x, y, z in zip(table.x, table.y, table.z):
    assert z == _brute_force_mod(name, int(x), int(y), P), (name, x, y)


@pytest.mark.parametrize("name", ["x.y", "x.y.x^-1", "x.y.x"])
def test_s5_tables_match_brute_force(name):
  table = data.make_table(name, 97)
  assert len(table.z) == 14_400
  rng = np.random.default_rng(0)
  for i in rng.choice(len(table.z), 300, replace=False):
    assert table.z[i] == _brute_force_s5(name, int(table.x[i]), int(table.y[i]))


def test_paper_table_sizes():
  assert len(data.make_table("x+y", 97).z) == 9_409
  assert len(data.make_table("x/y", 97).z) == 9_312


def test_sequence_format_and_vocabulary():
  table = data.make_table("x-y", 5)
  assert table.vocabulary == ("0", "1", "2", "3", "4", "x-y", "=", "<eos>")
  row = list(table.tokens[np.flatnonzero((table.x == 3) & (table.y == 4))[0]])
  assert row == [7, 3, 5, 4, 6, 4, 7]  # <eos> 3 x-y 4 = 4 <eos>  (3 - 4 = 4 mod 5)


def test_split_is_disjoint_complete_and_seeded():
  train, val = data.split_indices(1000, 0.3, seed=1)
  assert len(train) == 300 and len(val) == 700
  assert not set(train) & set(val) and set(train) | set(val) == set(range(1000))
  again, _ = data.split_indices(1000, 0.3, seed=1)
  other, _ = data.split_indices(1000, 0.3, seed=2)
  np.testing.assert_array_equal(train, again)
  assert not np.array_equal(train, other)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, 1.5, 50])
def test_fraction_outside_unit_interval_is_rejected(fraction):
  config = load_config("default")
  config.data.training_fraction = fraction
  with pytest.raises(validation.ConfigError, match="data.training_fraction"):
    validation.check(config)


def test_fraction_leaving_an_empty_split_is_rejected():
  with pytest.raises(ValueError, match="empty split"):
    data.split_indices(10, 0.01, seed=0)


def test_label_noise_changes_exactly_n_answers():
  z = np.arange(100) % 7
  noisy = data.add_label_noise(z, 13, 7, seed=0)
  assert (noisy != z).sum() == 13
  assert noisy.min() >= 0 and noisy.max() < 7


def test_splits_use_label_noise_on_training_only():
  config = load_config("default", "smoke")
  config.data.label_noise_count = 5
  splits = data.make_splits(config.data)
  clean = splits.table.tokens[splits.train_indices]
  assert (splits.train_tokens != clean).any(axis=1).sum() == 5
  np.testing.assert_array_equal(splits.validation_tokens,
                                splits.table.tokens[splits.validation_indices])


def test_modulus_must_be_prime_for_division():
  config = load_config("default")
  config.data.modulus = 96
  with pytest.raises(validation.ConfigError, match="data.modulus.*prime"):
    validation.check(config)


@pytest.mark.parametrize("train_size,batch,full,expected", [
    (4656, 512, False, 512), (481, 512, False, 241), (481, 512, True, 481)])
def test_batch_size_rule(train_size, batch, full, expected):
  assert data.batch_size(train_size, batch, full) == expected


def test_batch_stream_sees_every_example_once_per_epoch():
  tokens = np.arange(10 * 7, dtype=np.int32).reshape(10, 7)
  stream = data.BatchStream(tokens, 4, seed=3)
  seen = np.concatenate([stream.batch(tf.constant(s, tf.int64)).numpy()[:, 0]
                         for s in range(5)])  # 20 positions = 2 epochs
  for epoch in range(2):
    assert sorted(seen[epoch * 10:(epoch + 1) * 10] // 7) == list(range(10))
  np.testing.assert_array_equal(stream.batch(tf.constant(3, tf.int64)),
                                data.BatchStream(tokens, 4, seed=3).batch(
                                    tf.constant(3, tf.int64)))
