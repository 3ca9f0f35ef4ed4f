"""Exact resume after SIGKILL and SIGTERM, corrupted checkpoints, bad input, numerical faults
and determinism, each on the real entry point."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from grok_tf import checkpoints
from grok_tf import train
from conftest import REPO, load_config

# A smoke-sized run that exercises every piece of resumable state: minibatches (data order),
# dropout (RNG state), decay toward the initial weights, warm-up (schedule position).
OVERRIDES = {"train.num_steps": 300, "optim.full_batch": False, "model.dropout_rate": 0.1,
             "optim.weight_decay_target": "init", "checkpoint.every_steps": 50,
             "train.steps_per_call": 10}
FLAGS = ["--config=configs/default.py:smoke"] + [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
GROK_TRAIN = os.path.join(os.path.dirname(sys.executable), "grok-train")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def own_lines(stderr):
  """stderr without TensorFlow's C++ start-up lines, which it prints before any flag is read
  and TF_CPP_MIN_LOG_LEVEL does not silence ("I0000 ... port.cc", "E0000 ... cuInit")."""
  return [line for line in stderr.splitlines()
          if not re.match(r"[IWEF]\d{4} |WARNING: All log messages before absl", line)]


def resumable_config():
  config = load_config("default", "smoke")
  for key, value in OVERRIDES.items():
    section, field = key.split(".")
    config[section][field] = value
  return config


def final_state(workdir):
  """{name: array} of the newest rolling checkpoint (model, optimizer, RNG), no counters."""
  reader = tf.train.load_checkpoint(checkpoints.latest(workdir)[1])
  return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
          if "save_counter" not in k and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def assert_same_run(workdir, reference):
  for name in ("metrics.jsonl", "split.npz", "config.json"):
    with open(os.path.join(workdir, name), "rb") as a, open(
        os.path.join(reference, name), "rb") as b:
      assert a.read() == b.read(), name
  ours, theirs = final_state(workdir), final_state(reference)
  assert ours.keys() == theirs.keys()
  for name in ours:
    np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of the resumable config."""
  workdir = str(tmp_path_factory.mktemp("reference") / "run")
  train.train_and_evaluate(resumable_config(), workdir)
  return workdir


def _start(workdir):
  return subprocess.Popen([GROK_TRAIN, *FLAGS, f"--workdir={workdir}"], cwd=REPO, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, process, timeout=120):
  deadline = time.monotonic() + timeout
  while not os.path.exists(path):
    assert process.poll() is None, process.communicate()
    assert time.monotonic() < deadline, f"{path} never appeared"
    time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path, reference):
  workdir = str(tmp_path / "run")
  process = _start(workdir)
  _wait_for(os.path.join(workdir, "checkpoints", "latest", "ckpt-100.index"), process)
  process.kill()
  process.wait()
  assert not os.path.exists(os.path.join(workdir, "summary.json"))  # really interrupted
  train.train_and_evaluate(resumable_config(), workdir)
  assert_same_run(workdir, reference)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_signal_checkpoints_exits_75_and_resumes_exactly(tmp_path, reference, signum):
  workdir = str(tmp_path / "run")
  process = _start(workdir)
  _wait_for(os.path.join(workdir, "checkpoints", "series", "step_00000064.index"), process)
  process.send_signal(signum)
  process.send_signal(signum)  # a second signal during the save changes nothing
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == train.EXIT_PREEMPTED, stderr
  stopped_at = checkpoints.latest(workdir)[0]
  assert f"checkpointed at step {stopped_at}" in stderr and 64 <= stopped_at < 300
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert rows[-1]["step"] <= stopped_at
  result = subprocess.run([GROK_TRAIN, *FLAGS, f"--workdir={workdir}"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert "resumed from" in result.stdout
  assert_same_run(workdir, reference)


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, reference):
  workdir = str(tmp_path / "run")
  shutil.copytree(reference, workdir)
  latest_step, prefix = checkpoints.latest(workdir)
  data_file = prefix + ".data-00000-of-00001"
  with open(data_file, "r+b") as f:
    f.truncate(os.path.getsize(data_file) // 2)
  summary = train.train_and_evaluate(resumable_config(), workdir)  # retrains 250 -> 300
  assert summary["final_step"] == latest_step
  assert_same_run(workdir, reference)


def test_no_readable_checkpoint_is_a_clear_error(tmp_path, reference):
  workdir = str(tmp_path / "run")
  shutil.copytree(reference, workdir)
  for data_file in tf.io.gfile.glob(os.path.join(workdir, "checkpoints", "latest", "*.data*")):
    with open(data_file, "r+b") as f:
      f.truncate(16)
  with pytest.raises(checkpoints.CheckpointError, match="no readable checkpoint.*ckpt-300"):
    train.train_and_evaluate(resumable_config(), workdir)


def test_leftover_temporary_files_from_a_crashed_write_are_ignored(tmp_path, reference):
  workdir = str(tmp_path / "run")
  shutil.copytree(reference, workdir)
  for name in ("metrics.jsonl", "config.json"):
    with open(os.path.join(workdir, name + ".tmp"), "w") as f:
      f.write('{"step": 3, "trunc')  # what a crash half-way through a write leaves
  train.train_and_evaluate(resumable_config(), workdir)
  assert_same_run(workdir, reference)


def test_same_seed_gives_identical_metric_files_and_seeds_are_separate(tmp_path, reference):
  again = str(tmp_path / "again")
  train.train_and_evaluate(resumable_config(), again)
  assert_same_run(again, reference)

  def weights_at_step_0(workdir):
    reader = tf.train.load_checkpoint(checkpoints.series(workdir)[0][1])
    return reader.get_tensor("model/embedding/embeddings/.ATTRIBUTES/VARIABLE_VALUE")

  short = resumable_config()
  short.train.num_steps = 16
  short.seed = 1
  other_seed = str(tmp_path / "seed1")
  train.train_and_evaluate(short, other_seed)
  split = lambda w: np.load(os.path.join(w, "split.npz"))["train_indices"]
  np.testing.assert_array_equal(split(other_seed), split(reference))
  assert not np.array_equal(weights_at_step_0(other_seed), weights_at_step_0(reference))
  first_loss = lambda w: json.loads(open(os.path.join(w, "metrics.jsonl")).readlines()[1])
  assert first_loss(other_seed) != first_loss(reference)
  short.data.split_seed = 5
  other_split = str(tmp_path / "split5")
  train.train_and_evaluate(short, other_split)
  assert not np.array_equal(split(other_split), split(reference))


BAD_INPUTS = [
    # (flags, text the one-line error must contain)
    (["--operation=x%y"], "data.operation: got 'x%y'; allowed: one of x+y"),
    (["--operation=x/y", "--prime=96"], "data.modulus: got 96"),
    (["--prime=1"], "data.modulus: got 1; allowed: an integer >= 2"),
    (["--training_fraction=0"], "data.training_fraction: got 0.0"),
    (["--training_fraction=1"], "data.training_fraction: got 1.0"),
    (["--training_fraction=0.00001"], "leaves an empty split"),
    (["--config.model.width=30"], "model.width: got 30 with model.num_heads=4"),
    (["--config.model.num_layers=0"], "model.num_layers: got 0; allowed: an integer > 0"),
    (["--config.optim.batch_size=-3"], "optim.batch_size: got -3"),
    (["--config.optim.learning_rate=-1e-3"], "optim.learning_rate: got -0.001"),
    (["--weight_decay=-1"], "optim.weight_decay: got -1.0; allowed: a number >= 0"),
    (["--config.train.dtype_policy=float16"], "train.dtype_policy: got 'float16'; allowed: "
     "one of float32, mixed_bfloat16, mixed_float16"),
    (["--config.model.activation=tanh"], "model.activation: got 'tanh'"),
    (["--config.optim.weight_decay_target=origin"], "optim.weight_decay_target: got 'origin'"),
    (["--config.model.widht=64"], "--config.model.widht: unknown config field 'widht'. "
     "Did you mean \"width\""),
    (["--config=configs/missing.py"], "--config: [Errno 2] No such file or directory"),
    (["--config=configs/default.py:bogus"], "unknown argument 'bogus'; allowed: smoke"),
    (["--config.model.width=wide"], "--config.model.width: invalid literal for int()"),
    (["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    (["stray"], "unexpected arguments: stray"),
]


@pytest.mark.slow
@pytest.mark.parametrize("flags,message", BAD_INPUTS, ids=[" ".join(f) for f, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, flags, message):
  workdir = tmp_path / "run"
  result = subprocess.run([GROK_TRAIN, f"--workdir={workdir}", *flags], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  errors = [line for line in own_lines(result.stderr) if "error" in line.lower()]
  assert len(errors) == 1 and errors[0].startswith("grok-train: error: "), result.stderr
  assert message in errors[0]
  assert "Traceback" not in result.stderr
  assert not workdir.exists()


@pytest.mark.slow
def test_unwritable_workdir_and_changed_config_are_refused(tmp_path, smoke_run):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  result = subprocess.run([GROK_TRAIN, "--config=configs/default.py:smoke",
                           f"--workdir={blocker}/run"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and "is not a writable directory" in result.stderr

  workdir, _, _ = smoke_run
  before = {p: os.path.getmtime(os.path.join(workdir, p)) for p in os.listdir(workdir)}
  result = subprocess.run([GROK_TRAIN, "--config=configs/default.py:smoke", "--seed=7",
                           "--config.optim.learning_rate=0.01", f"--workdir={workdir}"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert "optim.learning_rate: 0.001 -> 0.01" in result.stderr and "seed: 0 -> 7" in result.stderr
  assert "--overwrite_config" in result.stderr
  assert {p: os.path.getmtime(os.path.join(workdir, p)) for p in os.listdir(workdir)} == before


@pytest.mark.slow
def test_nan_loss_stops_with_the_step_and_exit_3(tmp_path):
  workdir = tmp_path / "run"
  result = subprocess.run([GROK_TRAIN, "--config=configs/default.py:smoke",
                           "--config.optim.learning_rate=1e30", "--config.optim.warmup_steps=0",
                           f"--workdir={workdir}"], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == train.EXIT_NUMERICAL_FAULT, result.stderr
  assert "numerical fault" in result.stderr and "step" in result.stderr
  assert not (workdir / "summary.json").exists()
  for _, prefix in checkpoints.series(str(workdir)):  # what was kept is finite
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      if name != "_CHECKPOINTABLE_OBJECT_GRAPH":
        assert np.all(np.isfinite(reader.get_tensor(name))), (prefix, name)
