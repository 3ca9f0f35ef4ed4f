"""Figures drawn from a run's metrics: the grokking curve."""

import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from grok_tf import logs  # pylint: disable=wrong-import-position

CURVE_FILENAME = "curves.png"


def save_figure(figure, path: str, dpi: int = 120) -> str:
  """Lays out `figure`, writes it to `path` as PNG atomically, closes it; returns `path`."""
  figure.tight_layout()
  tmp = path + ".tmp.png"
  figure.savefig(tmp, dpi=dpi)
  plt.close(figure)
  os.replace(tmp, path)
  return path


def mark_99(axis, rows) -> None:
  """Dotted vertical lines where train and validation accuracy first reach 99%."""
  for tag, color in (("train/accuracy", "tab:blue"), ("validation/accuracy", "tab:red")):
    step = logs.first_step_reaching(rows, tag)
    if step:
      axis.axvline(step, color=color, linestyle=":", linewidth=1)


def plot_curves(rows: list, path: str, title: str = "") -> str:
  """Accuracy and loss of train and validation against steps (log axis), saved as PNG.

  Step 0 is drawn at step 1 so it stays on the log axis.
  """
  steps = [max(row["step"], 1) for row in rows]
  figure, (accuracy_axis, loss_axis) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
  for split, color in (("train", "tab:blue"), ("validation", "tab:red")):
    accuracy_axis.plot(steps, [r[f"{split}/accuracy"] * 100 for r in rows], color=color,
                       label=split)
    loss_axis.plot(steps, [r[f"{split}/loss"] for r in rows], color=color, label=split)
  for axis in (accuracy_axis, loss_axis):
    mark_99(axis, rows)
    axis.set_xscale("log")
    axis.grid(alpha=0.3)
  accuracy_axis.set_ylabel("accuracy (%)")
  accuracy_axis.set_ylim(-2, 102)
  accuracy_axis.legend(loc="center left")
  accuracy_axis.set_title(title)
  loss_axis.set_ylabel("loss")
  loss_axis.set_yscale("log")
  loss_axis.set_xlabel("optimization step")
  return save_figure(figure, path)


def plot_run(workdir: str, path: str = None) -> str:
  """Draws `<workdir>/curves.png` (or `path`) from the run's metrics.jsonl."""
  rows = logs.read_rows(os.path.join(workdir, "metrics.jsonl"))
  if not rows:
    raise FileNotFoundError(f"{workdir} has no metrics.jsonl rows yet")
  return plot_curves(rows, path or os.path.join(workdir, CURVE_FILENAME),
                     title=os.path.basename(os.path.normpath(workdir)))

