"""Checkpoints: a rolling `latest` for resuming and a log-spaced series for analysis.

Layout under `<workdir>/checkpoints/`:
  latest/ckpt-<step>.*          model, optimizer moments, step, RNG state (the 2 newest kept)
  series/step_<8 digits>.*      model weights at step 0 and at every power-of-two step
"""

import glob
import os
import re

import keras
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2


def is_series_step(step: int) -> bool:
  """Step 0 (the initial weights) and every power of two."""
  return step == 0 or (step & (step - 1)) == 0


class Checkpoints:
  """Saves and restores one run's checkpoints.

  Args:
    directory: `<workdir>/checkpoints`.
    model: the Keras model (saved in both the rolling and the series checkpoints).
    **state: every other trackable the rolling checkpoint carries (optimizer, step, RNG
      states, filters), keyed by name.
  """

  def __init__(self, directory: str, model, **state):
    self.directory = directory
    self.checkpoint = tf.train.Checkpoint(model=model, **state)
    self.manager = tf.train.CheckpointManager(self.checkpoint, os.path.join(directory, "latest"),
                                              max_to_keep=2)
    self.series_checkpoint = tf.train.Checkpoint(model=model)

  def save_latest(self, step: int) -> str:
    return self.manager.save(checkpoint_number=step)

  def save_series(self, step: int) -> str:
    return self.series_checkpoint.write(series_prefix(self.directory, step))

  def restore_latest(self):
    """Restores the newest readable rolling checkpoint; returns its path, or None if none.

    A checkpoint that fails to read (truncated, corrupted) is reported and skipped in
    favour of the one before it; if none can be read, raises `CheckpointError`.
    """
    candidates = list(reversed(self.manager.checkpoints))
    for prefix in candidates:
      try:
        self.checkpoint.read(prefix).assert_existing_objects_matched()
        return prefix
      except (tf.errors.OpError, AssertionError, ValueError, IndexError) as error:
        logging.warning("checkpoint %s is unreadable (%s); trying an older one", prefix,
                        str(error).splitlines()[0])
    if candidates:
      raise CheckpointError(f"no readable checkpoint in {self.manager.directory}: "
                            f"{candidates[0]} and older are corrupted")
    return None


class CheckpointError(RuntimeError):
  """No usable checkpoint where one was expected."""


def series_prefix(directory: str, step: int) -> str:
  return os.path.join(directory, "series", f"step_{step:08d}")


def series(workdir: str) -> list:
  """[(step, prefix)] of a run's saved series checkpoints, by step."""
  found = []
  for index in glob.glob(os.path.join(workdir, "checkpoints", "series", "step_*.index")):
    match = re.search(r"step_(\d+)\.index$", index)
    found.append((int(match.group(1)), index[:-len(".index")]))
  return sorted(found)


def latest(workdir: str):
  """(step, prefix) of a run's newest rolling checkpoint, or None."""
  prefix = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints", "latest"))
  return None if prefix is None else (int(prefix.rsplit("-", 1)[1]), prefix)


def _model_variable_count(prefix: str) -> int:
  """Variables reachable from a checkpoint's `model` object (the saved model's size)."""
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(
      tf.train.load_checkpoint(prefix).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
  seen, stack = set(), [c.node_id for c in graph.nodes[0].children if c.local_name == "model"]
  while stack:
    node = stack.pop()
    if node not in seen:
      seen.add(node)
      stack.extend(c.node_id for c in graph.nodes[node].children)
  return sum(any(a.name == "VARIABLE_VALUE" for a in graph.nodes[n].attributes) for n in seen)


def restore_model(model, prefix: str) -> None:
  """Loads model weights from any checkpoint of a run, requiring an exact fit.

  Every model variable must be matched with its shape, and the checkpoint's model must hold
  no variables the model lacks (e.g. extra blocks); raises `CheckpointError` otherwise.
  """
  shape = (f"num_layers={model.num_layers}, width={model.width}, "
           f"vocabulary_size={model.vocabulary_size}")
  try:
    tf.train.Checkpoint(model=model).read(prefix).expect_partial(
    ).assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as error:
    detail = " ".join(str(error).split())[:300]
    raise CheckpointError(f"checkpoint {prefix} does not fit the model built from the config "
                          f"({shape}): {detail}") from error
  saved = _model_variable_count(prefix)
  expected = sum(isinstance(o, (tf.Variable, keras.Variable))
                 for o in tf.train.TrackableView(model).descendants())
  if saved != expected:
    raise CheckpointError(f"checkpoint {prefix} does not fit the model built from the config "
                          f"({shape}): it holds {saved} model variables, the model has "
                          f"{expected}")
