"""`grok-bench`: speed of the real training step against this machine's matmul throughput.

  grok-bench [--config=configs/default.py] [--policies=float32,mixed_bfloat16]
             [--xla=false,true] [--windows=5] [--window_seconds=2] [--output=bench.json]
             [--profile_dir=DIR]

For each dtype policy and XLA setting it builds the config's real `Trainer`, warms it up, and
times windows of compiled training calls; it reports the median steps/s, examples/s, the
step's FLOP (from the config), the achieved GFLOP/s and the model-FLOP utilisation: achieved
throughput / the matmul throughput measured in the same run at the model's shapes and dtype.
It also times full-set evaluation and the small regime where per-step overhead dominates
(the smoke-size model: 1 layer, width 32, p = 23, full batch). With --profile_dir it also
profiles one call per policy and reports where the CPU time goes, per kernel type.
"""

import json
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from ml_collections import config_flags

from grok_tf import cli
from grok_tf import data
from grok_tf import evaluation
from grok_tf import profiling
from grok_tf import threads
from grok_tf import train
from grok_tf import validation
from grok_tf import workdirs


def flops_per_step(config, vocabulary_size: int, batch_size: int) -> float:
  """Multiply-add FLOP (x2) of one training step as grok_tf computes it (backward = 2 x
  forward): every block but the last at all 6 input positions; the last block's
  query/key/value projection at all 6, the rest of it and the output projection at the 2
  answer positions only (`Transformer.answer_logits`)."""
  d, h, seq = config.model.width, config.model.hidden_width, data.INPUT_LENGTH
  answers = len(data.ANSWER_POSITIONS)

  def block(queries):  # per example, outputs at `queries` positions
    return (seq * 2 * d * 3 * d                # query/key/value projection
            + queries * (2 * d * d             # attention output projection
                         + 2 * 2 * d * h       # feed-forward in and out
                         + 2 * 2 * seq * d))   # scores and weighted values

  forward = batch_size * ((config.model.num_layers - 1) * block(seq) + block(answers)
                          + answers * 2 * d * vocabulary_size)
  return 3.0 * forward


def _median_rate(run_once, units_per_run: float, windows: int, window_seconds: float):
  """Median over `windows` timed windows of units/s; each window repeats run_once()."""
  rates = []
  for _ in range(windows):
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < window_seconds:
      run_once()
      runs += 1
    rates.append(runs * units_per_run / (time.perf_counter() - start))
  return statistics.median(rates)


def matmul_gflops(config, batch_size: int, dtype: str, windows: int, window_seconds: float):
  """The machine's matmul GFLOP/s at the model's two largest shapes (feed-forward in and out,
  (batch*seq, d) x (d, h) and (batch*seq, h) x (h, d)) in `dtype`: the better of one chain
  of them and one independent chain per usable core run side by side, in one graph."""
  rows, d, h = batch_size * data.INPUT_LENGTH, config.model.width, config.model.hidden_width
  rng = np.random.default_rng(0)
  w_in = tf.constant(rng.normal(size=(d, h)) / np.sqrt(d), dtype)
  w_out = tf.constant(rng.normal(size=(h, d)) / np.sqrt(h), dtype)
  repeats = 20

  @tf.function
  def chains(xs):
    for _ in tf.range(repeats):
      xs = [tf.matmul(tf.matmul(x, w_in), w_out) for x in xs]
    return xs

  rates = []
  for num_chains in sorted({1, threads.usable_cores()}):
    xs = [tf.constant(rng.normal(size=(rows, d)), dtype) for _ in range(num_chains)]
    chains(xs)[0].numpy()
    flop = num_chains * repeats * 2 * (2 * rows * d * h)
    rates.append(_median_rate(lambda xs=xs: chains(xs)[0].numpy(), flop / 1e9, windows,
                              window_seconds))
  return max(rates)


def time_training(config, splits, policy: str, xla: bool, windows: int,
                  window_seconds: float, profile_dir: str = "") -> dict:
  """Steps/s of the config's real compiled training calls under `policy` and `xla`; with a
  `profile_dir`, also the CPU time per kernel type of one call (traced into a subdirectory)."""
  config = config.copy_and_resolve_references()
  config.train.dtype_policy, config.train.xla = policy, xla
  keras.utils.set_random_seed(config.seed)
  trainer = train.build_trainer(config, splits.train_tokens, len(splits.table.vocabulary))
  steps = tf.constant(config.train.steps_per_call, tf.int32)
  compile_start = time.perf_counter()
  trainer.train_steps(steps)[0].numpy()  # trace, compile, warm up
  compile_seconds = time.perf_counter() - compile_start
  trainer.train_steps(steps)[0].numpy()
  rate = _median_rate(lambda: trainer.train_steps(steps)[0].numpy(),
                      config.train.steps_per_call, windows, window_seconds)
  flop = flops_per_step(config, len(splits.table.vocabulary), trainer.batch_size)
  profile = {}
  if profile_dir:
    profile = {"profile": profiling.kernel_times(
        lambda: trainer.train_steps(steps)[0].numpy(), config.train.steps_per_call,
        os.path.join(profile_dir, policy + ("_xla" if xla else "")))}
  return {"policy": policy, "xla": xla, "steps_per_second": rate,
          "examples_per_second": rate * trainer.batch_size, "batch_size": trainer.batch_size,
          "steps_per_call": config.train.steps_per_call, "flop_per_step": flop,
          "achieved_gflops": rate * flop / 1e9, "first_call_seconds": compile_seconds,
          "traces": trainer.train_steps.experimental_get_tracing_count(), **profile}


def time_evaluation(config, splits, windows: int, window_seconds: float) -> dict:
  """Examples/s of full-set evaluation (train + validation) in the config's policy."""
  trainer = train.build_trainer(config, splits.train_tokens, len(splits.table.vocabulary))
  evaluator = evaluation.Evaluator(trainer.model, config.eval.batch_size,
                                   shards=config.train.batch_shards)
  sets = {"train": splits.train_tokens, "validation": splits.validation_tokens}
  num_examples = sum(len(tokens) for tokens in sets.values())
  dict(evaluator.run(sets))  # trace
  rate = _median_rate(lambda: dict(evaluator.run(sets)), num_examples, windows, window_seconds)
  return {"policy": config.train.dtype_policy, "examples_per_second": rate,
          "examples": num_examples}


def run_benchmark(config, small_config, policies, xla_modes, windows=5,
                  window_seconds=2.0, log=lambda message: None, profile_dir="") -> dict:
  """Every measurement of `grok-bench` as one JSON-ready dict; `log` hears each as it ends."""
  validation.check(config)
  intra, inter = threads.configure(config.train.batch_shards)
  splits = data.make_splits(config.data)
  batch_size = data.batch_size(len(splits.train_tokens), config.optim.batch_size,
                               config.optim.full_batch)
  matmul = {}
  for policy in policies:
    dtype = "bfloat16" if policy == "mixed_bfloat16" else (
        "float16" if policy == "mixed_float16" else "float32")
    if dtype not in matmul:
      matmul[dtype] = matmul_gflops(config, batch_size, dtype, windows, window_seconds)
      log(f"matmul {dtype}: {matmul[dtype]:.0f} GFLOP/s")
  results = []
  for policy in policies:
    for xla in xla_modes:
      result = time_training(config, splits, policy, xla, windows, window_seconds,
                             profile_dir)
      dtype = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(policy, "float32")
      result["matmul_gflops"] = matmul[dtype]
      result["utilisation"] = result["achieved_gflops"] / matmul[dtype]
      results.append(result)
      log(f"{policy} xla={xla}: {result['steps_per_second']:.1f} steps/s, utilisation "
          f"{result['utilisation']:.2f}")
  small_splits = data.make_splits(small_config.data)
  return {
      "config": {"operation": config.data.operation, "modulus": config.data.modulus,
                 "num_layers": config.model.num_layers, "width": config.model.width,
                 "batch_size": batch_size, "batch_shards": config.train.batch_shards},
      "threads": {"cores": threads.usable_cores(), "intra_op": intra, "inter_op": inter},
      "matmul_gflops": matmul,
      "training": results,
      "evaluation": time_evaluation(config, splits, windows, window_seconds),
      "small_regime": [time_training(small_config, small_splits, "float32", xla, windows,
                                     window_seconds) for xla in xla_modes],
  }


def format_report(report: dict) -> str:
  """The human-readable table `grok-bench` prints."""
  config = report["config"]
  lines = [f"model: {config['num_layers']} layers, width {config['width']}, "
           f"{config['operation']} mod {config['modulus']}, batch {config['batch_size']} "
           f"in {config['batch_shards']} shards; {report['threads']['cores']} cores, "
           f"{report['threads']['intra_op']} threads per op (0: TensorFlow's default)",
           "matmul throughput at the model's shapes: " + ", ".join(
               f"{dtype} {gflops:.0f} GFLOP/s"
               for dtype, gflops in report["matmul_gflops"].items()),
           f"{'policy':<16}{'xla':<6}{'steps/s':>9}{'examples/s':>12}{'GFLOP/step':>12}"
           f"{'GFLOP/s':>9}{'util':>7}"]
  for r in report["training"]:
    lines.append(f"{r['policy']:<16}{str(r['xla']):<6}{r['steps_per_second']:>9.1f}"
                 f"{r['examples_per_second']:>12.0f}{r['flop_per_step'] / 1e9:>12.2f}"
                 f"{r['achieved_gflops']:>9.1f}{r['utilisation']:>7.2f}")
  for r in report["training"]:
    if "profile" in r:
      lines.append(f"profile {r['policy']} xla={r['xla']}: "
                   + profiling.format_kernel_times(r["profile"]))
  lines.append(f"evaluation ({report['evaluation']['policy']}): "
               f"{report['evaluation']['examples_per_second']:.0f} examples/s")
  for small in report["small_regime"]:
    lines.append(f"small regime (1 layer, width 32, full batch {small['batch_size']}, "
                 f"xla={small['xla']}): {small['steps_per_second']:.0f} steps/s")
  return "\n".join(lines)


def _define_flags() -> dict:
  return {
      "config": config_flags.DEFINE_config_file(
          "config", workdirs.DEFAULT_CONFIG, "Config whose training step is timed."),
      "small_config": config_flags.DEFINE_config_file(
          "small_config", f"{workdirs.DEFAULT_CONFIG}:smoke",
          "Config of the small, overhead-bound regime."),
      "policies": flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"],
                                    f"Dtype policies to time, from {validation.DTYPE_POLICIES}."),
      "xla": flags.DEFINE_list("xla", ["false"], "XLA settings to time: false, true or both "
                               "(XLA was much slower on the CPU measured here; see README)."),
      "windows": flags.DEFINE_integer("windows", 5, "Timed windows per measurement."),
      "window_seconds": flags.DEFINE_float("window_seconds", 2.0, "Length of each window."),
      "output": flags.DEFINE_string("output", "bench.json", "Where to write the JSON report."),
      "profile_dir": flags.DEFINE_string(
          "profile_dir", "", "If set, profile one training call per policy into this "
          "directory (TensorBoard's Profile tab shows it) and report CPU time per kernel."),
  }


def main(argv, holders):
  policies = holders["policies"].value
  unknown = [p for p in policies if p not in validation.DTYPE_POLICIES]
  if unknown:
    cli.fail(argv, f"--policies: got {','.join(unknown)}; allowed: "
                   f"{', '.join(validation.DTYPE_POLICIES)}")
  xla_values = [v.lower() for v in holders["xla"].value]
  if any(v not in ("true", "false") for v in xla_values):
    cli.fail(argv, f"--xla: got {','.join(holders['xla'].value)}; allowed: true, false")
  if holders["windows"].value < 1 or holders["window_seconds"].value <= 0:
    cli.fail(argv, "--windows must be >= 1 and --window_seconds > 0")
  try:
    report = run_benchmark(holders["config"].value, holders["small_config"].value, policies,
                           [v == "true" for v in xla_values], holders["windows"].value,
                           holders["window_seconds"].value, log=lambda m: print(m, flush=True),
                           profile_dir=holders["profile_dir"].value)
  except validation.ConfigError as error:
    cli.fail(argv, str(error))
  print(format_report(report), flush=True)
  with open(holders["output"].value, "w") as f:
    json.dump(report, f, indent=2)
  print(f"wrote {holders['output'].value}")


def run(argv=None):
  argv = cli.command_argv("grok-bench", argv)
  holders = cli.call_or_fail(_define_flags, argv)
  app.run(lambda argv: main(argv, holders), argv=argv,
          flags_parser=cli.flags_parser(lambda: holders["config"].value))


if __name__ == "__main__":
  run()
