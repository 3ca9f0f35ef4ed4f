"""Figures of the analysis: AGOP heatmaps and the stacked measures-against-steps figure."""


import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from grok_tf import figures
from grok_tf import logs  # pylint: disable=wrong-import-position
from grok_tf.analysis import spectra  # pylint: disable=wrong-import-position

# (panel title, [(measure, label)], log y axis)
PANELS = [
    ("AGOP (Mallinar et al.)", [("circulant/expected", "circulant dev. (off-diag. block)"),
                                ("circulant/diagonal_blocks", "circulant dev. (diag. blocks)"),
                                ("agop/alignment_final_off_diagonal",
                                 "alignment to final (off-diag.)"),
                                ("agop/alignment_final", "alignment to final (full)"),
                                ("agop/nfa_embedding", "NFA corr. (embedding)")], False),
    ("parameter gradients (probe set)", [("grad/train_validation_cosine",
                                          "cos(mean train g, mean val g)"),
                                         ("grad/kernel_distance_previous",
                                          "kernel distance to previous"),
                                         ("grad/kernel_distance_init", "kernel distance to init"),
                                         ("grad/train/coherence", "train coherence")], False),
    ("Fourier (Nanda et al.)", [("fourier/gini", "Gini of embedding freq. norms"),
                                ("fourier/top_frequency_fraction", "top frequency share")],
     False),
    ("losses over the operand grid", [("fourier/loss", "loss"),
                                      ("fourier/restricted_loss", "restricted loss"),
                                      ("fourier/excluded_loss", "excluded loss (train)")], True),
    ("sizes", [("weights/sum_squares", "sum of squared weights"),
               ("grad/train/trace", "tr F (train probe)"),
               ("agop/tok/trace", "tr G_tok")], True),
]


def _to_rgb(matrix) -> np.ndarray:
  """(h, w) -> (h, w, 3) uint8 with a diverging colour map, symmetric around 0."""
  scale = np.max(np.abs(matrix)) or 1.0
  return (plt.get_cmap("RdBu_r")((matrix / scale + 1) / 2)[..., :3] * 255).astype(np.uint8)


def agop_image(g_tok, num_elements: int, order=None) -> np.ndarray:
  """(2m', 2m', 3) uint8 image of G_tok^(1/2) with each operand block indexed by `order`."""
  root = spectra.psd_sqrt(g_tok)
  if order is not None:
    index = np.concatenate([order, order + num_elements])
    root = root[np.ix_(index, index)]
  np.fill_diagonal(root, 0.0)  # the diagonal dwarfs the structure
  return _to_rgb(root)


def save_heatmaps(images: dict, path: str) -> str:
  """A row of heatmaps {step: image}, saved as PNG."""
  figure, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.4), squeeze=False)
  for axis, (step, image) in zip(axes[0], sorted(images.items())):
    axis.imshow(image, interpolation="nearest")
    axis.set_title(f"step {step}")
    axis.set_xticks([])
    axis.set_yticks([])
  figure.suptitle("G_tok^(1/2), diagonal zeroed (rows/cols: x then y)")
  return figures.save_figure(figure, path, dpi=100)


def plot_analysis(rows: list, metric_rows: list, path: str, title: str = "") -> str:
  """Accuracy (from training's metrics) above the main measures, on one symlog step axis,
  with a dashed line where validation accuracy first reaches 99%."""
  panels = [p for p in PANELS if any(key in row for key, _ in p[1] for row in rows)]
  figure, axes = plt.subplots(1 + len(panels), 1, figsize=(8, 2.3 * (1 + len(panels))),
                              sharex=True, squeeze=False)
  axes = axes[:, 0]
  if metric_rows:
    steps = [r["step"] for r in metric_rows]
    for split, color in (("train", "tab:blue"), ("validation", "tab:red")):
      axes[0].plot(steps, [r[f"{split}/accuracy"] * 100 for r in metric_rows], color=color,
                   label=f"{split} accuracy")
  axes[0].set_ylabel("accuracy (%)")
  axes[0].set_ylim(-2, 102)
  axes[0].legend(loc="center left", fontsize=8)
  axes[0].set_title(title)
  steps = [row["step"] for row in rows]
  for axis, (name, series, log_y) in zip(axes[1:], panels):
    for key, label in series:
      values = [row.get(key, np.nan) for row in rows]
      if not np.all(np.isnan(values)):
        axis.plot(steps, values, marker=".", label=label)
    axis.set_title(name, fontsize=9)
    if log_y:
      axis.set_yscale("log")
    axis.legend(loc="best", fontsize=7)
  jump = logs.first_step_reaching(metric_rows, "validation/accuracy")
  last = max(steps + [r["step"] for r in metric_rows])
  for axis in axes:
    axis.set_xscale("symlog", linthresh=1)
    axis.set_xlim(0, max(last, 2) * 1.2)
    axis.grid(alpha=0.3)
    if jump is not None:
      axis.axvline(jump, color="black", linestyle="--", linewidth=1)
  axes[-1].set_xlabel("optimization step (symlog)"
                      + (f"; dashed: validation accuracy >= 99% at step {jump}" if jump else ""))
  return figures.save_figure(figure, path, dpi=100)
