"""Export: a trained checkpoint as a self-describing TensorFlow SavedModel (or `.keras` file).

The SavedModel is a `tf.Module` (`ServingModule`) with explicit signatures, loadable with
`tf.saved_model.load` in a process that has never imported grok_tf:

  serving_default(tokens)  tokens: (batch, seq) int32 ids, seq <= 6
                           -> logits: (batch, seq, vocabulary) float32 next-token logits
  solve(x, y)              x, y: (batch,) int32 operands (residues; permutation indices on S5)
                           -> answer: (batch,) int32 element index, -1 when the most likely
                              token is not an element; probability: (batch,) float32 softmax
                              probability of that token; token: (batch,) string
  metadata()               -> vocabulary: (vocabulary,) string; operation: string;
                              modulus: int32; step: int64; config_json: string

`solve` builds `<eos> x op y = <eos>` and takes the argmax over the whole vocabulary of the
logits at input position 4 (the `=`), the same prediction the training accuracy scores for
`z`. The vocabulary and the training config also travel as files under `assets/`.

Which checkpoint (`select_checkpoint`): "latest" is the newest rolling checkpoint; N is the
saved checkpoint of step N (series or rolling); "best" is the saved checkpoint whose step has
the highest validation accuracy in metrics.jsonl, ties going to the lower validation loss,
then to the later step. Steps that were never evaluated are not candidates for "best".
"""

import os
import shutil
import tempfile

import ml_collections
import numpy as np
import tensorflow as tf

from grok_tf import checkpoints
from grok_tf import data
from grok_tf import logs
from grok_tf import model as model_lib
from grok_tf import workdirs

VOCABULARY_FILENAME = "vocabulary.txt"


class ExportError(ValueError):
  """Input that cannot be exported; the message is the one line shown to the user."""


# ---------------------------------------------------------------------------------------------
# Choosing and restoring a checkpoint.

def saved_checkpoints(workdir: str) -> dict:
  """{step: prefix} of every checkpoint a run kept (series and rolling; same model weights)."""
  found = {}
  state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints", "latest"))
  for prefix in (state.all_model_checkpoint_paths if state else []):
    if tf.io.gfile.exists(prefix + ".index"):
      found[int(prefix.rsplit("-", 1)[1])] = prefix
  found.update(checkpoints.series(workdir))
  return dict(sorted(found.items()))


def select_checkpoint(workdir: str, step: str):
  """(step, prefix) for `step` = "latest", "best" or a saved step number (see module doc)."""
  available = saved_checkpoints(workdir)
  if not available:
    raise ExportError(f"--workdir={workdir}: no checkpoints under "
                      f"{os.path.join(workdir, 'checkpoints')}")
  steps = ", ".join(map(str, available))
  if step == "latest":
    newest = checkpoints.latest(workdir)
    return newest if newest else max(available.items())
  if step == "best":
    rows = {row["step"]: row for row in logs.read_rows(os.path.join(workdir, "metrics.jsonl"))}
    evaluated = [s for s in available if s in rows]
    if not evaluated:
      raise ExportError(f"--step=best: none of the saved steps ({steps}) has a row in "
                        f"{os.path.join(workdir, 'metrics.jsonl')}")
    best = max(evaluated, key=lambda s: (rows[s]["validation/accuracy"],
                                         -rows[s]["validation/loss"], s))
    return best, available[best]
  try:
    number = int(step)
  except ValueError:
    number = None
  if number not in available:
    raise ExportError(f"--step={step}: not a saved checkpoint; allowed: latest, best, or one "
                      f"of the saved steps {steps}")
  return number, available[number]


def restore(model, prefix: str) -> None:
  """Loads `prefix` into `model`, requiring an exact fit; raises `ExportError` otherwise."""
  try:
    checkpoints.restore_model(model, prefix)
  except checkpoints.CheckpointError as error:
    raise ExportError(str(error)) from error


def load_model(workdir: str, step: str = "latest", config=None):
  """Builds the model of a run and restores one of its checkpoints.

  Args:
    workdir: a training run's directory.
    step: "latest", "best" or a saved step number (as a string or int).
    config: the run's config; default: the workdir's config.json.

  Returns:
    (model, config, step): the restored `Transformer`, the ConfigDict, the restored step.
  """
  if config is None:
    saved = workdirs.saved_config(workdir)
    if saved is None:
      raise ExportError(f"--workdir={workdir}: no {workdirs.CONFIG_FILENAME}; "
                        "not a training run's directory")
    config = ml_collections.ConfigDict(saved)
  step, prefix = select_checkpoint(workdir, str(step))
  vocabulary_size = len(data.vocabulary(config.data.operation, config.data.modulus))
  model = model_lib.build_model(config.model, vocabulary_size, config.train.dtype_policy)
  restore(model, prefix)
  return model, config, step


# ---------------------------------------------------------------------------------------------
# The SavedModel.

class ServingModule(tf.Module):
  """A restored model with the `serving_default`, `solve` and `metadata` signatures.

  Args:
    model: a built `Transformer`.
    config: its training ConfigDict.
    step: the training step of its weights.
  """

  def __init__(self, model, config, step: int):
    super().__init__(name="grok_tf")
    self.model = model
    vocabulary = data.vocabulary(config.data.operation, config.data.modulus)
    self._vocabulary = list(vocabulary)
    self._num_elements = data.num_elements(config.data.operation, config.data.modulus)
    self._operation = config.data.operation
    self._modulus = int(config.data.modulus)
    self._step = int(step)
    self._config_json = config.to_json(indent=2)

  def attach_assets(self, directory: str) -> None:
    """Writes vocabulary.txt (one token a line, by id) and config.json to `directory` and
    attaches them as assets (the saver copies them into the SavedModel's assets/)."""
    os.makedirs(directory, exist_ok=True)
    files = {VOCABULARY_FILENAME: "".join(token + "\n" for token in self._vocabulary),
             workdirs.CONFIG_FILENAME: self._config_json + "\n"}
    for name, text in files.items():
      with open(os.path.join(directory, name), "w") as f:
        f.write(text)
    self.vocabulary_file = tf.saved_model.Asset(os.path.join(directory, VOCABULARY_FILENAME))
    self.config_file = tf.saved_model.Asset(os.path.join(directory, workdirs.CONFIG_FILENAME))

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="tokens")])
  def serve(self, tokens):
    """(batch, seq) int32 token ids -> {"logits": (batch, seq, vocabulary) float32}."""
    return {"logits": self.model(tokens, training=False)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="x"),
                                tf.TensorSpec([None], tf.int32, name="y")])
  def solve(self, x, y):
    """(batch,) operands -> answer (batch,) int32, probability (batch,) float32, token."""
    n = self._num_elements
    checks = [tf.debugging.assert_non_negative(v, message=f"{name} must be in [0, {n})")
              for name, v in (("x", x), ("y", y))]
    checks += [tf.debugging.assert_less(v, n, message=f"{name} must be in [0, {n})")
               for name, v in (("x", x), ("y", y))]
    with tf.control_dependencies(checks):
      column = lambda token: tf.fill(tf.shape(x), tf.constant(token, tf.int32))
      op_token, equals_token, eos_token = n, n + 1, n + 2
      # <eos> x op y = <eos>: the last token stands in for z; causal attention ignores it.
      tokens = tf.stack([column(eos_token), x, column(op_token), y, column(equals_token),
                         column(eos_token)], axis=1)  # (batch, 6)
    logits = self.model.answer_logits(tokens, training=False)[:, 0]  # (batch, vocabulary)
    predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)  # (batch,)
    probability = tf.gather(tf.nn.softmax(logits, axis=-1), predicted, batch_dims=1)
    answer = tf.where(predicted < n, predicted, -tf.ones_like(predicted))
    return {"answer": answer, "probability": probability,
            "token": tf.gather(tf.constant(self._vocabulary), predicted)}

  @tf.function(input_signature=[])
  def metadata(self):
    """What the model computes and how it was trained."""
    return {"vocabulary": tf.constant(self._vocabulary),
            "operation": tf.constant(self._operation),
            "modulus": tf.constant(self._modulus, tf.int32),
            "step": tf.constant(self._step, tf.int64),
            "config_json": tf.constant(self._config_json)}


def check_output(output: str, overwrite: bool, flag: str = "--output",
                 suffix: str = "") -> None:
  """Raises `ExportError` if `output` holds anything and `overwrite` is False, or if it does
  not end in `suffix`."""
  if not output.endswith(suffix):
    raise ExportError(f"{flag}={output}: must end in {suffix}")
  if os.path.isdir(output):
    if os.listdir(output) and not overwrite:
      raise ExportError(f"{flag}={output}: directory is not empty; choose another, or pass "
                        "--overwrite to replace it")
  elif os.path.exists(output):
    if not overwrite:
      raise ExportError(f"{flag}={output}: exists; choose another, or pass --overwrite "
                        "to replace it")


def _replace(temporary: str, output: str) -> None:
  """Moves the finished `temporary` into place, removing any old `output` only then."""
  if os.path.lexists(output):
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.old.",
                           dir=os.path.dirname(output))
    os.replace(output, os.path.join(old, "previous"))
    os.replace(temporary, output)
    shutil.rmtree(old)
  else:
    os.replace(temporary, output)


def export_saved_model(model, config, step: int, output: str, overwrite: bool = False) -> str:
  """Writes the SavedModel of `model` to `output` (all or nothing); returns `output`.

  A non-empty `output` is refused unless `overwrite`.
  """
  output = os.path.abspath(output)
  check_output(output, overwrite)
  parent = os.path.dirname(output)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.tmp.", dir=parent)
  try:
    module = ServingModule(model, config, step)
    module.attach_assets(os.path.join(staging, "assets"))
    saved = os.path.join(staging, "saved_model")
    tf.saved_model.save(module, saved, signatures={
        "serving_default": module.serve, "solve": module.solve, "metadata": module.metadata})
    _replace(saved, output)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return output


def save_keras(model, path: str, overwrite: bool = False) -> str:
  """Saves `model` as a `.keras` file (load with `keras.saving.load_model` after importing
  grok_tf, which registers the custom layers)."""
  path = os.path.abspath(path)
  check_output(path, overwrite, flag="--keras_output", suffix=".keras")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp.",
                             dir=os.path.dirname(path))
  try:
    model.save(os.path.join(staging, "model.keras"))
    _replace(os.path.join(staging, "model.keras"), path)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return path


def table_accuracy(solve, table) -> float:
  """Fraction of `table`'s equations that `solve(x=..., y=...)["answer"]` gets right."""
  answers = solve(x=tf.constant(table.x, tf.int32), y=tf.constant(table.y, tf.int32))["answer"]
  return float(np.mean(answers.numpy() == table.z))
