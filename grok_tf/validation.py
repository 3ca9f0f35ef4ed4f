"""Checks a run config before anything is written; each failure is one line naming the
field, the value given and what is allowed."""

from grok_tf import data
from grok_tf import operations

DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
ACTIVATIONS = ("relu", "gelu")
WEIGHT_DECAY_TARGETS = ("zero", "init")
SCHEDULES = ("constant", "cosine")
LOSSES = ("softmax", "stablemax")
GROKFAST_FILTERS = ("none", "ema", "ma")


class ConfigError(ValueError):
  """An invalid config value; the message is the one line shown to the user."""


def _positive(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _non_negative(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _one_of(choices):
  return lambda value: value in choices, "one of " + ", ".join(choices)


# (field path, predicate, what is allowed)
_RULES = [
    ("data.operation", *_one_of(tuple(operations.OPERATIONS))),
    ("data.modulus", lambda v: isinstance(v, int) and v >= 2, "an integer >= 2"),
    ("data.training_fraction", lambda v: isinstance(v, (int, float)) and 0 < v < 1,
     "a fraction strictly between 0 and 1 (0.5 means half the table)"),
    ("data.label_noise_count", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    ("model.num_layers", _positive, "an integer > 0"),
    ("model.width", _positive, "an integer > 0"),
    ("model.num_heads", _positive, "an integer > 0"),
    ("model.hidden_width", _positive, "an integer > 0"),
    ("model.activation", *_one_of(ACTIVATIONS)),
    ("model.dropout_rate", lambda v: 0 <= v < 1, "a rate in [0, 1)"),
    ("optim.learning_rate", _positive, "a number > 0"),
    ("optim.weight_decay", _non_negative, "a number >= 0"),
    ("optim.weight_decay_target", *_one_of(WEIGHT_DECAY_TARGETS)),
    ("optim.beta_1", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("optim.beta_2", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("optim.epsilon", _positive, "a number > 0"),
    ("optim.warmup_steps", _non_negative, "an integer >= 0"),
    ("optim.schedule", *_one_of(SCHEDULES)),
    ("optim.batch_size", _positive, "an integer > 0"),
    ("optim.loss", *_one_of(LOSSES)),
    ("methods.grokfast", *_one_of(GROKFAST_FILTERS)),
    ("methods.grokfast_alpha", lambda v: _non_negative(v) and v < 1, "a number in [0, 1)"),
    ("methods.grokfast_lambda", _non_negative, "a number >= 0"),
    ("methods.grokfast_window", lambda v: isinstance(v, int) and not isinstance(v, bool)
     and v > 0, "an integer > 0"),
    ("methods.orthograd", lambda v: isinstance(v, bool), "True or False"),
    ("methods.update_noise_std", _non_negative, "a number >= 0"),
    ("methods.weight_noise_std", _non_negative, "a number >= 0"),
    ("train.num_steps", _positive, "an integer > 0"),
    ("train.dtype_policy", *_one_of(DTYPE_POLICIES)),
    ("train.steps_per_call", _positive, "an integer > 0"),
    ("train.batch_shards", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
     "an integer > 0 (1: no sharding)"),
    ("train.early_stop_accuracy", lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    ("train.early_stop_evals", _non_negative, "an integer >= 0 (0 disables early stopping)"),
    ("eval.every_steps", _positive, "an integer > 0"),
    ("eval.points_per_decade", _non_negative, "an integer >= 0"),
    ("eval.batch_size", _positive, "an integer > 0"),
    ("checkpoint.every_steps", _positive, "an integer > 0"),
]


def _get(config, path):
  for key in path.split("."):
    config = config[key]
  return config


def check(config) -> None:
  """Raises `ConfigError` for the first invalid field of a run config."""
  for path, valid, allowed in _RULES:
    value = _get(config, path)
    if not valid(value):
      raise ConfigError(f"{path}: got {value!r}; allowed: {allowed}")
  operation = operations.get(config.data.operation)
  if operation.needs_inverse and not operations.is_prime(config.data.modulus):
    raise ConfigError(f"data.modulus: got {config.data.modulus} for {operation.name}, which "
                      f"needs a modular inverse; allowed: a prime (e.g. 97)")
  num_equations = data.table_size(config.data.operation, config.data.modulus)
  num_train = int(round(config.data.training_fraction * num_equations))
  if not 0 < num_train < num_equations:
    raise ConfigError(
        f"data.training_fraction: got {config.data.training_fraction}, which leaves an empty "
        f"split of the {num_equations} equations; allowed: a fraction giving 1.."
        f"{num_equations - 1} training equations")
  batch = data.batch_size(num_train, config.optim.batch_size, config.optim.full_batch)
  if config.train.batch_shards > batch:
    raise ConfigError(f"train.batch_shards: got {config.train.batch_shards}; allowed: 1.."
                      f"{batch} (the batch size)")
  if config.data.label_noise_count > num_train:
    raise ConfigError(f"data.label_noise_count: got {config.data.label_noise_count}; allowed: "
                      f"0..{num_train} (the number of training equations)")
  if config.model.width % config.model.num_heads:
    raise ConfigError(f"model.width: got {config.model.width} with model.num_heads="
                      f"{config.model.num_heads}; allowed: a multiple of model.num_heads")
