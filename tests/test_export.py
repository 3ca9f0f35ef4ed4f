"""SavedModel / .keras export of a trained smoke run (grok_tf/export.py, grok-export)."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from grok_tf import checkpoints
from grok_tf import data
from grok_tf import export
from grok_tf import model as model_lib

BIN = os.path.dirname(sys.executable)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _metrics_row(workdir, step):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return next(row for row in rows if row["step"] == step)


@pytest.fixture(scope="module")
def exported(smoke_run, tmp_path_factory):
  """(workdir, config, SavedModel dir, .keras path) written by the grok-export CLI."""
  workdir, config, _ = smoke_run
  out = tmp_path_factory.mktemp("export")
  saved, keras_path = str(out / "saved"), str(out / "model.keras")
  result = subprocess.run(
      [os.path.join(BIN, "grok-export"), f"--workdir={workdir}", "--step=best",
       f"--output={saved}", f"--keras_output={keras_path}"],
      capture_output=True, text=True, env=ENV, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "exported step 64" in result.stdout
  return workdir, config, saved, keras_path


def test_fresh_process_without_grok_tf_reproduces_training_accuracy(exported, tmp_path):
  workdir, config, saved, _ = exported
  table = data.make_table(config.data.operation, config.data.modulus)
  np.savez(tmp_path / "table.npz", x=table.x, y=table.y, z=table.z, tokens=table.tokens)
  child = textwrap.dedent(f"""
      import json, sys
      import numpy as np
      import tensorflow as tf
      table = np.load({str(tmp_path / 'table.npz')!r})
      loaded = tf.saved_model.load({saved!r})
      solved = loaded.signatures["solve"](x=tf.constant(table["x"], tf.int32),
                                          y=tf.constant(table["y"], tf.int32))
      logits = loaded.signatures["serving_default"](
          tokens=tf.constant(table["tokens"][:, :-1]))["logits"].numpy()
      meta = {{k: v.numpy() for k, v in loaded.signatures["metadata"]().items()}}
      np.save({str(tmp_path / 'logits.npy')!r}, logits)
      assert "grok_tf" not in sys.modules, "grok_tf was imported"
      print(json.dumps({{
          "solve_correct": int(np.sum(solved["answer"].numpy() == table["z"])),
          "both_tokens_correct": int(np.sum(np.all(
              logits[:, 4:6].argmax(-1) == table["tokens"][:, 5:7], axis=1))),
          "operation": meta["operation"].decode(), "modulus": int(meta["modulus"]),
          "step": int(meta["step"]), "vocabulary": [t.decode() for t in meta["vocabulary"]],
          "config": json.loads(meta["config_json"].decode())}}))
      """)
  result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          env=ENV, cwd=tmp_path, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])

  # The training run's accuracy at the exported step, as a count of correct equations.
  row = _metrics_row(workdir, 64)
  split = np.load(os.path.join(workdir, "split.npz"))
  num_train, num_validation = len(split["train_indices"]), len(split["validation_indices"])
  reported = (round(row["train/accuracy"] * num_train)
              + round(row["validation/accuracy"] * num_validation))
  assert reported > 0  # the smoke model answers some equations: the comparison can fail
  assert report["both_tokens_correct"] == reported
  assert report["solve_correct"] == reported

  # Logits equal the in-process model's.
  model, _, _ = export.load_model(workdir, "64")
  expected = model(tf.constant(table.tokens[:, :-1])).numpy()
  np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-5, atol=1e-5)

  # The model describes itself.
  assert report["operation"] == "x+y" and report["modulus"] == 23 and report["step"] == 64
  assert report["vocabulary"] == list(table.vocabulary)
  assert report["config"] == json.loads(config.to_json())
  with open(os.path.join(saved, "assets", "vocabulary.txt")) as f:
    assert f.read().splitlines() == list(table.vocabulary)


def test_saved_model_cli_lists_both_signatures_with_int32_inputs(exported):
  _, _, saved, _ = exported
  shown = subprocess.run([os.path.join(BIN, "saved_model_cli"), "show", "--dir", saved, "--all"],
                         capture_output=True, text=True, env=ENV, check=True).stdout
  signatures = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)Method name", shown, re.S))
  assert {"serving_default", "solve"} <= set(signatures)
  inputs = lambda body: dict(re.findall(r"inputs\['(\w+)'\] tensor_info:\s+dtype: (\w+)", body))
  assert inputs(signatures["serving_default"]) == {"tokens": "DT_INT32"}
  assert inputs(signatures["solve"]) == {"x": "DT_INT32", "y": "DT_INT32"}
  assert "outputs['logits']" in signatures["serving_default"]
  assert "outputs['answer']" in signatures["solve"]
  assert "outputs['probability']" in signatures["solve"]


def test_solve_rejects_out_of_range_operands_and_marks_non_elements(exported):
  _, _, saved, _ = exported
  solve = tf.saved_model.load(saved).signatures["solve"]
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"x must be in \[0, 23\)"):
    solve(x=tf.constant([23]), y=tf.constant([0]))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"y must be in \[0, 23\)"):
    solve(x=tf.constant([0]), y=tf.constant([-1]))
  out = solve(x=tf.constant([0, 5]), y=tf.constant([1, 7]))
  answer, probability = out["answer"].numpy(), out["probability"].numpy()
  assert answer.dtype == np.int32 and answer.shape == (2,)
  assert np.all((answer >= -1) & (answer < 23)) and np.all((probability > 0) & (probability <= 1))


def test_keras_file_round_trip(exported, smoke_run):
  workdir, _, _, keras_path = exported
  model, _, _ = export.load_model(workdir, "best")
  loaded = keras.saving.load_model(keras_path)
  assert isinstance(loaded, model_lib.Transformer)
  tokens = data.make_table("x+y", 23).tokens[:50, :-1]
  np.testing.assert_array_equal(loaded(tokens).numpy(), model(tokens).numpy())


def test_select_checkpoint(smoke_run, tmp_path):
  workdir, _, _ = smoke_run
  saved_steps = [0, 1, 2, 4, 8, 16, 32, 64]
  assert list(export.saved_checkpoints(workdir)) == saved_steps
  assert export.select_checkpoint(workdir, "latest")[0] == 64
  step, prefix = export.select_checkpoint(workdir, "32")
  assert step == 32 and os.path.exists(prefix + ".index")
  for bad in ("3", "last", "-1"):
    with pytest.raises(export.ExportError, match=r"--step=.*0, 1, 2, 4, 8, 16, 32, 64"):
      export.select_checkpoint(workdir, bad)
  # best: highest validation accuracy among saved steps, then lower loss, then later step.
  fake = tmp_path / "run"
  shutil.copytree(os.path.join(workdir, "checkpoints"), fake / "checkpoints")
  rows = [{"step": s, "validation/accuracy": 0.5, "validation/loss": 1.0} for s in saved_steps]
  rows[4]["validation/accuracy"] = 0.9  # step 8
  rows.append({"step": 9, "validation/accuracy": 1.0, "validation/loss": 0.0})  # not saved
  (fake / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert export.select_checkpoint(str(fake), "best")[0] == 8
  rows[6]["validation/accuracy"], rows[6]["validation/loss"] = 0.9, 0.5  # step 32 ties, lower loss
  (fake / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert export.select_checkpoint(str(fake), "best")[0] == 32
  with pytest.raises(export.ExportError, match="no checkpoints"):
    export.select_checkpoint(str(tmp_path), "latest")


def _config_with(config, **model_fields):
  config = ml_collections.ConfigDict(json.loads(config.to_json()))
  config.model.update(model_fields)
  return config


@pytest.mark.parametrize("fields", [{"width": 64}, {"num_layers": 2}, {"hidden_width": 64}])
def test_checkpoint_into_model_of_another_shape_fails_clearly(smoke_run, fields):
  workdir, config, _ = smoke_run
  with pytest.raises(export.ExportError, match="does not fit the model built from the config"):
    export.load_model(workdir, "latest", config=_config_with(config, **fields))


def test_checkpoint_with_extra_blocks_fails_clearly(smoke_run, tmp_path):
  """A 2-layer checkpoint restored into the 1-layer model would match every model variable;
  the extra block must still be an error, not silently ignored."""
  _, config, _ = smoke_run
  bigger = model_lib.build_model(_config_with(config, num_layers=2).model, 26)
  checkpoints.Checkpoints(str(tmp_path / "checkpoints"), bigger).save_series(0)
  with pytest.raises(export.ExportError, match="holds 18 model variables, the model has 10"):
    export.load_model(str(tmp_path), "0", config=config)


def test_model_with_dropout_restores(smoke_run, tmp_path):
  """Dropout's seed generator is a model variable that checkpoints do not track."""
  _, config, _ = smoke_run
  config = _config_with(config, dropout_rate=0.1)
  trained = model_lib.build_model(config.model, 26)
  checkpoints.Checkpoints(str(tmp_path / "checkpoints"), trained).save_series(0)
  restored, _, _ = export.load_model(str(tmp_path), "0", config=config)
  np.testing.assert_array_equal(restored.unembedding.numpy(), trained.unembedding.numpy())


def test_cli_refuses_mismatched_checkpoint_with_one_line_and_writes_nothing(smoke_run, tmp_path):
  workdir, _, _ = smoke_run
  fake = tmp_path / "run"
  shutil.copytree(workdir, fake)
  saved = json.loads((fake / "config.json").read_text())
  saved["model"]["width"] = 64
  (fake / "config.json").write_text(json.dumps(saved))
  result = subprocess.run(
      [os.path.join(BIN, "grok-export"), f"--workdir={fake}", f"--output={tmp_path / 'out'}"],
      capture_output=True, text=True, env=ENV, check=False)
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("grok-export:")]
  assert len(errors) == 1 and "does not fit the model built from the config" in errors[0]
  assert "width=64" in errors[0]
  assert sorted(os.listdir(tmp_path)) == ["run"]


def test_output_is_not_overwritten_unless_asked(smoke_run, tmp_path):
  workdir, _, _ = smoke_run
  model, config, step = export.load_model(workdir, "32")
  output = tmp_path / "saved"
  output.mkdir()
  (output / "precious.txt").write_text("keep")
  with pytest.raises(export.ExportError, match="--output=.*not empty.*--overwrite"):
    export.export_saved_model(model, config, step, str(output))
  assert os.listdir(output) == ["precious.txt"]
  export.export_saved_model(model, config, step, str(output), overwrite=True)
  assert "saved_model.pb" in os.listdir(output) and "precious.txt" not in os.listdir(output)
  assert sorted(os.listdir(tmp_path)) == ["saved"]  # no staging directories left behind
  step_out = tf.saved_model.load(str(output)).signatures["metadata"]()["step"]
  assert int(step_out) == 32
  with pytest.raises(export.ExportError, match="--keras_output=.*must end in .keras"):
    export.save_keras(model, str(tmp_path / "model.h5"))
  (tmp_path / "model.keras").write_text("old")
  with pytest.raises(export.ExportError, match="exists"):
    export.save_keras(model, str(tmp_path / "model.keras"))


@pytest.mark.parametrize("operation,dtype_policy", [("x.y", "float32"),
                                                    ("x/y", "mixed_bfloat16")])
def test_solve_matches_in_process_predictions(smoke_run, tmp_path, operation, dtype_policy):
  """S5 operands are permutation indices; a mixed-precision model exports its policy."""
  _, config, _ = smoke_run
  config = ml_collections.ConfigDict(json.loads(config.to_json()))
  config.data.operation, config.data.modulus = operation, 7
  config.train.dtype_policy = dtype_policy
  table = data.make_table(operation, 7)
  keras.utils.set_random_seed(0)
  model = model_lib.build_model(config.model, len(table.vocabulary), dtype_policy)
  output = export.export_saved_model(model, config, 0, str(tmp_path / "saved"))
  solved = tf.saved_model.load(output).signatures["solve"](
      x=tf.constant(table.x, tf.int32), y=tf.constant(table.y, tf.int32))
  predicted = model.answer_logits(table.tokens[:, :-1])[:, 0].numpy().argmax(-1)
  expected = np.where(predicted < table.num_elements, predicted, -1)
  np.testing.assert_array_equal(solved["answer"].numpy(), expected)
  assert solved["token"].numpy().tolist() == [table.vocabulary[p].encode() for p in predicted]
  assert len(table.x) == (14_400 if operation == "x.y" else 42)


def test_solve_answers_minus_one_when_a_non_element_token_wins(smoke_run, tmp_path):
  _, config, _ = smoke_run
  model = model_lib.build_model(config.model, 26)
  # The final hidden state becomes all ones and only the "=" token (id 24) scores: logit 32.
  model.blocks[-1].feed_forward_norm.gamma.assign(np.zeros(32, np.float32))
  model.blocks[-1].feed_forward_norm.beta.assign(np.ones(32, np.float32))
  unembedding = np.zeros((32, 26), np.float32)
  unembedding[:, 24] = 1.0
  model.unembedding.assign(unembedding)
  output = export.export_saved_model(model, config, 0, str(tmp_path / "saved"))
  solved = tf.saved_model.load(output).signatures["solve"](x=tf.constant([0, 22]),
                                                           y=tf.constant([5, 22]))
  assert solved["answer"].numpy().tolist() == [-1, -1]
  assert solved["token"].numpy().tolist() == [b"=", b"="]
  np.testing.assert_allclose(solved["probability"].numpy(), 1 / (1 + 25 * np.exp(-32.0)))
