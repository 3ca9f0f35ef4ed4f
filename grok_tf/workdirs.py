"""A run's directory: its name, its saved config, and the rules for resuming it.

Layout:
  config.json        the resolved config, written before training starts
  split.npz          the train/validation split (indices and token sequences)
  metrics.jsonl      one JSON row per evaluation (the record)
  tensorboard/       the same rows as TensorBoard scalars
  checkpoints/       latest/ (resume) and series/ (step 0 and powers of two)
  summary.json       steps to 99% train/validation accuracy, final accuracies
  curves.png         the grokking curve
"""

import json
import os
import re

from grok_tf import logs

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "configs", "default.py")
CONFIG_FILENAME = "config.json"


class WorkdirError(RuntimeError):
  """A workdir that cannot be used; the message is the one line shown to the user."""


def slug(text) -> str:
  """`text` with operator characters spelled out, safe in a file name: "x/y" -> "xdivy"."""
  names = {"/": "div", "*": "mul", "^": "pow", ".": "o", "+": "plus", "-": "minus"}
  return re.sub(r"[^A-Za-z0-9]", lambda m: names.get(m.group(0), "_"), str(text))


def default_workdir(config) -> str:
  """runs/<operation>-p<modulus>-frac<fraction>-wd<weight decay>-seed<seed>."""
  return os.path.join("runs", f"{slug(config.data.operation)}-p{config.data.modulus}"
                      f"-frac{config.data.training_fraction}-wd{config.optim.weight_decay}"
                      f"-seed{config.seed}")


def _flatten(tree: dict, prefix="") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def saved_config(workdir: str):
  """The config dict saved in `workdir`, or None."""
  path = os.path.join(workdir, CONFIG_FILENAME)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def check_resumable(workdir: str, config, allow_change: bool = False) -> None:
  """Raises `WorkdirError` if `workdir` holds a run with a different config or cannot be
  written. Creates nothing."""
  saved = saved_config(workdir)
  if saved is not None and not allow_change:
    old, new = _flatten(saved), _flatten(json.loads(config.to_json()))
    differing = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                 if old.get(k) != new.get(k)]
    if differing:
      raise WorkdirError(f"{workdir} holds a run with a different config ({'; '.join(differing)}"
                         f"); use another --workdir, or --overwrite_config to resume anyway")
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(existing) or "."
  if not os.access(existing, os.W_OK) or not os.path.isdir(existing):
    raise WorkdirError(f"--workdir={workdir}: {existing} is not a writable directory")


def prepare(workdir: str, config) -> None:
  """Creates `workdir` and saves the resolved config (atomically)."""
  try:
    os.makedirs(workdir, exist_ok=True)
    logs.write_atomically(os.path.join(workdir, CONFIG_FILENAME), config.to_json(indent=2))
  except OSError as error:
    raise WorkdirError(f"--workdir={workdir}: {error.strerror}") from error
