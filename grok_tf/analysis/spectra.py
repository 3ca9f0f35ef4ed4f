"""Eigenvalue summaries of positive semi-definite matrices, in float64."""

import numpy as np


def eigenvalues(matrix) -> np.ndarray:
  """Eigenvalues of a symmetric PSD matrix, descending, negatives clipped to 0 (float64)."""
  matrix = np.asarray(matrix, np.float64)
  values = np.linalg.eigvalsh((matrix + matrix.T) / 2)
  return np.clip(values[::-1], 0.0, None)


def psd_sqrt(matrix) -> np.ndarray:
  """The PSD square root of a symmetric PSD matrix (float64, negative eigenvalues -> 0)."""
  matrix = np.asarray(matrix, np.float64)
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def effective_rank(values) -> float:
  """exp(entropy of the normalised non-negative spectrum); 0 for an all-zero spectrum."""
  values = np.clip(np.asarray(values, np.float64), 0.0, None)
  total = values.sum()
  if total <= 0:
    return 0.0
  probabilities = values[values > 0] / total
  return float(np.exp(-np.sum(probabilities * np.log(probabilities))))


def participation_ratio(matrix) -> float:
  """(tr M)^2 / ||M||_F^2: between 1 (rank one) and the size (isotropic)."""
  matrix = np.asarray(matrix, np.float64)
  norm = np.sum(matrix * matrix)
  return float(np.trace(matrix) ** 2 / norm) if norm > 0 else 0.0


def cosine(a, b) -> float:
  """Cosine of vec(a) and vec(b); NaN if either is zero."""
  a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
  norms = np.linalg.norm(a) * np.linalg.norm(b)
  return float(a @ b / norms) if norms > 0 else float("nan")


def off_diagonal(matrix) -> np.ndarray:
  """The entries of a square matrix with row != column, as a vector."""
  matrix = np.asarray(matrix)
  return matrix[~np.eye(len(matrix), dtype=bool)]


def pearson(a, b) -> float:
  """Pearson correlation of two equally sized arrays (flattened); NaN if one is constant."""
  a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
  return cosine(a - a.mean(), b - b.mean())


def summary(matrix, prefix: str, top: int) -> dict:
  """trace, top-`top` eigenvalues and effective rank of a PSD matrix, keyed `prefix/...`."""
  values = eigenvalues(matrix)
  out = {f"{prefix}/trace": float(np.trace(np.asarray(matrix, np.float64))),
         f"{prefix}/effective_rank": effective_rank(values)}
  for i in range(min(top, len(values))):
    out[f"{prefix}/eigenvalue_{i + 1}"] = float(values[i])
  return out
