"""The replication report's commands (docs/replication.md) on smoke-size runs.

The real runs take hours and are not part of the suite. Here the same commands that made
docs/figures/ run on a two-point smoke sweep (x+y and the S5 composition x.y, 32 updates),
and what they write is read back.
"""

import csv
import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def command(module, *args):
  """Runs `python -m grok_tf.<module> args...`; returns the CompletedProcess."""
  return subprocess.run([sys.executable, "-m", f"grok_tf.{module}", *args],
                        capture_output=True, text=True, env=ENV, check=False)


def is_png(path) -> bool:
  with open(path, "rb") as f:
    return f.read(8) == PNG_MAGIC and os.path.getsize(path) > 10_000


@pytest.fixture(scope="module")
def operations_sweep(tmp_path_factory):
  """The directory of `grok-sweep --sweep=configs/sweep_operations.py:smoke --local=2`."""
  sweep_dir = tmp_path_factory.mktemp("report") / "operations"
  done = command("sweep_main", f"--sweep={REPO}/configs/sweep_operations.py:smoke",
                 f"--sweep_dir={sweep_dir}", "--local=2")
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  return sweep_dir


@pytest.mark.slow
def test_aggregate_writes_the_report_tables_and_figures(operations_sweep, tmp_path):
  output = tmp_path / "figures" / "operations"
  done = command("aggregate_main", f"--sweep_dir={operations_sweep}", f"--output_dir={output}")
  assert done.returncode == 0, done.stderr[-2000:]
  assert sorted(os.listdir(output)) == [
      "best_accuracy.png", "curves.png", "steps_to_99.png", "table.csv", "table.md"]
  assert all(is_png(output / name) for name in os.listdir(output) if name.endswith(".png"))
  assert not (operations_sweep / "table.csv").exists()  # everything went to --output_dir

  with open(output / "table.csv") as f:
    table = list(csv.DictReader(f))
  assert [row["data.operation"] for row in table] == ["x+y", "x.y"]
  with open(operations_sweep / "sweep.json") as f:
    workdirs = [operations_sweep / p["workdir"] for p in json.load(f)["points"]]
  for row in table:
    lines = (workdirs[int(row["index"])] / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]
    assert row["status"] == "done" and row["num_steps"] == "32"
    assert float(row["best_validation_accuracy"]) == max(m["validation/accuracy"]
                                                         for m in metrics)
    assert float(row["final_validation_accuracy"]) == metrics[-1]["validation/accuracy"]
  assert "| x.y |" in (output / "table.md").read_text()


@pytest.mark.slow
def test_headline_curve_and_analysis_commands(operations_sweep, tmp_path):
  run = operations_sweep / "runs" / "operation-xplusy_training_fraction-0.5_seed-0"
  curve = tmp_path / "headline.png"
  done = command("plot", f"--workdir={run}", f"--output={curve}")
  assert done.returncode == 0 and done.stdout.strip() == str(curve), done.stderr[-2000:]
  assert is_png(curve)

  done = command("analyze", f"--workdir={run}", "--config.measures=fourier")
  assert done.returncode == 0, done.stderr[-2000:]
  assert is_png(run / "analysis" / "analysis.png")
  with open(run / "analysis" / "summary.json") as f:
    assert json.load(f)["analysed_steps"] == [0, 1, 2, 4, 8, 16, 32]


def test_aggregate_bad_input_is_one_line_and_exit_2(tmp_path):
  done = command("aggregate_main", f"--sweep_dir={tmp_path}")
  assert done.returncode == 2
  assert done.stderr.strip().splitlines()[-1] == (
      f"grok-aggregate: error: --sweep_dir={tmp_path}: no sweep.json (plan it with grok-sweep)")
