"""Input AGOP (average gradient outer product) with respect to the operand embeddings.

f(x) = the logits over the m element tokens at the input position that predicts z, centred
over classes, as a function of the embedded inputs x_a, x_b at the two operand positions
(token embedding plus position encoding, each of width d). With per-example Jacobians
J_a, J_b (m x d):
  G_emb    = mean [J_a J_b]^T [J_a J_b]            (2d x 2d)
  G_shared = mean (J_a^T J_a + J_b^T J_b)          (d x d)
  G_tok    = B G_emb B^T, B = blockdiag(E, E)      (2m x 2m), E = the element embedding rows:
             the AGOP with respect to one-hot operands (Mallinar et al. 2024).
"""

import numpy as np
import tensorflow as tf

from grok_tf import data
from grok_tf import operations
from grok_tf.analysis import circulant
from grok_tf.analysis import spectra

# The model reads positions 0..4 to predict z; causal attention makes position 5 irrelevant.
_PREFIX_LENGTH = data.ANSWER_POSITIONS[0] + 1


def logits_from_embedded(model, embedded, num_elements: int):
  """Centred answer logits from embedded inputs.

  Args:
    model: a `grok_tf.model.Transformer`.
    embedded: (batch, seq, width) inputs as `model.embedding` returns them, seq >= 5.
    num_elements: m, the number of element tokens (ids 0..m-1).

  Returns:
    (batch, m) float32 logits of the z prediction over the element tokens, minus their mean.
  """
  x = embedded
  for block in model.blocks:
    x = block(x, training=False)
  logits = model.unembed(x[:, data.ANSWER_POSITIONS[0]:data.ANSWER_POSITIONS[0] + 1])[:, 0]
  logits = logits[:, :num_elements]  # (batch, m)
  return logits - tf.reduce_mean(logits, axis=-1, keepdims=True)


def make_jacobian_fn(model, num_elements: int, xla: bool = False):
  """A compiled `fn(inputs) -> (batch, m, 2, width)` Jacobian of the centred answer logits
  with respect to the embedded operands, for (batch, >=5) int32 input tokens."""

  @tf.function(jit_compile=xla, reduce_retracing=True)
  def jacobians(inputs):
    embedded = model.embedding(inputs[:, :_PREFIX_LENGTH])  # (batch, 5, width)
    with tf.GradientTape() as tape:
      tape.watch(embedded)
      logits = logits_from_embedded(model, embedded, num_elements)  # (batch, m)
    full = tape.batch_jacobian(logits, embedded)  # (batch, m, 5, width)
    return tf.gather(full, list(data.OPERAND_POSITIONS), axis=2)  # (batch, m, 2, width)

  return jacobians


def agop(jacobians, inputs: np.ndarray, batch_size: int) -> dict:
  """G_emb, G_shared (float64) and the mean squared Frobenius norm of [J_a J_b].

  Args:
    jacobians: `make_jacobian_fn(model, m)`.
    inputs: (n, >=5) int32 input tokens.
    batch_size: examples per Jacobian call (the last call is padded to it, so one compiled
      shape serves all).
  """
  g_emb, squared_norm = 0.0, 0.0
  for start in range(0, len(inputs), batch_size):
    chunk = inputs[start:start + batch_size]
    padded = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - len(chunk), axis=0)])
    jac = jacobians(tf.constant(padded, tf.int32)).numpy()[:len(chunk)]  # (b, m, 2, width)
    flat = jac.reshape(-1, 2 * jac.shape[-1]).astype(np.float64)  # rows: (example, class)
    g_emb = g_emb + flat.T @ flat
    squared_norm += float(np.sum(flat ** 2))
  n = len(inputs)
  g_emb = g_emb / n
  width = len(g_emb) // 2
  g_shared = g_emb[:width, :width] + g_emb[width:, width:]
  return {"g_emb": g_emb, "g_shared": g_shared, "mean_squared_norm": squared_norm / n}


def element_embeddings(model, num_elements: int) -> np.ndarray:
  """(m, width) float64 token embeddings of the elements (rows 0..m-1)."""
  return model.embedding.embeddings.numpy()[:num_elements].astype(np.float64)


def token_agop(g_emb, embeddings) -> np.ndarray:
  """G_tok = B G_emb B^T with B = blockdiag(E, E): (2m, 2m) from (2d, 2d) and E (m, d)."""
  m, d = embeddings.shape
  b = np.zeros((2 * m, 2 * d))
  b[:m, :d] = embeddings
  b[m:, d:] = embeddings
  return b @ g_emb @ b.T


def nfa_correlations(gram, agop_matrix, prefix: str) -> dict:
  """Pearson correlation of vec(W^T W) and vec(G^(1/2)), with and without the diagonal."""
  root = spectra.psd_sqrt(agop_matrix)
  return {f"{prefix}": spectra.pearson(gram, root),
          f"{prefix}_off_diagonal": spectra.pearson(spectra.off_diagonal(gram),
                                                    spectra.off_diagonal(root))}


def measures(result: dict, model, num_elements: int, operation: str, top: int):
  """Scalar AGOP measures of one checkpoint, and G_tok.

  Args:
    result: `agop(...)`'s output.
    model: the model the AGOP was computed on (for its embedding and first-layer weights).
    num_elements: m.
    operation: the run's operation name (picks the discrete-log reordering).
    top: how many top eigenvalues to report.

  Returns:
    (dict of scalars, (2m, 2m) G_tok).
  """
  embeddings = element_embeddings(model, num_elements)
  g_tok = token_agop(result["g_emb"], embeddings)
  out = {"agop/mean_squared_jacobian_norm": result["mean_squared_norm"]}
  out.update(spectra.summary(result["g_emb"], "agop/emb", top))
  out.update(spectra.summary(g_tok, "agop/tok", top))
  out.update(spectra.summary(result["g_shared"], "agop/shared", top))
  # NFA: the embedding itself (E E^T against (E G_shared E^T)^(1/2)) and the first attention
  # projection W (width, 3 width), whose input-side Gram is W W^T.
  out.update(nfa_correlations(embeddings @ embeddings.T,
                              embeddings @ result["g_shared"] @ embeddings.T,
                              "agop/nfa_embedding"))
  qkv = model.blocks[0].attention.query_key_value.numpy().astype(np.float64)
  out.update(nfa_correlations(qkv @ qkv.T, result["g_shared"], "agop/nfa_qkv"))
  if operations.get(operation).group == "mod":  # residues: circulant structure can exist
    out.update(circulant.measures(spectra.psd_sqrt(g_tok), num_elements, operation))
  return out, g_tok
