"""A sweep's results: one table row per grid point and the steps-to-99% figure.

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
RESULT_COLUMNS = ("status", "last_step", "num_steps", "step_train_99", "step_validation_99",
                  "final_train_accuracy", "final_validation_accuracy")


def point_rows(sweep_dir: str) -> list:
  """One dict per grid point: index, name, the grid fields, then RESULT_COLUMNS.

  Steps to 99% are None until reached; accuracies are those of the last evaluation so far.
  """
  record = sweep.read_plan(sweep_dir)
  rows = []
  for point in sweep.points_of(record):
    workdir = os.path.join(sweep_dir, "runs", point.name)
    metrics = logs.read_rows(os.path.join(workdir, "metrics.jsonl"))
    last = metrics[-1] if metrics else {}
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
    key = ", ".join(f"{k.rpartition('.')[2]}={row[k]}" for k in _columns(rows)[1:]
                    if k not in RESULT_COLUMNS and k not in ("seed", "data.training_fraction"))
    series.setdefault(key, []).append(row)
  figure, axis = plt.subplots(figsize=(6.5, 4.5))
  for (label, members), color in zip(sorted(series.items()), plt.cm.tab10.colors * 10):
    reached = {}
    for row in members:
      fraction = row["training_fraction"] * 100
      if row["step_validation_99"] is not None:
        reached.setdefault(fraction, []).append(row["step_validation_99"])
        axis.plot(fraction, row["step_validation_99"], "o", color=color, alpha=0.4)
      elif row["status"] == "done":
        axis.plot(fraction, row["num_steps"], "^", color=color, markerfacecolor="none")
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


def aggregate(sweep_dir: str) -> tuple:
  """Writes table.csv, table.md and steps_to_99.png into `sweep_dir`.

  Returns:
    (rows, markdown table, figure path).
  """
  rows = point_rows(sweep_dir)
  markdown = table_markdown(rows)
  logs.write_atomically(os.path.join(sweep_dir, TABLE_CSV), table_csv(rows))
  logs.write_atomically(os.path.join(sweep_dir, TABLE_MARKDOWN), markdown)
  done = sum(row["status"] == "done" for row in rows)
  figure = plot_steps_to_99(rows, os.path.join(sweep_dir, FIGURE),
                            title=f"{sweep.read_plan(sweep_dir)['name']} ({done}/{len(rows)} "
                            f"runs finished)")
  return rows, markdown, figure

