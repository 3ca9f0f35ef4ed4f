"""Where metrics go: a JSON-lines file (the record), TensorBoard, and the terminal."""

import json
import os
import shutil
import sys
import time

import tensorflow as tf


def write_atomically(path: str, text: str) -> None:
  """Writes `text` to `path` so that a crash leaves either the old or the new file."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_rows(path: str) -> list:
  """The rows of a metrics.jsonl file (missing file: no rows)."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class MetricLog:
  """Evaluation rows in `<workdir>/metrics.jsonl`, mirrored as TensorBoard scalars.

  The JSON-lines file is the record; it holds no wall-clock values, so two runs with the same
  config and seed write identical files. Wall time goes to `timing.jsonl` (one
  {"step", "elapsed_seconds"} row per evaluation) and to TensorBoard. On resume, rows after
  the restored step are dropped from both files and TensorBoard's event files are rewritten
  from what remains, so no step is ever logged twice.
  """

  def __init__(self, workdir: str, resume_step: int):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.timing_path = os.path.join(workdir, "timing.jsonl")
    self.tensorboard_dir = os.path.join(workdir, "tensorboard")
    self.rows = [row for row in read_rows(self.path) if row["step"] <= resume_step]
    self.timing = [row for row in read_rows(self.timing_path) if row["step"] <= resume_step]
    self._save()
    shutil.rmtree(self.tensorboard_dir, ignore_errors=True)
    self.writer = tf.summary.create_file_writer(self.tensorboard_dir)
    for row, timing in zip(self.rows, self.timing):
      self._summarise(row, timing)
    self.writer.flush()

  @property
  def elapsed_seconds(self) -> float:
    """Wall time of the run up to its last logged evaluation (0 for a new run)."""
    return self.timing[-1]["elapsed_seconds"] if self.timing else 0.0

  def _summarise(self, row: dict, timing: dict) -> None:
    with self.writer.as_default():
      for tag, value in row.items():
        if tag != "step":
          tf.summary.scalar(tag, value, step=row["step"])
      tf.summary.scalar("time/elapsed_seconds", timing["elapsed_seconds"], step=row["step"])

  def _save(self) -> None:
    write_atomically(self.path, "".join(json.dumps(row) + "\n" for row in self.rows))
    write_atomically(self.timing_path, "".join(json.dumps(row) + "\n" for row in self.timing))

  def append(self, row: dict, elapsed_seconds: float) -> None:
    timing = {"step": row["step"], "elapsed_seconds": round(elapsed_seconds, 3)}
    self.rows.append(row)
    self.timing.append(timing)
    self._save()
    self._summarise(row, timing)
    self.writer.flush()

  def close(self) -> None:
    self.writer.close()


def first_step_reaching(rows: list, tag: str, threshold: float = 0.99):
  """The first logged step where `tag` >= threshold, or None."""
  return next((row["step"] for row in rows if row.get(tag, -1) >= threshold), None)


class Progress:
  """One status line: redrawn in place on a terminal, a plain line per report otherwise."""

  def __init__(self, total_steps: int, stream=sys.stdout):
    self.total_steps = total_steps
    self.stream = stream
    self.interactive = stream.isatty()
    self.last = (time.monotonic(), None)

  def report(self, step: int, row: dict) -> None:
    now = time.monotonic()
    then, then_step = self.last
    rate = (step - then_step) / (now - then) if then_step is not None and now > then else 0.0
    self.last = (now, step)
    width = 30
    done = int(width * step / self.total_steps)
    line = (f"step {step:>7}/{self.total_steps} "
            + (f"[{'=' * done}{' ' * (width - done)}] " if self.interactive else "")
            + f"{rate:7.1f} steps/s  train acc {row['train/accuracy']:.3f}  "
            f"val acc {row['validation/accuracy']:.3f}  val loss {row['validation/loss']:.3f}")
    if self.interactive:
      self.stream.write("\r" + line)
    else:
      self.stream.write(line + "\n")
    self.stream.flush()

  def close(self) -> None:
    if self.interactive:
      self.stream.write("\n")
      self.stream.flush()
