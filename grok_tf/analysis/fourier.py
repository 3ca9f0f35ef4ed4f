"""Fourier progress measures of the residue embeddings (Nanda et al. 2023).

Residues are indexed by `circulant.element_order`: 0..p-1 for additive operations (Fourier
over Z_p), the nonzero residues in discrete-log order for x*y and x/y (Fourier over Z_(p-1),
where multiplication becomes addition). m below is the number of indexed residues.
"""

import numpy as np

from grok_tf.analysis import circulant

# Operations with a known "combined" index: z is a function of (i + sign * j) mod m, where i, j
# index x, y in `circulant.element_order`.
COMBINATION_SIGN = {"x+y": 1, "x-y": -1, "x*y": 1, "x/y": -1}


def frequencies(m: int) -> np.ndarray:
  """(m,) frequency of each row of `basis(m)`: 0, then 1, 1, 2, 2, ... (cos, sin pairs)."""
  rows = [0]
  for k in range(1, m // 2 + 1):
    rows += [k] if 2 * k == m else [k, k]
  return np.array(rows)


def basis(m: int) -> np.ndarray:
  """(m, m) orthonormal Fourier basis over Z_m: the constant row 1/sqrt(m), then cos and sin
  of 2 pi k x / m for k = 1..m//2 (only cos at k = m/2 when m is even), each normalised."""
  x = np.arange(m)
  rows = [np.ones(m)]
  for k in range(1, m // 2 + 1):
    rows.append(np.cos(2 * np.pi * k * x / m))
    if 2 * k != m:
      rows.append(np.sin(2 * np.pi * k * x / m))
  rows = np.stack(rows)
  return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def frequency_norms(embeddings) -> np.ndarray:
  """(m//2,) norm of the Fourier component of frequency k = 1..m//2 of an (m, d) embedding,
  taken over the width axis (cos and sin parts together)."""
  embeddings = np.asarray(embeddings, np.float64)
  m = len(embeddings)
  coefficients = basis(m) @ embeddings  # (m, d)
  squared = np.sum(coefficients ** 2, axis=1)
  freqs = frequencies(m)
  return np.sqrt(np.array([squared[freqs == k].sum() for k in range(1, m // 2 + 1)]))


def key_frequencies(norms, count: int) -> np.ndarray:
  """The `count` frequencies (1-based) with the largest norms, ascending."""
  return np.sort(np.argsort(-np.asarray(norms))[:count] + 1)


def gini(values) -> float:
  """Gini coefficient of non-negative values: 0 for equal values, 1 - 1/N for one nonzero."""
  values = np.sort(np.asarray(values, np.float64))
  n, total = len(values), values.sum()
  if total <= 0:
    return 0.0
  return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * values) / (n * total))


def _cross_entropy(logits, targets) -> float:
  """Mean softmax cross-entropy of (..., classes) float64 logits and (...) int targets."""
  logits = logits - logits.max(axis=-1, keepdims=True)
  log_z = np.log(np.sum(np.exp(logits), axis=-1))
  picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return float(np.mean(log_z - picked))


def key_directions(m: int, keys, sign: int) -> np.ndarray:
  """(2 * len(keys), m, m) orthonormal grid functions cos/sin(2 pi k (i + sign * j) / m)."""
  i, j = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
  combined = (i + sign * j) % m
  directions = []
  for k in keys:
    directions.append(np.cos(2 * np.pi * k * combined / m))
    if 2 * k != m:
      directions.append(np.sin(2 * np.pi * k * combined / m))
  directions = np.stack(directions)
  return directions / np.linalg.norm(directions.reshape(len(directions), -1), axis=1)[:, None,
                                                                                        None]


def restricted_and_excluded_loss(logits, targets, train_mask, keys, sign: int) -> dict:
  """Nanda et al.'s restricted and excluded losses on the full m x m operand grid.

  Args:
    logits: (m, m, classes) answer logits, [i, j] = operands (x_i, y_j).
    targets: (m, m) int answers.
    train_mask: (m, m) bool, True where the pair is a training equation.
    keys: key frequencies (1-based).
    sign: +1 if the answer depends on i + j, -1 if on i - j.

  Returns:
    fourier/loss (all pairs), fourier/restricted_loss (each class's mean plus the key
    directions, all pairs) and fourier/excluded_loss (the key directions removed, training
    pairs).
  """
  logits = np.asarray(logits, np.float64)
  m = logits.shape[0]
  directions = key_directions(m, keys, sign)  # (r, m, m)
  coefficients = np.einsum("rij,ijc->rc", directions, logits)
  projection = np.einsum("rij,rc->ijc", directions, coefficients)
  restricted = logits.mean(axis=(0, 1), keepdims=True) + projection
  excluded = logits - projection
  return {"fourier/loss": _cross_entropy(logits, targets),
          "fourier/restricted_loss": _cross_entropy(restricted, targets),
          "fourier/excluded_loss": _cross_entropy(excluded[train_mask], targets[train_mask])}


def progress_measures(model, operation: str, modulus: int) -> dict:
  """The measures cheap enough for every evaluation during training (no data needed):
  the Gini coefficient of the residue embeddings' Fourier norms (modular operations, in the
  element order of `circulant.element_order`) and the sum of squared weights."""
  measures = {"progress/sum_squared_weights": float(
      sum(np.sum(np.square(v.numpy(), dtype=np.float64)) for v in model.trainable_variables))}
  if operation in COMBINATION_SIGN:
    order = circulant.element_order(operation, modulus)
    embeddings = model.embedding.embeddings.numpy()[order]
    measures["progress/fourier_gini"] = gini(frequency_norms(embeddings))
  return measures
