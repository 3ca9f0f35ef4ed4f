"""A sweep's results: one table row per grid point, and three figures.

  table.csv, table.md     one row per point: grid values, status, steps to 99%, accuracies
  steps_to_99.png         steps to 99% validation accuracy against training fraction
  curves.png              every point's train/validation accuracy and validation loss
  best_accuracy.png       best validation accuracy within the budget, per point

Reads only the sweep directory (sweep.json and each point's workdir), so it works while the
sweep is still running: unfinished points show their status and what they reached so far.
"""

import csv
import io
import os
import statistics

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from grok_tf import figures
from grok_tf import logs  # pylint: disable=wrong-import-position
from grok_tf import sweep  # pylint: disable=wrong-import-position

TABLE_CSV = "table.csv"
TABLE_MARKDOWN = "table.md"
FIGURE = "steps_to_99.png"
CURVES_FIGURE = "curves.png"
BEST_FIGURE = "best_accuracy.png"
RESULT_COLUMNS = ("status", "last_step", "num_steps", "step_train_99", "step_validation_99",
                  "final_train_accuracy", "final_validation_accuracy",
                  "best_validation_accuracy")


def point_metrics(sweep_dir: str) -> list:
  """[(point, metrics.jsonl rows)] of every grid point ([] for a point not started)."""
  return [(point, logs.read_rows(os.path.join(sweep_dir, "runs", point.name, "metrics.jsonl")))
          for point in sweep.points_of(sweep.read_plan(sweep_dir))]


def point_rows(sweep_dir: str, metrics_by_point: list = None) -> list:
  """One dict per grid point: index, name, the grid fields, then RESULT_COLUMNS.

  Steps to 99% are None until reached; final accuracies are those of the last evaluation so
  far, the best validation accuracy the highest of any evaluation.
  """
  rows = []
  for point, metrics in metrics_by_point or point_metrics(sweep_dir):
    workdir = os.path.join(sweep_dir, "runs", point.name)
    last = metrics[-1] if metrics else {}
    validation = [row["validation/accuracy"] for row in metrics if "validation/accuracy" in row]
    rows.append({
        "index": point.index,
        "name": point.name,
        **point.overrides,
        "status": sweep.status(workdir),
        "last_step": last.get("step"),
        "num_steps": point.config["train"]["num_steps"],
        "step_train_99": logs.first_step_reaching(metrics, "train/accuracy"),
        "step_validation_99": logs.first_step_reaching(metrics, "validation/accuracy"),
        "final_train_accuracy": last.get("train/accuracy"),
        "final_validation_accuracy": last.get("validation/accuracy"),
        "best_validation_accuracy": max(validation, default=None),
        "training_fraction": point.config["data"]["training_fraction"],
    })
  return rows


def _columns(rows: list) -> list:
  grid = [k for k in rows[0] if k not in RESULT_COLUMNS + ("index", "name", "training_fraction")]
  return ["index", *grid, *RESULT_COLUMNS]


def _cell(column: str, value) -> str:
  if value is None:
    return "-"
  return f"{value:.4f}" if column.endswith("_accuracy") else str(value)


def table_csv(rows: list) -> str:
  """The rows as CSV (empty cells for values not reached)."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  columns = _columns(rows)
  writer.writerow(columns)
  for row in rows:
    writer.writerow(["" if row[c] is None else row[c] for c in columns])
  return out.getvalue()


def table_markdown(rows: list) -> str:
  """The rows as a Markdown table ("-" for values not reached)."""
  columns = _columns(rows)
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_cell(c, row[c]) for c in columns) + " |" for row in rows]
  return "\n".join(lines) + "\n"


def plot_steps_to_99(rows: list, path: str, title: str = "") -> str:
  """Steps to 99% validation accuracy against training fraction (paper, figure 1 centre).

  One line per combination of the grid fields other than the training fraction and the
  seed, through the median over seeds. A finished run that never reached 99% is drawn as an
  open triangle at its budget; unfinished runs that have not reached it yet are left out.
  """
  series = {}
  for row in rows:
    series.setdefault(_label(row, rows, skip=("seed", "data.training_fraction")), []).append(row)
  figure, axis = plt.subplots(figsize=(6.5, 4.5))
  for index, ((label, members), color) in enumerate(zip(sorted(series.items()),
                                                       plt.cm.tab10.colors * 10)):
    reached = {}
    for row in members:
      fraction = row["training_fraction"] * 100
      if row["step_validation_99"] is not None:
        reached.setdefault(fraction, []).append(row["step_validation_99"])
        axis.plot(fraction, row["step_validation_99"], "o", color=color, alpha=0.4)
      elif row["status"] == "done":  # side by side where several series share a budget
        axis.plot(fraction + 1.2 * (index - (len(series) - 1) / 2), row["num_steps"], "^",
                  color=color, markerfacecolor="none")
    fractions = sorted(reached)
    axis.plot(fractions, [statistics.median(reached[f]) for f in fractions], "-o",
              color=color, label=label or "all points")
  axis.plot([], [], "^", color="gray", markerfacecolor="none",
            label="not reached within the budget")
  axis.set_yscale("log")
  axis.set_xlabel("training data fraction (%)")
  axis.set_ylabel("steps until validation accuracy >= 99%")
  axis.set_xlim(0, 100)
  axis.grid(alpha=0.3, which="both")
  axis.legend(fontsize=8)
  axis.set_title(title)
  return figures.save_figure(figure, path, dpi=120)


def _label(row: dict, rows: list, skip=("seed",)) -> str:
  """The grid values of `row` that vary between rows, other than `skip`, e.g.
  "operation=x/y, weight_decay=0.0"."""
  return ", ".join(f"{k.rpartition('.')[2]}={row[k]}" for k in _columns(rows)[1:]
                   if k not in RESULT_COLUMNS and k not in skip
                   and len({str(other[k]) for other in rows}) > 1)


def plot_sweep_curves(rows: list, metrics_by_point: list, path: str, title: str = "") -> str:
  """Every point's accuracy (train dashed, validation solid) and validation loss against steps.

  Steps on a log axis (step 0 drawn at 1), one colour per point.
  """
  figure, (accuracy_axis, loss_axis) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)
  for row, (_, metrics), color in zip(rows, metrics_by_point, plt.cm.tab10.colors * 10):
    if not metrics:
      continue
    steps = [max(m["step"], 1) for m in metrics]
    label = _label(row, rows, skip=()) or row["name"]
    accuracy_axis.plot(steps, [m["validation/accuracy"] * 100 for m in metrics], color=color,
                       label=label)
    accuracy_axis.plot(steps, [m["train/accuracy"] * 100 for m in metrics], color=color,
                       linestyle="--", linewidth=0.8)
    loss_axis.plot(steps, [m["validation/loss"] for m in metrics], color=color)
  accuracy_axis.plot([], [], "k--", linewidth=0.8, label="(dashed: train)")
  for axis in (accuracy_axis, loss_axis):
    axis.set_xscale("log")
    axis.grid(alpha=0.3)
  accuracy_axis.set_ylabel("accuracy (%)")
  accuracy_axis.set_ylim(-2, 102)
  accuracy_axis.legend(fontsize=7, loc="upper left")
  accuracy_axis.set_title(title)
  loss_axis.set_ylabel("validation loss")
  loss_axis.set_yscale("log")
  loss_axis.set_xlabel("optimization step")
  return figures.save_figure(figure, path, dpi=120)


def plot_best_accuracy(rows: list, path: str, title: str = "") -> str:
  """Best validation accuracy within the budget: one bar row per grid combination other than
  the training fraction (mean over seeds), one bar per training fraction."""
  fractions = sorted({row["training_fraction"] for row in rows})
  labels = list(dict.fromkeys(
      _label(row, rows, skip=("seed", "data.training_fraction")) or "all" for row in rows))
  best = {}
  for row in rows:
    if row["best_validation_accuracy"] is not None:
      key = (_label(row, rows, skip=("seed", "data.training_fraction")) or "all",
             row["training_fraction"])
      best.setdefault(key, []).append(row["best_validation_accuracy"] * 100)
  height = 0.8 / len(fractions)
  figure, axis = plt.subplots(figsize=(7, 1.2 + 0.32 * len(labels) * max(1, len(fractions) / 2)))
  for j, (fraction, color) in enumerate(zip(fractions, plt.cm.tab10.colors * 10)):
    values = [statistics.mean(best.get((label, fraction), [0.0])) for label in labels]
    positions = [i + (j - (len(fractions) - 1) / 2) * height for i in range(len(labels))]
    axis.barh(positions, values, height=height, color=color,
              label=f"{fraction * 100:g}% of the table")
  axis.set_yticks(range(len(labels)), labels, fontsize=8)
  axis.invert_yaxis()
  axis.axvline(99, color="gray", linestyle=":", linewidth=1)
  axis.set_xlim(0, 100)
  axis.set_xlabel("best validation accuracy within the budget (%)")
  axis.legend(fontsize=8, loc="lower right")
  axis.set_title(title)
  return figures.save_figure(figure, path, dpi=120)


def aggregate(sweep_dir: str, output_dir: str = None) -> tuple:
  """Writes the tables and figures of the module docstring into `output_dir` (default: the
  sweep directory).

  Returns:
    (rows, markdown table, [figure paths]).
  """
  output_dir = output_dir or sweep_dir
  metrics_by_point = point_metrics(sweep_dir)
  rows = point_rows(sweep_dir, metrics_by_point)
  markdown = table_markdown(rows)
  os.makedirs(output_dir, exist_ok=True)
  logs.write_atomically(os.path.join(output_dir, TABLE_CSV), table_csv(rows))
  logs.write_atomically(os.path.join(output_dir, TABLE_MARKDOWN), markdown)
  done = sum(row["status"] == "done" for row in rows)
  title = f"{sweep.read_plan(sweep_dir)['name']} ({done}/{len(rows)} runs finished)"
  budgets = sorted({row["num_steps"] for row in rows})
  paths = [
      plot_steps_to_99(rows, os.path.join(output_dir, FIGURE), title=title),
      plot_sweep_curves(rows, metrics_by_point, os.path.join(output_dir, CURVES_FIGURE),
                        title=title),
      plot_best_accuracy(rows, os.path.join(output_dir, BEST_FIGURE),
                         title=f"{title}, budget {'/'.join(map(str, budgets))} steps"),
  ]
  return rows, markdown, paths

