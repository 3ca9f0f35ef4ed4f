"""The fast training path computes the paper's maths, traces once, and the benchmark runs."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from grok_tf import bench
from grok_tf import data
from grok_tf import evaluation
from grok_tf import losses
from grok_tf import model as model_lib
from grok_tf import threads
from grok_tf import train
from conftest import REPO, load_config


def two_layer_model_and_batch(batch_size: int):
  """(smoke-width 2-layer model, (batch, 6) inputs, (batch, 2) targets) of x+y mod 23."""
  config = load_config("default", "smoke")
  config.model.num_layers = 2
  model = model_lib.build_model(config.model, vocabulary_size=26)
  tokens = tf.constant(data.make_table("x+y", 23).tokens[:batch_size])
  return (model, *losses.answer_targets(tokens))


def test_answer_only_projection_gives_the_reference_loss_and_gradients():
  model, inputs, targets = two_layer_model_and_batch(64)

  def reference_loss():  # all positions projected, then the answer positions picked
    logits = model(inputs)  # (batch, 6, vocab)
    return tf.reduce_mean(losses.cross_entropy(tf.gather(logits, [4, 5], axis=1), targets))

  def fast_loss():
    return tf.reduce_mean(losses.cross_entropy(model.answer_logits(inputs), targets))

  results = []
  for loss_fn in (reference_loss, fast_loss):
    with tf.GradientTape() as tape:
      loss = loss_fn()
    results.append((loss, tape.gradient(loss, model.trainable_variables)))
  (ref_loss, ref_grads), (fast_loss_value, fast_grads) = results
  np.testing.assert_allclose(fast_loss_value, ref_loss, rtol=1e-6)
  for ref, fast in zip(ref_grads, fast_grads):
    np.testing.assert_allclose(tf.convert_to_tensor(fast), tf.convert_to_tensor(ref),
                               rtol=1e-5, atol=1e-7)


def test_training_step_traces_once_over_many_calls():
  config = load_config("default", "smoke")
  splits = data.make_splits(config.data)
  trainer = train.build_trainer(config, splits.train_tokens, len(splits.table.vocabulary))
  for n in (1, 7, 3, 16, 1, 5):
    trainer.train_steps(tf.constant(n, tf.int32))
  assert trainer.train_steps.experimental_get_tracing_count() == 1
  assert int(trainer.step_counter.numpy()) == 33


def test_flops_per_step_of_the_paper_model():
  config = load_config("default")
  # Per example and position: query/key/value 98,304; output projection 32,768;
  # feed-forward 262,144; scores and weighted values 3,072 (396,288 in all). Block 1 at all
  # 6 positions, block 2 at 6 (query/key/value) and 2 (the rest), unembedding at 2.
  forward = 6 * 396_288 + 6 * 98_304 + 2 * (32_768 + 262_144 + 3_072) + 2 * 2 * 128 * 100
  assert bench.flops_per_step(config, 100, 512) == 3 * 512 * forward


def test_benchmark_runs_on_a_tiny_config_and_writes_json(tmp_path):
  output = tmp_path / "bench.json"
  result = subprocess.run(
      [os.path.join(os.path.dirname(sys.executable), "grok-bench"),
       "--config=configs/default.py:smoke", "--policies=float32,mixed_bfloat16",
       "--windows=1", "--window_seconds=0.1", f"--output={output}",
       f"--profile_dir={tmp_path / 'profile'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == 0, result.stderr
  report = json.loads(output.read_text())
  assert [r["policy"] for r in report["training"]] == ["float32", "mixed_bfloat16"]
  for r in report["training"] + report["small_regime"]:
    assert r["steps_per_second"] > 0 and r["traces"] == 1
  assert all(0 < r["utilisation"] for r in report["training"])
  assert report["evaluation"]["examples_per_second"] > 0
  assert set(report["matmul_gflops"]) == {"float32", "bfloat16"}
  assert "steps/s" in result.stdout
  for r in report["training"]:  # read back from the profiler's trace
    profile = r["profile"]
    assert profile["core_ms_per_step"] > 0 and 0 < profile["matmul_share"] < 1
    assert "_MklMatMul" in profile["kernels"] or "MatMul" in profile["kernels"]
    assert abs(sum(profile["kernels"].values()) - profile["core_ms_per_step"]) < 1e-6
    assert list((tmp_path / "profile" / r["policy"]).glob("**/*.xplane.pb"))
  assert "in matmul kernels" in result.stdout


def test_sharded_batch_gives_the_one_pass_loss_and_gradients():
  model, inputs, targets = two_layer_model_and_batch(100)
  one_loss, one_grads = train.batch_loss_and_gradients(
      model, losses.cross_entropy, inputs, targets, 1)
  reference = tf.reduce_mean(losses.cross_entropy(model.answer_logits(inputs), targets))
  np.testing.assert_allclose(one_loss, reference, rtol=1e-6)
  for num_shards in (2, 3, 7):  # 100 = 34 + 33 + 33: uneven shards too
    loss, grads = train.batch_loss_and_gradients(
        model, losses.cross_entropy, inputs, targets, num_shards)
    np.testing.assert_allclose(loss, one_loss, rtol=1e-6)
    for one, sharded in zip(one_grads, grads):
      np.testing.assert_allclose(sharded, one, rtol=1e-5, atol=1e-7)


def test_sharded_training_and_evaluation_follow_the_one_pass_run():
  config = load_config("default", "smoke")
  splits = data.make_splits(config.data)
  sets = {"train": splits.train_tokens, "validation": splits.validation_tokens}
  results = []
  for num_shards in (1, 3):
    config.train.batch_shards = num_shards
    tf.keras.utils.set_random_seed(0)
    trainer = train.build_trainer(config, splits.train_tokens, len(splits.table.vocabulary))
    first = [float(v) for v in trainer.train_steps(tf.constant(1, tf.int32))]
    trainer.train_steps(tf.constant(20, tf.int32))
    metrics = dict(evaluation.Evaluator(trainer.model, 100, shards=num_shards).run(sets))
    results.append((first, metrics))
  (one_first, one_metrics), (sharded_first, sharded_metrics) = results
  np.testing.assert_allclose(sharded_first, one_first, rtol=1e-5)  # loss, gradient norm
  assert sharded_metrics.keys() == one_metrics.keys()
  for key, value in one_metrics.items():
    np.testing.assert_allclose(sharded_metrics[key], value, rtol=1e-3, atol=1e-3, err_msg=key)


def test_evaluation_in_padded_chunks_equals_one_pass_over_the_set():
  model, _, _ = two_layer_model_and_batch(1)
  tokens = data.make_table("x+y", 23).tokens[:250]  # 3 chunks of 84 (padded) at 100 x 3
  inputs, targets = losses.answer_targets(tf.constant(tokens))
  logits = model.answer_logits(inputs)
  metrics = dict(evaluation.Evaluator(model, 100, shards=3).run({"set": tokens}))
  np.testing.assert_allclose(metrics["set/loss"],
                             np.mean(losses.cross_entropy(logits, targets)), rtol=1e-5)
  assert metrics["set/accuracy"] == np.mean(losses.correct(logits, targets))
  assert metrics["set/softmax_collapse"] == 0.0


def test_threads_follow_the_shards_in_a_fresh_process():
  code = "from grok_tf import threads; print(*threads.configure(2), threads.usable_cores())"
  env = {k: v for k, v in os.environ.items() if k not in threads.ENV_VARIABLES}
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
  intra, inter, cores = map(int, result.stdout.split())
  assert (intra, inter) == (max(1, cores // 2), cores)
  env["TF_NUM_INTRAOP_THREADS"] = "1"  # a choice made outside: left to TensorFlow
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
  assert result.stdout.split()[:2] == ["0", "0"]


def test_xla_training_follows_the_default_path():
  config = load_config("default", "smoke")  # full batch: the same data in both modes
  splits = data.make_splits(config.data)
  losses_by_mode = []
  for xla in (False, True):
    config.train.xla = xla
    tf.keras.utils.set_random_seed(0)
    trainer = train.build_trainer(config, splits.train_tokens, len(splits.table.vocabulary))
    losses_by_mode.append([float(trainer.train_steps(tf.constant(4, tf.int32))[0])
                           for _ in range(3)])
  np.testing.assert_allclose(losses_by_mode[1], losses_by_mode[0], rtol=1e-4)


def test_xla_batches_cover_each_epoch_once():
  tokens = data.make_table("x+y", 23).tokens[:250]  # 250 = 2.5 batches of 100
  stream = data.BatchStream(tokens, 100, seed=3)
  batch = tf.function(stream.batch, jit_compile=True)
  rows = np.concatenate([batch(tf.constant(s, tf.int64)).numpy() for s in range(5)])
  assert rows.shape == (500, 7)
  for epoch in (rows[:250], rows[250:]):
    np.testing.assert_array_equal(np.unique(epoch, axis=0), np.unique(tokens, axis=0))
