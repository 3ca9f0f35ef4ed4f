"""Parameter-gradient outer products on a fixed probe set, through the per-example Gram.

With per-example loss gradients g_i (P-dimensional), F = (1/n) sum_i g_i g_i^T is P x P and
never formed; everything comes from the n x n Gram K = [g_i . g_j], whose non-zero
eigenvalues are n times those of F.
"""

import numpy as np
import tensorflow as tf

from grok_tf import losses
from grok_tf.analysis import spectra


def variable_groups(model) -> dict:
  """{group: [indices into model.trainable_variables]} for the groups embedding,
  block_<i>/attention, block_<i>/mlp, block_<i>/norms and unembedding, in that order."""
  groups = {"embedding": []}
  for block in model.blocks:
    for kind in ("attention", "mlp", "norms"):
      groups[f"{block.name}/{kind}"] = []
  groups["unembedding"] = []
  for index, variable in enumerate(model.trainable_variables):
    parts = variable.path.split("/")
    if parts[1] in ("embedding", "unembedding"):
      groups[parts[1]].append(index)
    else:
      kind = parts[2] if parts[2] in ("attention", "mlp") else "norms"
      groups[f"{parts[1]}/{kind}"].append(index)
  return {name: indices for name, indices in groups.items() if indices}


def make_per_example_fn(model):
  """A compiled `fn(tokens) -> [(batch, *shape)]`: each example's gradient of its answer loss
  (`losses.cross_entropy`) with respect to every trainable variable, for (batch, 7) tokens."""
  variables = model.trainable_variables

  @tf.function(reduce_retracing=True)
  def per_example(tokens):
    inputs, targets = losses.answer_targets(tokens)
    with tf.GradientTape() as tape:
      per_loss = losses.cross_entropy(model.answer_logits(inputs), targets)  # (batch,)
    return tape.jacobian(per_loss, variables)

  return per_example


def per_example_gradients(per_example, groups: dict, tokens: np.ndarray,
                          batch_size: int) -> dict:
  """{group: (n, P_group) float32} flattened per-example gradients of (n, 7) `tokens`.

  Args:
    per_example: `make_per_example_fn(model)`.
    groups: `variable_groups(model)`.
    tokens: (n, 7) int32 sequences.
    batch_size: examples per call (the last call is padded to it).
  """
  # Filled in place: one (n, P_group) float32 array per group, nothing concatenated.
  out = {name: None for name in groups}
  for start in range(0, len(tokens), batch_size):
    chunk = tokens[start:start + batch_size]
    padded = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - len(chunk), axis=0)])
    grads = per_example(tf.constant(padded, tf.int32))
    for name, indices in groups.items():
      columns = [tf.reshape(grads[i], (batch_size, -1)).numpy()[:len(chunk)] for i in indices]
      if out[name] is None:
        out[name] = np.empty((len(tokens), sum(c.shape[1] for c in columns)), np.float32)
      out[name][start:start + len(chunk)] = np.concatenate(columns, axis=1)
    del grads
  return out


def grams(gradients: dict) -> dict:
  """{group: (n, n) float64 Gram G G^T} from `per_example_gradients`."""
  return {name: (g @ g.T).astype(np.float64) for name, g in gradients.items()}


def split_measures(kernel, prefix: str, top: int) -> dict:
  """Measures of F = (1/n) sum g_i g_i^T from its Gram K on one set of n examples."""
  kernel = np.asarray(kernel, np.float64)
  n = len(kernel)
  values = spectra.eigenvalues(kernel) / n  # the non-zero spectrum of F
  mean_squared_norm = np.trace(kernel) / n
  out = {f"{prefix}/trace": float(mean_squared_norm),
         f"{prefix}/effective_rank": spectra.effective_rank(values),
         f"{prefix}/participation_ratio": spectra.participation_ratio(kernel),
         # ||mean g||^2 / mean ||g||^2
         f"{prefix}/coherence": (float(kernel.sum() / n ** 2 / mean_squared_norm)
                                 if mean_squared_norm > 0 else float("nan"))}
  for i in range(min(top, n)):
    out[f"{prefix}/eigenvalue_{i + 1}"] = float(values[i])
  return out


def mean_cosine(kernel, first: int) -> float:
  """Cosine of the mean gradient of examples [0, first) and of examples [first, n)."""
  a, b = slice(0, first), slice(first, len(kernel))
  dot = kernel[a, b].mean()
  norms = np.sqrt(kernel[a, a].mean() * kernel[b, b].mean())
  return float(dot / norms) if norms > 0 else float("nan")


def measures(group_kernels: dict, num_train: int, top: int):
  """Scalar measures on a probe set of `num_train` training then validation examples.

  Returns:
    (dict of scalars, (n, n) float64 full Gram K).
  """
  kernel = sum(group_kernels.values())
  train, validation = slice(0, num_train), slice(num_train, len(kernel))
  out = {}
  out.update(split_measures(kernel[train, train], "grad/train", top))
  out.update(split_measures(kernel[validation, validation], "grad/validation", top))
  out["grad/train_validation_cosine"] = mean_cosine(kernel, num_train)
  for name, group_kernel in group_kernels.items():
    out[f"grad_group/{name}/train_trace"] = float(np.trace(group_kernel[train, train])
                                                  / num_train)
    out[f"grad_group/{name}/train_validation_cosine"] = mean_cosine(group_kernel, num_train)
  return out, kernel


def kernel_distance(a, b) -> float:
  """1 - <A, B>_F / (||A||_F ||B||_F) (Fort et al. 2020): 0 for kernels equal up to scale."""
  return 1.0 - spectra.cosine(a, b)
