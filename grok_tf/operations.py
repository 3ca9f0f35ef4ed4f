"""The registry of binary operations the paper trains on.

Each operation maps integer operand arrays to answers. Modular operations work on
residues 0..p-1; S5 operations work on the 120 permutations of five elements, named
by their index in lexicographic order. Adding an operation is one line in `OPERATIONS`.
"""

import dataclasses
import itertools
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Operation:
  """A binary operation over a finite set of elements.

  Attributes:
    name: the registry key, also the operator token, e.g. "x/y".
    fn: `fn(x, y, p) -> z` on int64 arrays of equal shape (p is ignored for S5).
    group: "mod" (residues modulo p) or "s5" (permutations of 5 elements).
    needs_inverse: True when the answer uses a modular inverse, so p must be prime.
    nonzero_y: True when the table skips y = 0 (division).
  """

  name: str
  fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
  group: str = "mod"
  needs_inverse: bool = False
  nonzero_y: bool = False


def modular_inverse(y: np.ndarray, p: int) -> np.ndarray:
  """y^-1 mod p for prime p (Fermat), elementwise on an int64 array."""
  return np.array([pow(int(v), p - 2, p) for v in np.ravel(y)], np.int64).reshape(np.shape(y))


def _divide(x, y, p):
  return x * modular_inverse(y, p) % p


def _divide_if_odd_else_subtract(x, y, p):
  odd = y % 2 == 1
  safe_y = np.where(odd, y, 1)
  return np.where(odd, x * modular_inverse(safe_y, p) % p, (x - y) % p)


# The 120 permutations of (0, 1, 2, 3, 4), lexicographic; element i is PERMUTATIONS[i].
PERMUTATIONS = np.array(list(itertools.permutations(range(5))), np.int64)  # (120, 5)
_PERMUTATION_INDEX = {tuple(perm): i for i, perm in enumerate(PERMUTATIONS.tolist())}
_INVERSES = np.argsort(PERMUTATIONS, axis=1)  # (120, 5): inverse permutation of each


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(a.b)[i] = a[b[i]] on permutation arrays (..., 5): apply b, then a."""
  return np.take_along_axis(a, b, axis=-1)


def _to_index(perms: np.ndarray) -> np.ndarray:
  return np.array([_PERMUTATION_INDEX[tuple(p)] for p in perms.reshape(-1, 5).tolist()],
                  np.int64).reshape(perms.shape[:-1])


def _s5(fn):
  """Lifts `fn(a, b)` on permutation arrays to an operation on permutation indices."""
  return lambda x, y, p: _to_index(fn(PERMUTATIONS[x], PERMUTATIONS[y]))


OPERATIONS = {op.name: op for op in [
    Operation("x+y", lambda x, y, p: (x + y) % p),
    Operation("x-y", lambda x, y, p: (x - y) % p),
    Operation("x*y", lambda x, y, p: x * y % p),
    Operation("x/y", _divide, needs_inverse=True, nonzero_y=True),
    Operation("x/y_if_y_odd_else_x-y", _divide_if_odd_else_subtract, needs_inverse=True),
    Operation("x^2+y^2", lambda x, y, p: (x**2 + y**2) % p),
    Operation("x^2+xy+y^2", lambda x, y, p: (x**2 + x * y + y**2) % p),
    Operation("x^2+xy+y^2+x", lambda x, y, p: (x**2 + x * y + y**2 + x) % p),
    Operation("x^3+xy", lambda x, y, p: (x**3 + x * y) % p),
    Operation("x^3+xy^2+y", lambda x, y, p: (x**3 + x * y**2 + y) % p),
    Operation("x^2+y", lambda x, y, p: (x**2 + y) % p),
    Operation("x^3+y", lambda x, y, p: (x**3 + y) % p),
    # Parity mixes from the original code: x even -> x+y, x odd -> x*y (or x-y).
    Operation("+*", lambda x, y, p: np.where(x % 2 == 0, x + y, x * y) % p),
    Operation("+-", lambda x, y, p: np.where(x % 2 == 0, x + y, x - y) % p),
    Operation("x.y", _s5(_compose), group="s5"),
    Operation("x.y.x^-1", _s5(lambda a, b: _compose(_compose(a, b), _INVERSES[_to_index(a)])),
              group="s5"),
    Operation("x.y.x", _s5(lambda a, b: _compose(_compose(a, b), a)), group="s5"),
]}


def is_prime(n: int) -> bool:
  return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def get(name: str) -> Operation:
  """The registered operation called `name`; ValueError names the allowed ones."""
  if name not in OPERATIONS:
    raise ValueError(f"data.operation: unknown operation {name!r}; allowed: "
                     f"{', '.join(OPERATIONS)}")
  return OPERATIONS[name]
