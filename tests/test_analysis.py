"""Tests of the gradient-outer-product analysis (grok_tf.analysis, grok-analyze)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import load_config
from grok_tf import data
from grok_tf import model as model_lib
from grok_tf.analysis import agop
from grok_tf.analysis import circulant
from grok_tf.analysis import fourier
from grok_tf.analysis import gradients
from grok_tf.analysis import runner
from grok_tf.analysis import spectra

P = 5  # tiny modulus for the models built here


@pytest.fixture(scope="module")
def tiny():
  """(model, (n, 7) tokens) of an untrained 1-layer width-8 model on x+y mod 5."""
  config = load_config("default", "smoke")
  config.model.width, config.model.num_heads, config.model.hidden_width = 8, 2, 16
  tf.keras.utils.set_random_seed(1)
  model = model_lib.build_model(config.model, P + 3)
  return model, data.make_table("x+y", P).tokens


def test_logits_from_embedded_match_the_model(tiny):
  model, tokens = tiny
  inputs = tokens[:, :-1]
  logits = model(inputs)[:, 4, :P].numpy()
  ours = agop.logits_from_embedded(model, model.embedding(inputs), P).numpy()
  np.testing.assert_allclose(ours, logits - logits.mean(axis=1, keepdims=True), atol=1e-5)


def _finite_difference_jacobians(model, inputs, eps=1e-2):
  """(n, m, 2, width) central differences of the centred logits at the operand positions."""
  embedded = model.embedding(inputs[:, :5]).numpy().astype(np.float64)
  n, _, width = embedded.shape
  jac = np.zeros((n, P, 2, width))
  for k, position in enumerate(data.OPERAND_POSITIONS):
    for i in range(width):
      delta = np.zeros_like(embedded)
      delta[:, position, i] = eps
      up = agop.logits_from_embedded(model, tf.constant(embedded + delta, tf.float32), P)
      down = agop.logits_from_embedded(model, tf.constant(embedded - delta, tf.float32), P)
      jac[:, :, k, i] = (up.numpy() - down.numpy()) / (2 * eps)
  return jac


def test_jacobians_and_agop_match_finite_differences(tiny):
  model, tokens = tiny
  inputs = tokens[:, :-1]
  jac = agop.make_jacobian_fn(model, P)(tf.constant(inputs)).numpy()
  fd = _finite_difference_jacobians(model, inputs)
  np.testing.assert_allclose(jac, fd, atol=2e-3 * np.abs(fd).max())
  result = agop.agop(agop.make_jacobian_fn(model, P), inputs, batch_size=7)  # padded last call
  flat = fd.reshape(len(fd), P, -1)
  g_fd = np.einsum("nci,ncj->ij", flat, flat) / len(fd)
  np.testing.assert_allclose(result["g_emb"], g_fd, atol=5e-3 * np.abs(g_fd).max())


def test_agop_is_symmetric_psd_with_trace_the_mean_squared_jacobian_norm(tiny):
  model, tokens = tiny
  inputs = tokens[:, :-1]
  result = agop.agop(agop.make_jacobian_fn(model, P), inputs, batch_size=8)
  jac = agop.make_jacobian_fn(model, P)(tf.constant(inputs)).numpy().astype(np.float64)
  for g in (result["g_emb"], result["g_shared"]):
    np.testing.assert_allclose(g, g.T, atol=1e-12)
    assert np.linalg.eigvalsh(g).min() > -1e-9 * np.trace(g)
  mean_squared = np.mean(np.sum(jac ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(np.trace(result["g_emb"]), mean_squared, rtol=1e-6)
  np.testing.assert_allclose(np.trace(result["g_shared"]), mean_squared, rtol=1e-6)
  np.testing.assert_allclose(result["mean_squared_norm"], mean_squared, rtol=1e-6)


def test_token_agop_equals_the_agop_through_one_hot_operands(tiny):
  model, tokens = tiny
  inputs = tf.constant(tokens[:, :5])
  result = agop.agop(agop.make_jacobian_fn(model, P), tokens[:, :-1], batch_size=32)
  g_tok = agop.token_agop(result["g_emb"], agop.element_embeddings(model, P))
  # Autodiff through one-hot operands: embedded[:, a] = onehot_a @ E + position.
  embedded = model.embedding(inputs)
  table = model.embedding.embeddings[:P]
  one_hot = tf.one_hot(tf.gather(inputs, list(data.OPERAND_POSITIONS), axis=1), P)  # (n, 2, P)
  with tf.GradientTape() as tape:
    tape.watch(one_hot)
    operands = tf.einsum("nkp,pd->nkd", one_hot, table)  # (n, 2, width)
    positions = tf.constant(model.embedding.positions[list(data.OPERAND_POSITIONS)])
    parts = [embedded[:, 0], operands[:, 0] + positions[0], embedded[:, 2],
             operands[:, 1] + positions[1], embedded[:, 4]]
    logits = agop.logits_from_embedded(model, tf.stack(parts, axis=1), P)
  jac = tape.batch_jacobian(logits, one_hot).numpy().reshape(len(tokens), P, 2 * P)
  direct = np.einsum("nci,ncj->ij", jac.astype(np.float64), jac) / len(tokens)
  np.testing.assert_allclose(g_tok, direct, rtol=1e-4, atol=1e-6 * np.abs(direct).max())


def test_circulant_deviation_of_circulant_noise_and_multiplication_tables():
  p = 23
  rng = np.random.default_rng(0)
  f = rng.normal(size=p)
  y, x = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")  # block[y, x]
  assert circulant.deviation(f[(x + y) % p], "hankel") < 1e-12
  assert circulant.deviation(f[(x - y) % p], "toeplitz") < 1e-12
  assert circulant.deviation(f[(x + y) % p], "toeplitz") > 0.5
  noise = rng.normal(size=(400, 400))
  assert abs(circulant.deviation(noise, "hankel") - 399 / 400) < 0.01
  # A block that depends on x*y (or x/y) mod p is Hankel (Toeplitz) in discrete-log order.
  inverse = np.array([pow(int(v), p - 2, p) if v else 0 for v in range(p)])
  for operation, product, form in (("x*y", x * y % p, "hankel"),
                                   ("x/y", x * inverse[y] % p, "toeplitz")):
    block = np.zeros((2 * p, 2 * p))
    block[p:, :p] = f[product]
    order = circulant.element_order(operation, p)
    assert circulant.deviation(f[product], form) > 0.5  # not circulant in residue order
    assert circulant.deviation(circulant.operand_block(block, p, order), form) < 1e-12
  assert circulant.smallest_generator(97) == 5
  assert sorted(circulant.discrete_log_order(97)) == list(range(1, 97))


def test_spectra_helpers():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(6, 6))
  assert spectra.cosine(a, 3.5 * a) == pytest.approx(1.0)
  assert gradients.kernel_distance(a @ a.T, 2 * a @ a.T) == pytest.approx(0.0, abs=1e-12)
  psd = a @ a.T
  root = spectra.psd_sqrt(psd)
  np.testing.assert_allclose(root @ root, psd, atol=1e-10)
  assert spectra.effective_rank(np.ones(7)) == pytest.approx(7.0)
  assert spectra.effective_rank([3.0, 0, 0]) == pytest.approx(1.0)
  assert spectra.participation_ratio(np.eye(4)) == pytest.approx(4.0)
  assert spectra.pearson(a, 2 * a + 1) == pytest.approx(1.0)


def test_fourier_basis_gini_and_restricted_loss():
  for m in (7, 22, 23):
    basis = fourier.basis(m)
    np.testing.assert_allclose(basis @ basis.T, np.eye(m), atol=1e-12)
    assert len(fourier.frequencies(m)) == m
  assert fourier.gini(np.eye(10)[3]) == pytest.approx(0.9)
  assert fourier.gini(np.ones(10)) == pytest.approx(0.0)
  # An embedding made of frequency 3 only puts all its norm there.
  m = 23
  embedding = np.outer(np.cos(2 * np.pi * 3 * np.arange(m) / m), np.ones(4))
  norms = fourier.frequency_norms(embedding)
  assert list(fourier.key_frequencies(norms, 1)) == [3]
  assert fourier.gini(norms) == pytest.approx(1 - 1 / len(norms))
  # Logits built from key-frequency directions: restricting changes nothing; excluding
  # leaves the class means only (chance).
  i, j = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
  z = (i + j) % m
  c = np.arange(m)
  logits = 4 * sum(np.cos(2 * np.pi * k * ((i + j)[..., None] - c) / m) for k in (2, 5))
  mask = np.random.default_rng(0).random((m, m)) < 0.5
  losses = fourier.restricted_and_excluded_loss(logits, z, mask, [2, 5], 1)
  assert losses["fourier/restricted_loss"] == pytest.approx(losses["fourier/loss"], rel=1e-9)
  assert losses["fourier/loss"] < 0.5
  assert losses["fourier/excluded_loss"] == pytest.approx(np.log(m), rel=1e-6)


def test_gram_spectrum_equals_the_spectrum_of_f(tiny):
  model, tokens = tiny
  groups = gradients.variable_groups(model)
  assert sorted(i for g in groups.values() for i in g) == list(range(len(
      model.trainable_variables)))
  per_example = gradients.per_example_gradients(gradients.make_per_example_fn(model), groups,
                                                tokens[:12], batch_size=5)
  g = np.concatenate(list(per_example.values()), axis=1).astype(np.float64)  # (n, P)
  n = len(g)
  # Per-example gradients equal one tape gradient per example.
  with tf.GradientTape() as tape:
    from grok_tf import losses  # pylint: disable=import-outside-toplevel
    inputs, targets = losses.answer_targets(tf.constant(tokens[3:4]))
    loss = losses.cross_entropy(model.answer_logits(inputs), targets)[0]
  single = tape.gradient(loss, model.trainable_variables)
  flat = np.concatenate([tf.convert_to_tensor(single[i]).numpy().ravel()
                         for indices in groups.values() for i in indices])
  np.testing.assert_allclose(g[3], flat, atol=1e-5 * np.abs(flat).max())
  f_matrix = g.T @ g / n  # P x P: formed only on this tiny model
  values, kernel = gradients.measures(gradients.grams(per_example), 6, top=n)
  np.testing.assert_allclose(spectra.eigenvalues(kernel)[:n] / n,
                             spectra.eigenvalues(f_matrix)[:n], atol=1e-6 * np.trace(f_matrix))
  train = g[:6]
  assert values["grad/train/trace"] == pytest.approx(np.mean(np.sum(train ** 2, 1)), rel=1e-5)
  mean = train.mean(axis=0)
  assert values["grad/train/coherence"] == pytest.approx(
      mean @ mean / np.mean(np.sum(train ** 2, 1)), rel=1e-5)
  assert values["grad/train_validation_cosine"] == pytest.approx(
      spectra.cosine(mean, g[6:].mean(axis=0)), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# The runner and the command line, on the shared smoke run.

def _quick_config(**changes):
  config = load_config("analysis", "quick")
  config.gradients.train_examples = config.gradients.validation_examples = 32
  config.agop.max_examples = 128
  for key, value in changes.items():
    section, _, field = key.rpartition(".")
    (config[section] if section else config)[field] = value
  return config


def test_runner_writes_everything_and_resumes(smoke_run, tmp_path):
  source, _, _ = smoke_run
  workdir = str(tmp_path / "run")
  shutil.copytree(source, workdir, ignore=shutil.ignore_patterns("analysis"))
  series_dir = os.path.join(workdir, "checkpoints", "series")
  # A run "still training": only steps up to 16 exist at first.
  later = tmp_path / "later"
  later.mkdir()
  for name in os.listdir(series_dir):
    if int(name[5:13]) > 16:
      shutil.move(os.path.join(series_dir, name), later / name)
  latest_dir = os.path.join(workdir, "checkpoints", "latest")
  shutil.move(latest_dir, tmp_path / "latest")
  config = _quick_config()
  lines = []
  rows = runner.analyse(config, workdir, log=lines.append)
  assert [r["step"] for r in rows] == [0, 1, 2, 4, 8, 16]
  assert rows[-1]["agop/alignment_final"] == pytest.approx(1.0)
  for name in os.listdir(later):
    shutil.move(later / name, os.path.join(series_dir, name))
  shutil.move(tmp_path / "latest", latest_dir)
  lines.clear()
  rows = runner.analyse(config, workdir, log=lines.append)
  assert [line.split(":")[0] for line in lines] == ["step 32", "step 64"]  # only the new ones
  assert [r["step"] for r in rows] == [0, 1, 2, 4, 8, 16, 32, 64]
  assert rows[-1]["agop/alignment_final"] == pytest.approx(1.0)
  assert rows[5]["agop/alignment_final"] < 1.0  # step 16 is no longer the final checkpoint
  directory = os.path.join(workdir, "analysis")
  for name in ("measures.csv", "measures.jsonl", "summary.json", "analysis.png",
               "agop_heatmaps.png", "config.json"):
    assert os.path.getsize(os.path.join(directory, name)) > 0, name
  with open(os.path.join(directory, "measures.csv")) as f:
    assert len(f.read().strip().splitlines()) == 1 + 8
  record = np.load(runner.cache_path(directory, 64))
  assert record["g_tok"].shape == (2 * 23, 2 * 23)
  assert record["kernel"].shape == (64, 64)
  expected = {"agop/nfa_embedding", "agop/nfa_embedding_off_diagonal", "circulant/hankel",
              "circulant/toeplitz", "circulant/min", "agop/tok/effective_rank",
              "agop/tok/eigenvalue_1", "agop/alignment_final_off_diagonal",
              "grad/train/participation_ratio", "grad/train/coherence",
              "grad/train_validation_cosine", "grad/kernel_distance_previous",
              "grad/kernel_distance_init", "grad_group/block_0/mlp/train_trace",
              "fourier/gini", "fourier/restricted_loss", "fourier/excluded_loss",
              "weights/sum_squares"}
  assert expected <= set(rows[-1])
  assert rows[0]["grad/kernel_distance_init"] == pytest.approx(0.0, abs=1e-9)
  # TensorBoard scalars on training's step axis, and heatmap images.
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  events = event_accumulator.EventAccumulator(os.path.join(directory, "tensorboard"),
                                              size_guidance={"tensors": 0})
  events.Reload()
  steps = [e.step for e in events.Tensors("circulant/min")]
  assert steps == [0, 1, 2, 4, 8, 16, 32, 64]
  assert len(events.Tensors("agop/g_tok_sqrt")) == 4
  # A changed analysis config recomputes; a subset of steps is honoured.
  lines.clear()
  rows = runner.analyse(_quick_config(steps="0,64", **{"fourier.key_frequencies": 3}),
                        workdir, log=lines.append)
  assert [r["step"] for r in rows] == [0, 64] and len(lines) == 2


def test_bad_input_is_one_line_and_exit_2(smoke_run, tmp_path):
  workdir, _, _ = smoke_run
  with pytest.raises(runner.AnalysisError, match="measures: got 'agop,bogus'"):
    runner.analyse(_quick_config(measures="agop,bogus"), workdir)
  with pytest.raises(runner.AnalysisError, match="steps: .*3.* have no series checkpoint"):
    runner.analyse(_quick_config(steps="0,3"), workdir)
  command = [sys.executable, "-m", "grok_tf.analyze"]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  for flags, expected in (([f"--workdir={tmp_path}"], "no config.json"),
                          ([f"--workdir={workdir}", "--config.agop.examples=test"],
                           "agop.examples: got 'test'"),
                          ([f"--workdir={workdir}", "--config.nonexistent=1"], "nonexistent")):
    done = subprocess.run(command + flags, capture_output=True, text=True, env=env,
                          check=False)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "grok-analyze: error" in line]
    assert len(errors) == 1 and expected in errors[0], done.stderr
  assert not os.path.exists(tmp_path / "analysis")


def test_command_line_runs(smoke_run, tmp_path):
  source, _, _ = smoke_run
  workdir = str(tmp_path / "run")
  shutil.copytree(source, workdir, ignore=shutil.ignore_patterns("analysis"))
  done = subprocess.run([sys.executable, "-m", "grok_tf.analyze", f"--workdir={workdir}",
                         "--config.measures=fourier"], capture_output=True, text=True,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=False)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip().splitlines()[-1].endswith("analysis/analysis.png")
  with open(os.path.join(workdir, "analysis", "summary.json")) as f:
    assert json.load(f)["analysed_steps"] == [0, 1, 2, 4, 8, 16, 32, 64]


# ---------------------------------------------------------------------------------------------
# End to end on a small run that groks.

@pytest.fixture(scope="module")
def grokked_run(tmp_path_factory):
  """(workdir, summary) of configs/tiny.py (x+y mod 31, 70%, 1 layer of width 64): train
  accuracy reaches 99% near step 220, validation accuracy near step 1,050 (under a minute on
  2 CPU cores).

  The assertions below hold for batch_shards 1 and 2, whose float rounding differs (99%
  validation at step 1,000 and 1,122): full-batch training at lr 3e-3 is chaotic, so exact
  values move with any change of arithmetic.
  """
  from grok_tf import train  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path_factory.mktemp("grokked") / "run")
  return workdir, train.train_and_evaluate(load_config("tiny"), workdir)


@pytest.mark.slow
def test_analysis_of_a_grokking_run(grokked_run):
  from grok_tf import checkpoints  # pylint: disable=import-outside-toplevel
  workdir, summary = grokked_run
  assert summary["step_validation_99"] is not None, summary
  config = load_config("analysis", "quick")
  rows = runner.analyse(config, workdir, log=lambda line: None)
  by_step = {r["step"]: r for r in rows}
  saved = [s for s, _ in checkpoints.series(workdir)] + [checkpoints.latest(workdir)[0]]
  assert sorted(by_step) == sorted(set(saved))
  init, last = rows[0], rows[-1]
  assert last["validation/accuracy"] >= 0.99
  # The AGOP becomes circulant around the jump: off-diagonal block (Hankel for x+y) and
  # diagonal blocks. (Off-diagonal distance at init 0.955, lowest 0.769 with 1 shard and
  # 0.814 with 2, both at step 1,024.)
  assert min(r["circulant/expected"] for r in rows) < 0.9 * init["circulant/expected"], [
      (r["step"], r["circulant/expected"]) for r in rows]
  assert last["circulant/diagonal_blocks"] < 0.3 * init["circulant/diagonal_blocks"]
  # Off-diagonal AGOP alignment rises while validation accuracy has not jumped yet.
  before = [r for r in rows if r["validation/accuracy"] < 0.7]
  assert before[-1]["step"] >= 256
  rise = before[-1]["agop/alignment_final_off_diagonal"] - init[
      "agop/alignment_final_off_diagonal"]
  assert rise > 0.1, [(r["step"], r["agop/alignment_final_off_diagonal"]) for r in rows]
  # Fourier sparsity grows; the restricted loss falls below the loss before the jump.
  assert last["fourier/gini"] > 3 * init["fourier/gini"]
  with open(os.path.join(workdir, "analysis", "summary.json")) as f:
    keys = json.load(f)["key_frequencies"]
  assert last["fourier/key_frequency_1"] in keys and len(keys) == 5
  assert before[-1]["fourier/restricted_loss"] < before[-1]["fourier/loss"]
  assert os.path.getsize(os.path.join(workdir, "analysis", "analysis.png")) > 10_000
