"""Training: `train_and_evaluate(config, workdir)` and the `grok-train` entry point."""

import dataclasses
import json
import math
import os
import signal
import sys
import time

import keras
import tensorflow as tf
from absl import app
from absl import flags
from ml_collections import config_flags

from grok_tf import checkpoints
from grok_tf import cli
from grok_tf import data
from grok_tf import evaluation
from grok_tf import figures
from grok_tf import logs
from grok_tf import losses
from grok_tf import methods
from grok_tf import model as model_lib
from grok_tf import optim
from grok_tf import threads
from grok_tf import validation
from grok_tf import workdirs
from grok_tf.analysis import fourier

# Exit codes of `grok-train`, for launch scripts.
EXIT_BAD_INPUT = cli.EXIT_BAD_INPUT
EXIT_NUMERICAL_FAULT = 3
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: checkpointed on SIGTERM/SIGUSR1; run again to resume


class NumericalFault(RuntimeError):
  """A NaN or Inf loss or weight; the message names the step."""


class Preempted(Exception):
  """SIGTERM or SIGUSR1 arrived; a checkpoint was written at `step`."""

  def __init__(self, signal_name: str, step: int):
    super().__init__(f"{signal_name} received; checkpointed at step {step}")
    self.step = step


class StopSignals:
  """Records SIGTERM/SIGUSR1 instead of dying, so the loop can checkpoint and exit.

  Repeated signals only record again: a second signal during the save changes nothing.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

  def __init__(self):
    self.received = None

  def __enter__(self):
    self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = self.received or signal.Signals(signum).name

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)


def batch_loss_and_gradients(model, loss_fn, inputs, targets, num_shards: int,
                             scale_loss=None) -> tuple:
  """A batch's mean training loss and its gradients, computed in `num_shards` shards.

  Each near-equal shard has its own tape and contributes its loss sum / batch size, so the
  shards' losses and gradients add up to those of one pass over the batch (to float
  rounding). The shards do not depend on each other: TensorFlow's inter-op threads run them
  side by side, one core each (see `grok_tf.threads`).

  Args:
    model: a `Transformer`.
    loss_fn: `(logits (n, 2, vocab), targets (n, 2)) -> (n,)` per-example loss.
    inputs: (batch, 6) int32 tokens with a static batch size; targets: (batch, 2) int32.
    num_shards: 1 (one pass) .. batch.
    scale_loss: loss scaling of mixed_float16 (None: none); the gradients are then those of
      the scaled loss.

  Returns:
    (mean loss: float32 scalar, [gradient of each of model.trainable_variables]).
  """
  batch_size = inputs.shape[0]
  variables = model.trainable_variables
  shard_losses, shard_gradients = [], []
  sizes = data.shard_sizes(batch_size, num_shards)
  for shard_inputs, shard_targets in zip(tf.split(inputs, sizes), tf.split(targets, sizes)):
    with tf.GradientTape() as tape:
      logits = model.answer_logits(shard_inputs, training=True)  # (shard, 2, vocab) float32
      loss = tf.reduce_sum(loss_fn(logits, shard_targets)) / batch_size
      scaled_loss = scale_loss(loss) if scale_loss else loss
    shard_losses.append(loss)
    # Dense: the embedding gradient arrives as IndexedSlices with repeated rows, whose
    # tf.linalg.global_norm would count each repeat apart (the table is small).
    shard_gradients.append([tf.convert_to_tensor(g)
                            for g in tape.gradient(scaled_loss, variables)])
  return tf.add_n(shard_losses), [tf.add_n(list(shards)) for shards in zip(*shard_gradients)]


def make_train_steps(model, optimizer, stream, config, step_counter, initial_weights,
                     hooks=None):
  """The compiled training loop body: `train_steps(n)` runs n updates in one graph call.

  Each update reads batch `step_counter` from `stream`, computes the answer-token loss in
  float32 (in `config.train.batch_shards` independent shards whose gradients are summed, so
  that the shards run side by side on the CPU cores), and applies AdamW (plus decay toward
  `initial_weights` when configured).
  `hooks` (a `methods.MethodHooks`, built from `config.methods` if None) adds the configured
  weight noise, gradient filters and update noise; with every method off it adds nothing.

  Returns:
    A `tf.function` from an int32 scalar n to (last batch loss, last gradient norm).
  """
  variables = model.trainable_variables
  loss_scaling = config.train.dtype_policy == "mixed_float16"
  decay_to_init = config.optim.weight_decay_target == "init" and config.optim.weight_decay > 0
  inner_optimizer = optimizer.inner_optimizer if loss_scaling else optimizer
  if hooks is None:
    hooks = methods.MethodHooks(config.methods, variables, config.seed)
  loss_fn = losses.LOSSES[config.optim.loss]
  scale_loss = optimizer.scale_loss if loss_scaling else None

  def one_step():
    inputs, targets = losses.answer_targets(stream.batch(step_counter))
    clean_weights = hooks.perturb_weights(step_counter)  # weight noise (None when off)
    loss, gradients = batch_loss_and_gradients(model, loss_fn, inputs, targets,
                                               config.train.batch_shards, scale_loss)
    hooks.restore_weights(clean_weights)
    if loss_scaling:
      gradients = [g / tf.cast(optimizer.dynamic_scale, g.dtype) for g in gradients]
    gradients = hooks.transform_gradients(gradients)  # Grokfast, OrthoGrad
    if decay_to_init:
      rate = inner_optimizer.learning_rate * config.optim.weight_decay
      optim.decay_toward(variables, initial_weights, rate)
    if loss_scaling:  # the wrapper unscales itself; hand it scaled gradients
      optimizer.apply([g * tf.cast(optimizer.dynamic_scale, g.dtype) for g in gradients],
                      variables)
    else:
      optimizer.apply(gradients, variables)
    hooks.add_update_noise(step_counter, inner_optimizer.learning_rate)
    step_counter.assign_add(1)
    return loss, tf.linalg.global_norm(gradients)

  @tf.function(jit_compile=config.train.xla)
  def train_steps(num_steps):
    loss, grad_norm = tf.constant(0.0), tf.constant(0.0)
    for _ in tf.range(num_steps):
      loss, grad_norm = one_step()
    return loss, grad_norm

  return train_steps


def weight_norms(model) -> dict:
  """L2 norms of all weights and of each group (embedding, block_i, unembedding)."""
  norms = {f"weights/norm_{name}": float(tf.linalg.global_norm(variables))
           for name, variables in model_lib.weight_groups(model).items()}
  norms["weights/norm"] = float(tf.linalg.global_norm(model.trainable_variables))
  return norms


def _held_steps(rows, config) -> int:
  """How many evaluations in a row, up to the last row, had val accuracy >= the threshold."""
  held = 0
  for row in reversed(rows):
    if row["validation/accuracy"] < config.train.early_stop_accuracy:
      break
    held += 1
  return held


@dataclasses.dataclass
class Trainer:
  """Everything one training run updates, built before any restore (so that restoring
  fills the optimizer moments too), and its compiled step function."""

  model: model_lib.Transformer
  optimizer: keras.optimizers.Optimizer
  step_counter: tf.Variable  # int64: updates done; batch `step_counter` comes next
  initial_weights: list  # copies of the weights at step 0 (decay toward init)
  random_states: list  # dropout seed-generator states
  train_steps: object  # tf.function: int32 n -> (last batch loss, last gradient norm)
  batch_size: int
  method_state: dict  # {name: trackable} of config.methods (Grokfast filter state)


def build_trainer(config, train_tokens, vocabulary_size: int) -> Trainer:
  """Model, optimizer, state and step function of `config` for (num_train, 7) tokens."""
  batch_size = data.batch_size(len(train_tokens), config.optim.batch_size,
                               config.optim.full_batch)
  stream = data.BatchStream(train_tokens, batch_size, config.seed)
  model = model_lib.build_model(config.model, vocabulary_size, config.train.dtype_policy)
  optimizer = optim.make_optimizer(config.optim, config.train.num_steps,
                                   config.train.dtype_policy)
  optimizer.build(model.trainable_variables)
  initial_weights = [tf.Variable(v, trainable=False) for v in model.trainable_variables]
  step_counter = tf.Variable(0, dtype=tf.int64, trainable=False)
  random_states = [v for v in model.variables if "seed_generator" in v.path]
  hooks = methods.MethodHooks(config.methods, model.trainable_variables, config.seed)
  train_steps = make_train_steps(model, optimizer, stream, config, step_counter,
                                 initial_weights, hooks)
  return Trainer(model, optimizer, step_counter, initial_weights, random_states, train_steps,
                 batch_size, hooks.state)


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains the configured model in `workdir`, resuming from its latest checkpoint.

  Returns:
    The run summary (also written to `<workdir>/summary.json`).
  """
  # Stop signals are recorded from the start, so one arriving during set-up still ends in
  # a checkpoint and exit code 75 rather than an unclean death.
  with StopSignals() as signals:
    # Set-up: validate, claim the workdir, make every random choice reproducible.
    validation.check(config)
    workdirs.prepare(workdir, config)
    intra_op, inter_op = threads.configure(config.train.batch_shards)
    keras.utils.set_random_seed(config.seed)
    if config.train.deterministic:
      tf.config.experimental.enable_op_determinism()

    # Data: the whole training set stays resident; batches are cut in-graph.
    splits = data.make_splits(config.data)
    split_path = os.path.join(workdir, "split.npz")
    if not os.path.exists(split_path):
      data.save_split(splits, split_path)
    trainer = build_trainer(config, splits.train_tokens, len(splits.table.vocabulary))
    model, optimizer, step_counter = trainer.model, trainer.optimizer, trainer.step_counter

    # Checkpoint restore.
    ckpts = checkpoints.Checkpoints(os.path.join(workdir, "checkpoints"), model,
                                    optimizer=optimizer, step=step_counter,
                                    initial_weights=trainer.initial_weights,
                                    random_states=trainer.random_states,
                                    **trainer.method_state)
    restored = ckpts.restore_latest()
    step = int(step_counter.numpy())
    if restored:
      print(f"resumed from {restored} at step {step}", flush=True)

    # Evaluation.
    evaluator = evaluation.Evaluator(model, config.eval.batch_size,
                                     shards=config.train.batch_shards)
    sets = {"train": splits.train_tokens, "validation": splits.validation_tokens}
    eval_steps = evaluation.evaluation_steps(config.train.num_steps, config.eval.every_steps,
                                             config.eval.points_per_decade)
    metric_log = logs.MetricLog(workdir, resume_step=step)
    progress = logs.Progress(config.train.num_steps)
    print(f"workdir: {workdir}\nTensorBoard: tensorboard --logdir {metric_log.tensorboard_dir}"
          f"\nCPU: {config.train.batch_shards} batch shards, {intra_op or 'default'} threads per "
          f"op, {inter_op or 'default'} concurrent ops", flush=True)
    start_time = time.monotonic() - metric_log.elapsed_seconds

    def evaluate(step, step_stats):
      row = {"step": step, **dict(evaluator.run(sets)), **step_stats}
      row["optim/learning_rate"] = float(optimizer.learning_rate)
      row.update(weight_norms(model))
      if config.eval.progress_measures:
        row.update(fourier.progress_measures(model, config.data.operation, config.data.modulus))
      if not all(math.isfinite(v) for v in row.values()):
        raise NumericalFault(f"non-finite metrics at step {step}: "
                             f"{[k for k, v in row.items() if not math.isfinite(v)]}")
      metric_log.append(row, time.monotonic() - start_time)
      progress.report(step, row)
      return row

    # Loop: run compiled chunks of updates between events (evaluation, checkpoints, end).
    if step == 0 and not metric_log.rows:
      ckpts.save_series(0)
      evaluate(0, {})
    pending = [s for s in eval_steps if s > step]
    held = _held_steps(metric_log.rows, config)
    stop_evals = config.train.early_stop_evals
    stopped_early = bool(stop_evals) and held >= stop_evals
    while step < config.train.num_steps and not stopped_early:
      next_series = 1 << step.bit_length()  # the next power of two
      next_latest = (step // config.checkpoint.every_steps + 1) * config.checkpoint.every_steps
      target = min(step + config.train.steps_per_call, next_series, next_latest,
                   pending[0] if pending else config.train.num_steps, config.train.num_steps)
      batch_loss, grad_norm = (float(t) for t in
                               trainer.train_steps(tf.constant(target - step, tf.int32)))
      if not (math.isfinite(batch_loss) and math.isfinite(grad_norm)):
        raise NumericalFault(f"non-finite loss or gradient in steps {step + 1}..{target} "
                             f"(batch loss {batch_loss}, gradient norm {grad_norm})")
      step = target
      if pending and step == pending[0]:
        pending.pop(0)
        row = evaluate(step, {"optim/batch_loss": batch_loss, "optim/grad_norm": grad_norm})
        held = held + 1 if row["validation/accuracy"] >= config.train.early_stop_accuracy else 0
        stopped_early = bool(stop_evals) and held >= stop_evals
      if checkpoints.is_series_step(step):
        ckpts.save_series(step)
      if (step % config.checkpoint.every_steps == 0 or step == config.train.num_steps
          or stopped_early or signals.received):
        ckpts.save_latest(step)
      if signals.received:
        progress.close()
        metric_log.close()
        raise Preempted(signals.received, step)
    progress.close()
    metric_log.close()

    # Summary and the grokking curve.
    rows = metric_log.rows
    seconds_at = {t["step"]: t["elapsed_seconds"] for t in metric_log.timing}
    step_validation_99 = logs.first_step_reaching(rows, "validation/accuracy")
    summary = {
        "final_step": step,
        "stopped_early": bool(stopped_early),
        "step_train_99": logs.first_step_reaching(rows, "train/accuracy"),
        "step_validation_99": step_validation_99,
        "seconds_to_validation_99": seconds_at.get(step_validation_99),
        "final_train_accuracy": rows[-1]["train/accuracy"],
        "final_validation_accuracy": rows[-1]["validation/accuracy"],
        "best_validation_accuracy": max(r["validation/accuracy"] for r in rows),
        "elapsed_seconds": metric_log.elapsed_seconds,
    }
    logs.write_atomically(os.path.join(workdir, "summary.json"),
                          json.dumps(summary, indent=2) + "\n")
    figures.plot_run(workdir)
    print(f"train accuracy >= 99% at step {summary['step_train_99']}; validation accuracy "
          f">= 99% at step {summary['step_validation_99']}; curve: "
          f"{os.path.join(workdir, figures.CURVE_FILENAME)}", flush=True)
    return summary


# ---------------------------------------------------------------------------------------------
# Command line. Flags are defined in `run()`, not at import: ml_collections applies
# `--config.<field>` overrides while the flag is defined, so their errors must be caught there.

# The replication guide's flag names: shorthands for the config fields they name.
SHORTHANDS = {"operation": "data.operation", "prime": "data.modulus",
              "training_fraction": "data.training_fraction",
              "weight_decay": "optim.weight_decay", "seed": "seed"}


def _define_flags() -> dict:
  """Defines grok-train's flags; returns their holders by name."""
  holders = {
      "config": config_flags.DEFINE_config_file(
          "config", workdirs.DEFAULT_CONFIG, "Config file, e.g. configs/default.py[:smoke].",
          lock_config=True),
      "workdir": flags.DEFINE_string(
          "workdir", None, "Run directory (created; resumed if it exists). "
          "Default: runs/<operation>-p<modulus>-frac<fraction>-wd<weight decay>-seed<seed>."),
      "overwrite_config": flags.DEFINE_bool(
          "overwrite_config", False, "Resume a workdir even though its saved config differs."),
  }
  for name, field in SHORTHANDS.items():
    define = {"prime": flags.DEFINE_integer, "seed": flags.DEFINE_integer,
              "operation": flags.DEFINE_string}.get(name, flags.DEFINE_float)
    holders[name] = define(name, None, f"Shorthand for --config.{field}.")
  return holders


def resolved_config(holders: dict):
  """The --config file with its overrides and the shorthand flags applied."""
  config = holders["config"].value
  with config.unlocked():
    for name, field in SHORTHANDS.items():
      if holders[name].value is not None:
        section, _, key = field.rpartition(".")
        (config[section] if section else config)[key] = holders[name].value
  return config


def main(argv, holders):
  config = resolved_config(holders)
  workdir = holders["workdir"].value or workdirs.default_workdir(config)
  try:
    workdirs.check_resumable(workdir, config, allow_change=holders["overwrite_config"].value)
    train_and_evaluate(config, workdir)
  except (validation.ConfigError, workdirs.WorkdirError, checkpoints.CheckpointError) as error:
    cli.fail(argv, str(error))
  except NumericalFault as error:
    print(f"grok-train: numerical fault: {error}; the last good checkpoint is kept",
          file=sys.stderr)
    sys.exit(EXIT_NUMERICAL_FAULT)
  except Preempted as stop:
    print(f"grok-train: {stop}; exit {EXIT_PREEMPTED}, run again to resume", file=sys.stderr)
    sys.exit(EXIT_PREEMPTED)


def run(argv=None):
  """Console-script entry point: every bad flag or config file is one line and exit 2."""
  argv = cli.command_argv("grok-train", argv)
  holders = cli.call_or_fail(_define_flags, argv)
  app.run(lambda argv: main(argv, holders), argv=argv,
          flags_parser=cli.flags_parser(lambda: resolved_config(holders)))


if __name__ == "__main__":
  run()
