"""Sweeps and SLURM: grid expansion, the shipped sweep configs, and real job arrays.

The SLURM tests start a private single-node SLURM (launch/slurm_ci.sh: installs it with
apt-get when missing, needs root) and stop it at the end; they skip, saying why, only where
SLURM can neither be found nor installed.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from grok_tf import aggregate
from grok_tf import sweep

REPO = pathlib.Path(__file__).resolve().parents[1]
CI_SCRIPT = REPO / "launch" / "slurm_ci.sh"
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
# Small jobs so that two fit on a 2-core node; they override train.sbatch's defaults.
SBATCH_ARGS = ["--cpus-per-task=1", "--mem=2G", "--time=10"]


def grok_sweep(*args, env=None, check=True):
  result = subprocess.run([sys.executable, "-m", "grok_tf.sweep_main", *args],
                          capture_output=True, text=True, env=env or ENV, check=False)
  if check:
    assert result.returncode == 0, result.stderr[-3000:]
  return result


def write_sweep_config(path, base, grid_lines, name="test"):
  """A sweep config file in a test directory (the tests' own experiments)."""
  path.write_text(
      "import ml_collections\n\n"
      "def get_config(arg=None):\n"
      "  sweep = ml_collections.ConfigDict()\n"
      f"  sweep.name = {name!r}\n"
      f"  sweep.base = {base!r}\n"
      "  sweep.grid = ml_collections.ConfigDict()\n"
      "  sweep.grid.data = ml_collections.ConfigDict()\n"
      "  sweep.grid.train = ml_collections.ConfigDict()\n"
      + "".join(f"  sweep.grid.{line}\n" for line in grid_lines)
      + "  return sweep\n")
  return path


# ---------------------------------------------------------------------------------------------
# Without SLURM: the grid, names, flag files, dry run.


def test_dry_run_of_the_shipped_fraction_sweep_lists_its_15_points(tmp_path):
  result = grok_sweep(f"--sweep={REPO}/configs/sweep_fraction.py",
                      f"--sweep_dir={tmp_path}/fraction", "--dry-run", "--max_concurrent=4",
                      "--", "--partition=cpu")
  lines = result.stdout.splitlines()
  names = [line.split()[2] for line in lines[1:16]]
  expected = [f"operation-{op}_training_fraction-{fraction}_seed-0"
              for op in ("xplusy", "xminusy", "xdivy") for fraction in (0.1, 0.3, 0.5, 0.7, 0.9)]
  assert names == expected
  command = lines[16]
  assert "sbatch --parsable --array=0-14%4 --job-name=grok-fraction" in command
  assert "--partition=cpu" in command and command.index("--partition=cpu") < command.index(
      "train.sbatch")
  assert f"--flagfile={tmp_path}/fraction/flags/%a.flags" in command
  assert not (tmp_path / "fraction").exists()  # a dry run writes nothing


def test_fraction_and_weight_decay_grids():
  from conftest import load_config  # pylint: disable=import-outside-toplevel
  configs = REPO / "configs"
  record = sweep.expand_sweep(load_config("sweep_fraction"), str(configs / "sweep_fraction.py"))
  grid = {(p["config"]["data"]["operation"], p["config"]["data"]["training_fraction"])
          for p in record["points"]}
  assert grid == {(op, f) for op in ("x+y", "x-y", "x/y") for f in (0.1, 0.3, 0.5, 0.7, 0.9)}
  assert all(p["config"]["optim"]["weight_decay"] == 1.0 for p in record["points"])
  ablation = sweep.expand_sweep(load_config("sweep_weight_decay"),
                                str(configs / "sweep_weight_decay.py"))
  assert sorted({p["config"]["optim"]["weight_decay"] for p in ablation["points"]}) == [0.0, 1.0]
  assert len(ablation["points"]) == 6
  assert {p["config"]["data"]["operation"] for p in ablation["points"]} == {"x/y"}


def test_replication_presets_fix_the_budget_outside_the_workdir_names(tmp_path):
  from conftest import load_config  # pylint: disable=import-outside-toplevel
  from grok_tf import operations  # pylint: disable=import-outside-toplevel
  configs = REPO / "configs"
  fraction = sweep.expand_sweep(load_config("sweep_fraction", "cpu"),
                                str(configs / "sweep_fraction.py"))
  assert fraction["fixed"] == {"train.num_steps": 8000}
  assert [p["config"]["data"]["training_fraction"] for p in fraction["points"][:5]] == [
      0.3, 0.4, 0.5, 0.7, 0.9]
  assert all(p["config"]["train"]["num_steps"] == 8000 for p in fraction["points"])
  assert fraction["points"][0]["name"] == "operation-xplusy_training_fraction-0.3_seed-0"
  sweep.write_plan(str(tmp_path), fraction)
  assert (tmp_path / "flags" / "0.flags").read_text().splitlines()[2:] == [
      "--config.train.num_steps=8000", "--config.data.operation=x+y",
      "--config.data.training_fraction=0.3", "--config.seed=0"]

  decay = sweep.expand_sweep(load_config("sweep_weight_decay", "cpu"),
                             str(configs / "sweep_weight_decay.py"))
  assert [(p["config"]["optim"]["weight_decay"], p["config"]["train"]["num_steps"],
           p["config"]["train"]["early_stop_evals"]) for p in decay["points"]] == [
               (0.0, 10_000, 0), (1.0, 10_000, 0)]

  catalog = sweep.expand_sweep(load_config("sweep_operations"),
                               str(configs / "sweep_operations.py"))
  assert len(catalog["points"]) == len(operations.OPERATIONS)
  assert {p["config"]["data"]["operation"] for p in catalog["points"]} == set(
      operations.OPERATIONS)
  assert {p["config"]["train"]["num_steps"] for p in catalog["points"]} == {3000}


def test_fixed_fields_take_one_value_each():
  import ml_collections  # pylint: disable=import-outside-toplevel
  fixed = ml_collections.ConfigDict({"train": {"num_steps": 100, "early_stop_evals": 0}})
  assert sweep.fixed_fields(fixed) == {"train.num_steps": 100, "train.early_stop_evals": 0}
  assert sweep.fixed_fields(None) == {}
  fixed = ml_collections.ConfigDict({"train": {"num_steps": (100, 200)}})
  with pytest.raises(sweep.SweepError, match="fixed field train.num_steps: .* a single value"):
    sweep.fixed_fields(fixed)
  base = ml_collections.ConfigDict({"train": {"num_steps": 1}})
  with pytest.raises(sweep.SweepError, match="sweep fixed field train.nm_steps: not a field"):
    sweep.apply_overrides(base, {"train.nm_steps": 3}, "fixed")


def test_local_runs_share_the_cores(tmp_path, monkeypatch):
  from conftest import load_config  # pylint: disable=import-outside-toplevel
  program = tmp_path / "fake-grok-train"
  program.write_text("#!/bin/sh\necho \"threads=$TF_NUM_INTRAOP_THREADS,$TF_NUM_INTEROP_THREADS $1\"\n")
  program.chmod(0o755)
  sweep_dir = str(tmp_path / "sweep")
  sweep.write_plan(sweep_dir, sweep.expand_sweep(load_config("sweep_fraction", "smoke"),
                                                 str(REPO / "configs" / "sweep_fraction.py")))
  monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
  monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
  codes = sweep.run_local(sweep_dir, [0, 1], 2, str(program), echo=lambda line: None)
  assert codes == {0: 0, 1: 0}
  share = max(1, os.cpu_count() // 2)
  assert (tmp_path / "sweep" / "logs" / "1.out").read_text() == (
      f"threads={share},{share} --flagfile={sweep.flags_path(sweep_dir, 1)}\n")
  monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")  # the user's choice wins
  sweep.run_local(sweep_dir, [2], 2, str(program), echo=lambda line: None)
  assert (tmp_path / "sweep" / "logs" / "2.out").read_text().startswith(f"threads=3,{share} ")


def test_flag_files_reproduce_the_point_configs(tmp_path):
  from conftest import load_config  # pylint: disable=import-outside-toplevel
  path = str(REPO / "configs" / "sweep_fraction.py")
  record = sweep.expand_sweep(load_config("sweep_fraction", "smoke"), path)
  sweep.write_plan(str(tmp_path), record)
  assert (tmp_path / "flags" / "2.flags").read_text().splitlines() == [
      f"--config={REPO}/configs/default.py:smoke",
      f"--workdir={tmp_path}/runs/operation-xplusy_training_fraction-0.7_seed-0",
      "--config.data.operation=x+y", "--config.data.training_fraction=0.7", "--config.seed=0"]
  sweep.write_plan(str(tmp_path), record)  # the same sweep again: fine
  other = sweep.expand_sweep(load_config("sweep_fraction"), path)
  with pytest.raises(sweep.SweepError, match="holds a different sweep"):
    sweep.write_plan(str(tmp_path), other)


def test_bad_grid_field_is_one_line_and_exit_2(tmp_path):
  config = write_sweep_config(tmp_path / "bad.py", f"{REPO}/configs/default.py:smoke",
                              ["data.opration = ('x+y',)"])
  result = grok_sweep(f"--sweep={config}", f"--sweep_dir={tmp_path}/s", check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "grok-sweep: error: sweep grid field data.opration: not a field of the base config")
  config = write_sweep_config(tmp_path / "bad_value.py", f"{REPO}/configs/default.py:smoke",
                              ["data.training_fraction = (0.5, 1.5)"])
  result = grok_sweep(f"--sweep={config}", f"--sweep_dir={tmp_path}/s", check=False)
  assert result.returncode == 2 and "data.training_fraction" in result.stderr
  result = grok_sweep(f"--sweep={tmp_path}/missing.py", check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      f"grok-sweep: error: --sweep={tmp_path}/missing.py: no such file")
  assert not (tmp_path / "s").exists()


def test_aggregate_reads_a_sweep_in_progress(tmp_path):
  from conftest import load_config  # pylint: disable=import-outside-toplevel
  path = str(REPO / "configs" / "sweep_fraction.py")
  sweep.write_plan(str(tmp_path), sweep.expand_sweep(load_config("sweep_fraction", "smoke"), path))
  names = [p["name"] for p in sweep.read_plan(str(tmp_path))["points"]]
  # Point 0 finished (reached 99% validation at step 48), point 1 is at step 32, 2 not started.
  accuracies = {0: (0.5, 0.1), 16: (0.995, 0.3), 32: (1.0, 0.8), 48: (1.0, 0.991), 64: (1.0, 1.0)}
  for name, last_step in ((names[0], 64), (names[1], 32)):
    workdir = tmp_path / "runs" / name
    workdir.mkdir(parents=True)
    (workdir / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "train/accuracy": t, "validation/accuracy": v,
                    "train/loss": 1 - t, "validation/loss": 1 - v}) + "\n"
        for s, (t, v) in accuracies.items() if s <= last_step))
  (tmp_path / "runs" / names[0] / "summary.json").write_text("{}")

  rows, markdown, figures = aggregate.aggregate(str(tmp_path))
  assert [r["status"] for r in rows] == ["done", "started", "pending"]
  assert [r["step_train_99"] for r in rows] == [16, 16, None]
  assert [r["step_validation_99"] for r in rows] == [48, None, None]
  assert [r["last_step"] for r in rows] == [64, 32, None]
  assert [r["final_validation_accuracy"] for r in rows] == [1.0, 0.8, None]
  assert [r["best_validation_accuracy"] for r in rows] == [1.0, 0.8, None]
  assert "| 1 | x+y | 0.5 | 0 | started | 32 | 64 | 16 | - | 1.0000 | 0.8000 | 0.8000 |" in markdown
  assert (tmp_path / "table.csv").read_text().splitlines()[3] == "2,x+y,0.7,0,pending,,64,,,,,"
  assert [os.path.basename(f) for f in figures] == [
      "steps_to_99.png", "curves.png", "best_accuracy.png"]
  assert all(os.path.getsize(f) > 10_000 for f in figures)
  with pytest.raises(sweep.SweepError, match="no sweep.json"):
    aggregate.aggregate(str(tmp_path / "runs"))


def test_array_spec_compresses_ranges():
  assert sweep.array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
  assert sweep.parse_indices("0,3-5", 6) == [0, 3, 4, 5]
  with pytest.raises(sweep.SweepError, match="0-5"):
    sweep.parse_indices("4-6", 6)


# ---------------------------------------------------------------------------------------------
# A real SLURM controller.


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
  """The environment (SLURM_CONF set) of a running single-node SLURM; started here if need be."""
  if os.environ.get("SLURM_CONF") and shutil.which("sinfo") and subprocess.run(
      ["sinfo", "-h"], capture_output=True, check=False).returncode == 0:
    yield dict(ENV)  # a SLURM that is already up: use it, leave it running
    return
  if os.geteuid() != 0:
    pytest.skip("starting a private SLURM needs root (or set SLURM_CONF to a running one)")
  state_dir = tmp_path_factory.mktemp("slurm")
  start = subprocess.run(["bash", str(CI_SCRIPT), "start", str(state_dir)], capture_output=True,
                         text=True, check=False)
  if start.returncode == 3:
    pytest.skip(f"SLURM cannot be installed here: {start.stderr.strip()[-500:]}")
  if start.returncode != 0:
    subprocess.run(["bash", str(CI_SCRIPT), "stop", str(state_dir)], check=False)
    pytest.fail(f"SLURM did not start: {start.stderr[-2000:]}")
  env = dict(ENV, SLURM_CONF=str(state_dir / "slurm.conf"))
  try:
    yield env
  finally:
    subprocess.run(["scancel", "--user=root"], env=env, check=False)
    subprocess.run(["bash", str(CI_SCRIPT), "stop", str(state_dir)], check=False)


def job_ids(env, job_id):
  """The task ids of `job_id` still known to squeue (pending, running, requeued)."""
  result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True,
                          text=True, env=env, check=False)
  return result.stdout.split("\n") if result.stdout.strip() else []


def wait_for(predicate, timeout_seconds, what):
  deadline = time.monotonic() + timeout_seconds
  while time.monotonic() < deadline:
    if predicate():
      return
    time.sleep(1)
  raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")


def submitted_job(result) -> str:
  line = next(l for l in result.stdout.splitlines() if l.startswith("submitted job array"))
  return line.split()[3]


def jobcomp_states(env, job_id) -> list:
  """JobState fields of the jobcomp log lines of an array job (one line per finished task)."""
  conf = pathlib.Path(env["SLURM_CONF"]).read_text()
  path = next(l.split("=", 1)[1] for l in conf.splitlines() if l.startswith("JobCompLoc="))
  lines = pathlib.Path(path).read_text().splitlines() if os.path.exists(path) else []
  return [field.split("=")[1] for line in lines if f"ArrayJobId={job_id} " in line
          for field in line.split() if field.startswith("JobState=")]


@pytest.mark.slow
def test_job_array_of_three_smoke_runs(slurm, tmp_path):
  sweep_dir = tmp_path / "fraction_smoke"
  result = grok_sweep(f"--sweep={REPO}/configs/sweep_fraction.py:smoke",
                      f"--sweep_dir={sweep_dir}", "--", *SBATCH_ARGS, env=slurm)
  job_id = submitted_job(result)
  twice = grok_sweep(f"--sweep={REPO}/configs/sweep_fraction.py:smoke",
                     f"--sweep_dir={sweep_dir}", env=slurm, check=False)
  assert twice.returncode == 2 and f"job array {job_id} of this sweep is still" in twice.stderr
  wait_for(lambda: not job_ids(slurm, job_id), 300, f"job array {job_id} to finish")

  record = sweep.read_plan(str(sweep_dir))
  for point in record["points"]:
    workdir = sweep_dir / point["workdir"]
    log = (sweep_dir / "logs" / f"{point['index']}.out").read_text()
    assert (workdir / "summary.json").exists(), log[-2000:]
    rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 64
    assert (workdir / "checkpoints" / "latest").is_dir()
    assert f"job {job_id}_{point['index']}] grok-train exited with 0" in log
  wait_for(lambda: len(jobcomp_states(slurm, job_id)) == 3, 30, "the jobcomp log")
  assert jobcomp_states(slurm, job_id) == ["COMPLETED"] * 3

  rows, markdown, figures = aggregate.aggregate(str(sweep_dir))
  assert len(rows) == 3 and [r["status"] for r in rows] == ["done"] * 3
  assert [r["data.training_fraction"] for r in rows] == [0.3, 0.5, 0.7]
  assert len((sweep_dir / "table.csv").read_text().splitlines()) == 1 + 3
  assert markdown.count("\n") == 2 + 3
  assert all(os.path.getsize(f) > 10_000 for f in figures)

  # A finished task is never launched again.
  again = grok_sweep(f"--sweep={REPO}/configs/sweep_fraction.py:smoke",
                     f"--sweep_dir={sweep_dir}", "--", *SBATCH_ARGS, env=slurm)
  assert "every point has finished: nothing to launch" in again.stdout


def _comparable(rows):
  return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """Starts the LONG_STEPS-step grid point of `long_sweep` outside SLURM, uninterrupted.

  Returns:
    A function that waits for it and returns its workdir.
  """
  tmp = tmp_path_factory.mktemp("uninterrupted")
  sweep_dir = tmp / "long"
  config_path = long_sweep(tmp)
  record = sweep.expand_sweep(_load(config_path), str(config_path))
  sweep.write_plan(str(sweep_dir), record)
  workdir = sweep_dir / record["points"][0]["workdir"]
  process = subprocess.Popen(
      [sys.executable, "-m", "grok_tf.train", f"--flagfile={sweep_dir}/flags/0.flags"],
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)

  def wait():
    assert process.wait(timeout=300) == 0, process.stderr.read()[-2000:]
    return workdir
  yield wait
  process.kill()
  process.wait()


# Long enough to interrupt after polling (once a second) has seen step 48: the smoke run
# trains a few hundred steps per second here.
LONG_STEPS = 2000


def long_sweep(directory):
  """A one-point sweep: the smoke config trained for LONG_STEPS steps."""
  return write_sweep_config(directory / "long.py", f"{REPO}/configs/default.py:smoke",
                            [f"train.num_steps = ({LONG_STEPS},)", "seed = (1,)"], name="long")


def _load(path):
  import importlib.util  # pylint: disable=import-outside-toplevel
  spec = importlib.util.spec_from_file_location("test_sweep_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def node_cpus(env) -> int:
  result = subprocess.run(["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True,
                          env=env, check=True)
  return int(result.stdout.split()[0])


@pytest.mark.slow
@pytest.mark.parametrize("interruption", ["signal", "preemption", "cancel"])
def test_interrupted_task_requeues_and_resumes_exactly(slurm, uninterrupted, tmp_path,
                                                       interruption):
  """`scancel --signal=USR1 --batch` (what --signal=B:USR1@120 sends before the time limit),
  or preemption by a job in the higher-priority partition `urgent`: the task checkpoints,
  requeues itself and resumes. `scancel`: the task checkpoints and stays cancelled; the same
  grok-sweep command resumes it. Every way ends with the metrics of an uninterrupted run."""
  sweep_dir = tmp_path / "long"
  cpus = node_cpus(slurm)
  # For preemption the task holds the whole node, so the urgent job must preempt it.
  sbatch_args = ([f"--cpus-per-task={cpus}", "--mem=2G", "--time=10"]
                 if interruption == "preemption" else SBATCH_ARGS)
  result = grok_sweep(f"--sweep={long_sweep(tmp_path)}", f"--sweep_dir={sweep_dir}", "--",
                      *sbatch_args, env=slurm)
  job_id = submitted_job(result)
  workdir = sweep_dir / sweep.read_plan(str(sweep_dir))["points"][0]["workdir"]

  def steps_logged():
    path = workdir / "metrics.jsonl"
    return [json.loads(l)["step"] for l in path.read_text().splitlines()] if path.exists() else []

  wait_for(lambda: steps_logged() and steps_logged()[-1] >= 48, 240, "training to start")
  assert steps_logged()[-1] < LONG_STEPS, "the run finished before it could be interrupted"
  if interruption == "signal":
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{job_id}_0"], env=slurm,
                   check=True)
  elif interruption == "cancel":
    subprocess.run(["scancel", job_id], env=slurm, check=True)
  else:
    subprocess.run(["sbatch", "--partition=urgent", f"--cpus-per-task={cpus}", "--mem=1G",
                    f"--output={tmp_path}/urgent.out", "--wrap", "sleep 1"], env=slurm,
                   check=True, capture_output=True)
  wait_for(lambda: not job_ids(slurm, job_id), 300, f"job {job_id} to requeue and finish")

  log = (sweep_dir / "logs" / "0.out").read_text()
  assert "received: asking grok-train" in log, log[-3000:]
  if interruption == "cancel":
    assert "not requeued by this script" in log and "(restart count 1)" not in log, log[-3000:]
    assert sweep.status(str(workdir)) == "started"
    again = grok_sweep(f"--sweep={long_sweep(tmp_path)}", f"--sweep_dir={sweep_dir}", "--",
                       *sbatch_args, env=slurm)
    job_id = submitted_job(again)
    wait_for(lambda: not job_ids(slurm, job_id), 300, f"job {job_id} to finish")
    log = (sweep_dir / "logs" / "0.out").read_text()
    assert log.count("(restart count 0)") == 2, log[-3000:]  # appended, not overwritten
  else:
    assert f"requeueing {job_id}_0" in log and "(restart count 1)" in log, log[-3000:]
    assert log.count("(restart count 0)") == 1  # appended, not overwritten
  assert "resumed from" in log, log[-3000:]
  reference = uninterrupted()
  resumed = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  expected = [json.loads(l) for l in (reference / "metrics.jsonl").read_text().splitlines()]
  assert resumed[-1]["step"] == LONG_STEPS
  assert _comparable(resumed) == _comparable(expected)
  summary = json.loads((workdir / "summary.json").read_text())
  expected_summary = json.loads((reference / "summary.json").read_text())
  del summary["elapsed_seconds"], expected_summary["elapsed_seconds"]
  assert summary == expected_summary
