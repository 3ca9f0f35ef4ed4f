"""Sweeps: a grid over run-config fields, expanded into one grok-train run per grid point.

A sweep config (`configs/sweep_*.py`) is `get_config(arg)` returning a ConfigDict with
  name   the sweep's name (default directory: sweeps/<name>)
  base   the run config every point starts from, "FILE[:ARG]", FILE relative to the sweep
         config's directory, e.g. "paper.py:x/y"
  grid   a ConfigDict shaped like the run config whose leaves are tuples of values, e.g.
         grid.data.training_fraction = (0.1, 0.3); every combination is one point (first field
         outermost); seeds are a field like any other (grid.seed = (0, 1, 2)).
  fixed  (optional) a ConfigDict shaped like the run config whose leaves are single values set
         in every point, e.g. fixed.train.num_steps = 8000: the budget of a sweep, kept out
         of the workdir names.

`write_plan()` writes the sweep directory, the single source every launcher and the aggregation
read:
  sweep.json             the grid and, per point: index, name, workdir, overrides, config
  flags/<index>.flags    grok-train's flags for that point (absl --flagfile format)
  runs/<name>/           the point's workdir, e.g. runs/operation-xdivy_training_fraction-0.3
  logs/<index>.out       the point's output (SLURM or --local), appended across restarts
  jobs.txt               the SLURM job array ids submitted, one a line
"""

import dataclasses
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import time

import ml_collections

from grok_tf import logs
from grok_tf import validation
from grok_tf import workdirs

SWEEP_FILENAME = "sweep.json"
JOBS_FILENAME = "jobs.txt"  # the job array ids submitted, one a line
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SCRIPT = os.path.join(REPO, "launch", "train.sbatch")


class SweepError(ValueError):
  """A sweep that cannot be planned or launched; the message is the one line shown."""


@dataclasses.dataclass(frozen=True)
class Point:
  """One grid point: its position, workdir name and the config fields it sets."""
  index: int
  name: str
  overrides: dict  # field path ("data.training_fraction") -> value, in grid order
  config: dict  # the resolved run config


# ---------------------------------------------------------------------------------------------
# Grid expansion.


def grid_fields(grid) -> list:
  """[(field path, values)] of a grid ConfigDict, in the order the fields were defined."""
  def walk(tree, prefix):
    for key, value in tree.items():
      if isinstance(value, dict):
        yield from walk(value, f"{prefix}{key}.")
      else:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values:
          raise SweepError(f"sweep grid field {prefix}{key} has no values")
        yield f"{prefix}{key}", values
  fields = list(walk(json.loads(grid.to_json()), ""))
  if not fields:
    raise SweepError("the sweep grid is empty: set e.g. grid.seed = (0, 1, 2)")
  return fields


def fixed_fields(fixed) -> dict:
  """{field path: value} of a sweep's `fixed` ConfigDict (None or empty: {})."""
  if not fixed:
    return {}
  fields = {}
  for path, values in grid_fields(fixed):
    if len(values) != 1:
      raise SweepError(f"sweep fixed field {path}: got {values}; allowed: a single value "
                       f"(put fields with several values in the grid)")
    fields[path] = values[0]
  return fields


def point_name(overrides: dict) -> str:
  """The readable workdir name of a point: `<field>-<value>` joined by "_".

  Fields are named by their last component unless two share it. Strings are spelled with
  words for operator characters (x/y -> xdivy), numbers as Python writes them (0.3, 1e-05).
  """
  leaves = [path.rpartition(".")[2] for path in overrides]
  parts = []
  for (path, value), leaf in zip(overrides.items(), leaves):
    key = leaf if leaves.count(leaf) == 1 else path.replace(".", "-")
    # pylint: disable-next=protected-access
    text = workdirs.slug(value) if isinstance(value, str) else repr(value)
    parts.append(f"{key}-{text}")
  return "_".join(parts)


def load_config_file(spec: str, directory: str):
  """`get_config(arg)` of "FILE[:ARG]" (FILE relative to `directory`) and the absolute spec."""
  path, colon, arg = spec.partition(":")
  path = os.path.normpath(os.path.join(directory, path))
  if not os.path.isfile(path):
    raise SweepError(f"sweep base config {spec!r}: no file {path}")
  module_spec = importlib.util.spec_from_file_location(
      f"grok_sweep_base_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if colon else module.get_config()
  except Exception as error:  # pylint: disable=broad-except
    raise SweepError(f"sweep base config {spec!r}: {error}") from error
  return config, path + (f":{arg}" if colon else "")


def apply_overrides(config, overrides: dict, kind: str = "grid"):
  """A copy of `config` with the fields of `overrides` set (type-checked by ConfigDict)."""
  config = ml_collections.ConfigDict(config.to_dict())
  for path, value in overrides.items():
    *sections, field = path.split(".")
    node = config
    for section in sections:
      node = node.get(section) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or field not in node:
      raise SweepError(f"sweep {kind} field {path}: not a field of the base config")
    try:
      node[field] = value
    except (TypeError, ValueError) as error:
      raise SweepError(f"sweep {kind} field {path}={value!r}: {error}") from error
  return config


def expand(base_config, grid) -> list:
  """All grid points (product of the grid's values), each checked like grok-train would.

  Raises:
    SweepError: a grid field that does not exist, a value of the wrong type or one that
      `validation.check` rejects, or two points with the same name.
  """
  fields = grid_fields(grid)
  points = []
  for index, values in enumerate(itertools.product(*(v for _, v in fields))):
    overrides = dict(zip((path for path, _ in fields), values))
    config = apply_overrides(base_config, overrides)
    try:
      validation.check(config)
    except validation.ConfigError as error:
      raise SweepError(f"sweep point {overrides}: {error}") from error
    points.append(Point(index, point_name(overrides), overrides,
                        json.loads(config.to_json())))
  names = [p.name for p in points]
  if len(set(names)) != len(names):
    raise SweepError("the sweep grid repeats a value: two points would share a workdir")
  return points


def flag_value(value) -> str:
  """A config value as grok-train's --config.<field>= flag spells it."""
  if isinstance(value, bool):
    return "true" if value else "false"
  return repr(value) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------
# The sweep directory.


def expand_sweep(sweep_config, sweep_config_path: str) -> dict:
  """The sweep record (what sweep.json holds) of a sweep config; writes nothing.

  Raises:
    SweepError: a missing field, a missing base config or a bad grid.
  """
  for field in ("name", "base", "grid"):
    if field not in sweep_config:
      raise SweepError(f"sweep config {sweep_config_path} has no field {field!r} "
                       f"(needs name, base, grid)")
  base_config, base_spec = load_config_file(sweep_config.base,
                                            os.path.dirname(sweep_config_path))
  fixed = fixed_fields(sweep_config.get("fixed"))
  points = expand(apply_overrides(base_config, fixed, "fixed"), sweep_config.grid)
  return {
      "name": sweep_config.name,
      "base": base_spec,
      "fixed": fixed,
      "grid": grid_fields(sweep_config.grid),
      "points": [{"index": p.index, "name": p.name, "workdir": os.path.join("runs", p.name),
                  "overrides": p.overrides, "config": p.config} for p in points],
  }


def points_of(record: dict) -> list:
  return [Point(p["index"], p["name"], p["overrides"], p["config"]) for p in record["points"]]


def check_same(sweep_dir: str, record: dict) -> None:
  """Raises `SweepError` if `sweep_dir` already holds a sweep other than `record`."""
  path = os.path.join(sweep_dir, SWEEP_FILENAME)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    if old != json.loads(json.dumps(record)):
      raise SweepError(f"--sweep_dir={sweep_dir} holds a different sweep ({old['name']}, "
                       f"{len(old['points'])} points); use another --sweep_dir")


def write_plan(sweep_dir: str, record: dict) -> None:
  """Writes sweep.json and the flag files, or checks that `sweep_dir` holds the same sweep.

  Raises:
    SweepError: `sweep_dir` already holds a different sweep.
  """
  check_same(sweep_dir, record)
  record = json.loads(json.dumps(record))
  for sub in ("flags", "runs", "logs"):
    os.makedirs(os.path.join(sweep_dir, sub), exist_ok=True)
  for point in points_of(record):
    lines = [f"--config={record['base']}",
             f"--workdir={os.path.join(os.path.abspath(sweep_dir), 'runs', point.name)}"]
    overrides = {**record.get("fixed", {}), **point.overrides}
    lines += [f"--config.{k}={flag_value(v)}" for k, v in overrides.items()]
    logs.write_atomically(flags_path(sweep_dir, point.index), "\n".join(lines) + "\n")
  logs.write_atomically(os.path.join(sweep_dir, SWEEP_FILENAME),
                        json.dumps(record, indent=1) + "\n")


def read_plan(sweep_dir: str) -> dict:
  """The sweep.json of `sweep_dir`."""
  path = os.path.join(sweep_dir, SWEEP_FILENAME)
  if not os.path.exists(path):
    raise SweepError(f"--sweep_dir={sweep_dir}: no {SWEEP_FILENAME} (plan it with grok-sweep)")
  with open(path) as f:
    return json.load(f)


def flags_path(sweep_dir: str, index) -> str:
  return os.path.join(sweep_dir, "flags", f"{index}.flags")


def log_path(sweep_dir: str, index) -> str:
  return os.path.join(sweep_dir, "logs", f"{index}.out")


def status(workdir: str) -> str:
  """"done" (summary.json written), "started" (metrics logged) or "pending"."""
  if os.path.exists(os.path.join(workdir, "summary.json")):
    return "done"
  if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    return "started"
  return "pending"


def unfinished(sweep_dir: str, points: list) -> list:
  """The points whose run has not finished: a finished run is never launched again."""
  return [p for p in points
          if status(os.path.join(sweep_dir, "runs", p.name)) != "done"]


# ---------------------------------------------------------------------------------------------
# Launching: one SLURM job array, or N local processes at a time.


def grok_train_program() -> str:
  """The grok-train next to this Python (the same venv), else grok-train on PATH."""
  path = os.path.join(os.path.dirname(sys.executable), "grok-train")
  return path if os.access(path, os.X_OK) else "grok-train"


def array_spec(indices: list) -> str:
  """SLURM's --array list for sorted task ids, with ranges: [0, 1, 2, 5] -> "0-2,5"."""
  ranges = []
  for index in indices:
    if ranges and index == ranges[-1][1] + 1:
      ranges[-1][1] = index
    else:
      ranges.append([index, index])
  return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def sbatch_command(sweep_dir: str, name: str, indices: list, max_concurrent: int = 0,
                   sbatch_args=(), script: str = BATCH_SCRIPT) -> list:
  """The sbatch command that submits `indices` of the sweep as ONE job array."""
  array = array_spec(indices) + (f"%{max_concurrent}" if max_concurrent else "")
  return ["sbatch", "--parsable", f"--array={array}", f"--job-name=grok-{name}",
          f"--output={os.path.join(sweep_dir, 'logs', '%a.out')}", *sbatch_args, script,
          f"--flagfile={flags_path(sweep_dir, '%a')}"]


def active_job(sweep_dir: str):
  """The sweep's last submitted job array if SLURM still lists any of its tasks, else None."""
  path = os.path.join(sweep_dir, JOBS_FILENAME)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    job_id = f.read().split()[-1]
  try:
    result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True,
                            text=True, check=False)
  except FileNotFoundError:
    return None
  return job_id if result.returncode == 0 and result.stdout.strip() else None


def submit(command: list, grok_train: str, sweep_dir: str) -> str:
  """Runs the sbatch `command` with GROK_TRAIN set for the jobs; returns the array job id,
  also appended to <sweep_dir>/jobs.txt."""
  env = dict(os.environ, GROK_TRAIN=grok_train)
  try:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  except FileNotFoundError as error:
    raise SweepError("sbatch not found: SLURM is not installed here; use --local=N") from error
  if result.returncode != 0:
    raise SweepError(f"sbatch failed ({result.returncode}): {result.stderr.strip()}")
  job_id = result.stdout.strip().split(";")[0]
  with open(os.path.join(sweep_dir, JOBS_FILENAME), "a") as f:
    f.write(job_id + "\n")
  return job_id


def run_local(sweep_dir: str, indices: list, parallel: int, grok_train: str,
              echo=print) -> dict:
  """Runs the points `indices` with at most `parallel` grok-train processes at a time.

  Output goes to logs/<index>.out (appended). On an exception (KeyboardInterrupt included)
  every running process is sent SIGTERM, checkpoints and exits 75: running again resumes.
  Each process gets cpu_count // parallel threads (TF_NUM_INTRAOP_THREADS and
  TF_NUM_INTEROP_THREADS) unless those are set: two single-threaded runs of the paper's
  model made 2 x 17 steps/s on 2 cores here, two two-threaded ones 2 x 15.

  Returns:
    {index: exit code}.
  """
  queue, running, codes = list(indices), {}, {}
  threads = str(max(1, (os.cpu_count() or 1) // parallel))
  env = {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads, **os.environ,
         "PYTHONUNBUFFERED": "1"}
  try:
    while queue or running:
      while queue and len(running) < parallel:
        index = queue.pop(0)
        with open(log_path(sweep_dir, index), "a") as log:
          running[index] = subprocess.Popen(
              [grok_train, f"--flagfile={flags_path(sweep_dir, index)}"], stdout=log,
              stderr=subprocess.STDOUT, env=env,
              start_new_session=True)  # Ctrl-C reaches only us; we send SIGTERM below
        echo(f"point {index}: started (log {log_path(sweep_dir, index)})")
      for index, process in list(running.items()):
        if process.poll() is not None:
          codes[index] = process.returncode
          del running[index]
          echo(f"point {index}: exit {process.returncode}")
      time.sleep(0.2)
  finally:
    for process in running.values():
      process.terminate()
    for index, process in running.items():
      codes[index] = process.wait()
  return codes


def parse_indices(text: str, count: int) -> list:
  """"0,3-5" -> [0, 3, 4, 5], each checked to be a point index."""
  indices = set()
  for part in filter(None, text.split(",")):
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
    if not match:
      raise SweepError(f"--points={text}: expected indices like 0,3-5")
    first, last = int(match.group(1)), int(match.group(2) or match.group(1))
    if last >= count or first > last:
      raise SweepError(f"--points={text}: indices must lie in 0-{count - 1}")
    indices.update(range(first, last + 1))
  return sorted(indices)
