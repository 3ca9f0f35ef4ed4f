"""How far a block is from circulant, and the discrete-log reordering for x*y and x/y.

A p x p block A[y, x] that depends only on x + y (mod p) is a Hankel circulant; one that
depends only on x - y is a Toeplitz circulant. Shifting row l by l makes every column of such
a block constant; the deviation measures what is left.
"""

import numpy as np

# Operations whose structure is additive in the discrete logarithm of nonzero residues.
MULTIPLICATIVE = ("x*y", "x/y")


def shift_rows(block, form: str) -> np.ndarray:
  """S_H(A)[l, j] = A[l, (j - l) mod m] ("hankel") or S_T(A)[l, j] = A[l, (j + l) mod m]
  ("toeplitz") for an m x m block."""
  block = np.asarray(block, np.float64)
  m = len(block)
  rows = np.arange(m)[:, None]
  sign = {"hankel": -1, "toeplitz": 1}[form]
  return block[rows, (np.arange(m)[None, :] + sign * rows) % m]


def deviation(block, form: str) -> float:
  """D(A) = sum_j sum_l (S(A)[l, j] - mean_l S(A)[l, j])^2 / ||A||_F^2, in [0, 1].

  0 for an exact circulant of the given form; about (m - 1) / m for i.i.d. zero-mean noise.
  """
  shifted = shift_rows(block, form)
  norm = np.sum(shifted ** 2)
  if norm == 0:
    return float("nan")
  return float(np.sum((shifted - shifted.mean(axis=0, keepdims=True)) ** 2) / norm)


def smallest_generator(p: int) -> int:
  """The smallest generator of the multiplicative group mod prime p (5 for p = 97)."""
  order = p - 1
  factors = [q for q in range(2, order + 1) if order % q == 0
             and all(q % r for r in range(2, int(q ** 0.5) + 1))]
  for g in range(2, p):
    if all(pow(g, order // q, p) != 1 for q in factors):
      return g
  if p == 2:
    return 1
  raise ValueError(f"{p} is not a prime")


def discrete_log_order(p: int) -> np.ndarray:
  """(p - 1,) residues g^0, g^1, ..., g^(p-2) mod p: position k holds the residue of log k."""
  g = smallest_generator(p)
  return np.array([pow(g, k, p) for k in range(p - 1)], np.int64)


def element_order(operation: str, p: int) -> np.ndarray:
  """The residues to index rows and columns by: all of 0..p-1 in order, or, for x*y and x/y,
  the nonzero residues in discrete-log order (then x*y is Hankel and x/y Toeplitz)."""
  return discrete_log_order(p) if operation in MULTIPLICATIVE else np.arange(p)


def operand_block(g_tok_sqrt, p: int, order) -> np.ndarray:
  """The off-diagonal block A = G^(1/2)[p:2p, 0:p] (rows y, columns x), reindexed by `order`."""
  block = np.asarray(g_tok_sqrt)[p:2 * p, 0:p]
  return block[np.ix_(order, order)]


# The form each operation's structure takes in `element_order`: z depends on x + y (Hankel)
# or on x - y (Toeplitz).
EXPECTED_FORM = {"x+y": "hankel", "x*y": "hankel", "x-y": "toeplitz", "x/y": "toeplitz"}


def measures(g_tok_sqrt, p: int, operation: str) -> dict:
  """Circulant deviations of G_tok^(1/2) in `element_order`.

  circulant/hankel, circulant/toeplitz, circulant/min: the off-diagonal (y, x) block, as in
  Mallinar et al.; circulant/expected: the form the operation calls for (the min if none);
  circulant/diagonal_blocks: the mean Toeplitz deviation of the (x, x) and (y, y) blocks,
  which depend on i - j once embeddings are Fourier features (for a transformer the
  off-diagonal block averages toward zero over the operand pairs; see the README).
  """
  order = element_order(operation, p)
  block = operand_block(g_tok_sqrt, p, order)
  hankel, toeplitz = deviation(block, "hankel"), deviation(block, "toeplitz")
  root = np.asarray(g_tok_sqrt)
  diagonal = [root[:p, :p][np.ix_(order, order)], root[p:, p:][np.ix_(order, order)]]
  out = {"circulant/hankel": hankel, "circulant/toeplitz": toeplitz,
         "circulant/min": min(hankel, toeplitz),
         "circulant/diagonal_blocks": float(np.mean([deviation(b, "toeplitz")
                                                     for b in diagonal]))}
  form = EXPECTED_FORM.get(operation)
  out["circulant/expected"] = out[f"circulant/{form}"] if form else out["circulant/min"]
  return out
