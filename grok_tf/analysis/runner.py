"""Walks a run's checkpoint series, computes every measure, and writes `RUN/analysis/`.

Layout of `<workdir>/analysis/`:
  config.json                 the analysis config of the last invocation
  (analysed: the series checkpoints, step 0 and powers of two, plus the newest rolling
  checkpoint, which holds a finished run's final weights)
  checkpoints/step_<8 digits>.npz
                              one analysed checkpoint: its scalars (JSON), G_tok, G_emb,
                              G_shared, the probe Gram K, Fourier norms and grid logits;
                              present = done, so re-running skips it (the cache)
  measures.csv, measures.jsonl
                              every measure per checkpoint (one row per step)
  summary.json                final step, key frequencies, step of 99% validation accuracy
  tensorboard/                the measures as scalars (training's step axis) and AGOP images
  agop_heatmaps.png           G_tok^(1/2) at a few checkpoints
  analysis.png                accuracy and the main measures on a shared log-step axis

Measures comparing checkpoints (alignment to the final AGOP, kernel distances, restricted and
excluded loss at the final key frequencies) are recomputed from the cache on every invocation,
so analysing a run that is still training is always consistent with its newest checkpoint.
"""

import csv
import hashlib
import io
import json
import math
import os
import shutil
import time

import ml_collections
import numpy as np
import tensorflow as tf

from grok_tf import checkpoints
from grok_tf import data
from grok_tf import logs
from grok_tf import model as model_lib
from grok_tf import operations
from grok_tf import workdirs
from grok_tf.analysis import agop
from grok_tf.analysis import circulant
from grok_tf.analysis import fourier
from grok_tf.analysis import gradients
from grok_tf.analysis import plots
from grok_tf.analysis import spectra

MEASURES = ("agop", "gradients", "fourier")
ANALYSIS_DIRNAME = "analysis"
CSV_FILENAME = "measures.csv"
JSONL_FILENAME = "measures.jsonl"
FIGURE_FILENAME = "analysis.png"
HEATMAP_FILENAME = "agop_heatmaps.png"


class AnalysisError(ValueError):
  """Bad input (config value, workdir); the message is the one line shown to the user."""


# ---------------------------------------------------------------------------------------------
# Config and run.

def measures_of(config) -> tuple:
  return tuple(name.strip() for name in config.measures.split(",") if name.strip())


def check(config) -> None:
  """Raises `AnalysisError` for the first invalid analysis config field."""
  chosen = measures_of(config)
  if not chosen or any(name not in MEASURES for name in chosen):
    raise AnalysisError(f"measures: got {config.measures!r}; allowed: a comma-separated "
                        f"subset of {','.join(MEASURES)}")
  if config.steps != "all":
    try:
      steps = [int(s) for s in config.steps.split(",")]
    except ValueError:
      steps = [-1]
    if any(s < 0 for s in steps):
      raise AnalysisError(f"steps: got {config.steps!r}; allowed: \"all\" or comma-separated "
                          f"non-negative steps, e.g. 0,256,4096")
  if config.agop.examples not in ("train", "all"):
    raise AnalysisError(f"agop.examples: got {config.agop.examples!r}; allowed: train, all")
  for path, minimum in (("agop.max_examples", 0), ("agop.batch_size", 1),
                        ("agop.top_eigenvalues", 1), ("agop.heatmaps", 0),
                        ("gradients.train_examples", 1), ("gradients.validation_examples", 1),
                        ("gradients.batch_size", 1), ("gradients.top_eigenvalues", 1),
                        ("fourier.key_frequencies", 1)):
    section, field = path.split(".")
    value = config[section][field]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
      raise AnalysisError(f"{path}: got {value!r}; allowed: an integer >= {minimum}")


def fingerprint(config) -> str:
  """A hash of the fields that change a checkpoint's numbers (not which steps or images)."""
  fields = json.loads(config.to_json())
  fields.pop("steps")
  fields.pop("include_latest")
  fields["agop"].pop("heatmaps")
  fields["agop"].pop("batch_size")
  fields["agop"].pop("xla")
  fields["gradients"].pop("batch_size")
  return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


class Run:
  """What the analysis needs of a trained run: its config, split and equation table.

  Attributes:
    workdir, config (ConfigDict of the run), operation, modulus, num_elements (m),
    train_tokens, validation_tokens ((n, 7) int32), vocabulary_size.
  """

  def __init__(self, workdir: str):
    saved = workdirs.saved_config(workdir)
    split_path = os.path.join(workdir, "split.npz")
    if saved is None or not os.path.exists(split_path):
      raise AnalysisError(f"--workdir={workdir}: no config.json and split.npz; allowed: the "
                          f"directory of a grok-train run")
    self.workdir = workdir
    self.config = ml_collections.ConfigDict(saved)
    self.operation = self.config.data.operation
    self.modulus = self.config.data.modulus
    self.num_elements = data.num_elements(self.operation, self.modulus)
    self.vocabulary_size = len(data.vocabulary(self.operation, self.modulus))
    with np.load(split_path) as split:
      self.train_tokens = split["train_tokens"]
      self.validation_tokens = split["validation_tokens"]

  @property
  def is_modular(self) -> bool:
    return operations.get(self.operation).group == "mod"

  def build_model(self):
    return model_lib.build_model(self.config.model, self.vocabulary_size, "float32")


def _subset(count: int, maximum: int, rng) -> np.ndarray:
  """Sorted indices of a seeded subset of `maximum` of `count` items (all if maximum = 0)."""
  if maximum == 0 or maximum >= count:
    return np.arange(count)
  return np.sort(rng.choice(count, size=maximum, replace=False))


def agop_inputs(run: Run, config) -> np.ndarray:
  """(n, 6) input tokens the AGOP averages over (training set or whole table, subsampled)."""
  tokens = (run.train_tokens if config.agop.examples == "train"
            else data.make_table(run.operation, run.modulus).tokens)
  rng = np.random.default_rng([config.seed, 1])
  return tokens[_subset(len(tokens), config.agop.max_examples, rng), :-1]


def probe_tokens(run: Run, config):
  """((n, 7) probe tokens: training examples first, then validation; number of training)."""
  rng = np.random.default_rng([config.seed, 2])
  train = run.train_tokens[_subset(len(run.train_tokens), config.gradients.train_examples,
                                   rng)]
  validation = run.validation_tokens[_subset(len(run.validation_tokens),
                                             config.gradients.validation_examples, rng)]
  return np.concatenate([train, validation]), len(train)


class FourierGrid:
  """The full operand grid in `circulant.element_order`, for the Fourier measures.

  Attributes:
    order: (m,) residues indexing the grid's rows (x) and columns (y).
    inputs: (m*m, 6) input tokens of every pair, row-major.
    targets: (m, m) answers. train_mask: (m, m) True for training pairs.
    sign: +1 / -1 if z depends on i + j / i - j, None if on neither (no restricted loss).
  """

  def __init__(self, run: Run):
    p = run.modulus
    self.order = circulant.element_order(run.operation, p)
    m = len(self.order)
    x, y = (a.ravel() for a in np.meshgrid(self.order, self.order, indexing="ij"))
    z = operations.get(run.operation).fn(x, y, p)
    self.inputs = data.encode(x, y, z, run.num_elements)[:, :-1]
    self.targets = z.reshape(m, m)
    position = np.full((p, p), -1)
    position[self.order[:, None], self.order[None, :]] = np.arange(m * m).reshape(m, m)
    self.train_mask = np.zeros(m * m, bool)
    train_positions = position[run.train_tokens[:, 1], run.train_tokens[:, 3]]
    self.train_mask[train_positions[train_positions >= 0]] = True
    self.train_mask = self.train_mask.reshape(m, m)
    self.sign = fourier.COMBINATION_SIGN.get(run.operation)


# ---------------------------------------------------------------------------------------------
# One checkpoint.

class Analyser:
  """Computes every per-checkpoint measure of the weights currently in `model`.

  The example sets (AGOP inputs, gradient probe set, Fourier grid) and the compiled Jacobian
  and per-example-gradient functions are built once and reused for every checkpoint.

  Args:
    model: the model checkpoints are restored into.
    run: the `Run`.
    config: the analysis config.
  """

  def __init__(self, model, run: Run, config):
    self.model, self.run, self.config = model, run, config
    self.measures = measures_of(config)
    m = run.num_elements
    if "agop" in self.measures:
      self.agop_inputs = agop_inputs(run, config)
      self.jacobians = agop.make_jacobian_fn(model, m, config.agop.xla)
    if "gradients" in self.measures:
      self.probe, self.num_train = probe_tokens(run, config)
      self.per_example = gradients.make_per_example_fn(model)
      self.groups = gradients.variable_groups(model)
    self.grid = FourierGrid(run) if "fourier" in self.measures and run.is_modular else None

  def __call__(self):
    """(dict of scalars, dict of arrays to cache) of the current weights."""
    model, run, config, m = self.model, self.run, self.config, self.run.num_elements
    scalars = {"weights/sum_squares": float(sum(np.sum(v.numpy().astype(np.float64) ** 2)
                                                for v in model.trainable_variables))}
    arrays = {}
    if "agop" in self.measures:
      result = agop.agop(self.jacobians, self.agop_inputs, config.agop.batch_size)
      values, g_tok = agop.measures(result, model, m, run.operation,
                                    config.agop.top_eigenvalues)
      scalars.update(values)
      arrays.update(g_tok=g_tok, g_emb=result["g_emb"], g_shared=result["g_shared"])
    if "gradients" in self.measures:
      per_example = gradients.per_example_gradients(self.per_example, self.groups, self.probe,
                                                    config.gradients.batch_size)
      values, kernel = gradients.measures(gradients.grams(per_example), self.num_train,
                                          config.gradients.top_eigenvalues)
      scalars.update(values)
      arrays["kernel"] = kernel
    if self.grid is not None:
      grid = self.grid
      norms = fourier.frequency_norms(agop.element_embeddings(model, m)[grid.order])
      scalars["fourier/gini"] = fourier.gini(norms)
      scalars["fourier/top_frequency_fraction"] = float(np.max(norms ** 2) / np.sum(norms ** 2))
      by_norm = np.argsort(-norms)[:config.fourier.key_frequencies] + 1
      scalars.update({f"fourier/key_frequency_{i + 1}": int(k) for i, k in enumerate(by_norm)})
      arrays["fourier_norms"] = norms
      if grid.sign is not None:
        logits = [model.answer_logits(tf.constant(grid.inputs[i:i + 2048], tf.int32))[:, 0, :m]
                  .numpy() for i in range(0, len(grid.inputs), 2048)]
        size = len(grid.order)
        arrays["grid_logits"] = np.concatenate(logits).reshape(size, size, m)
    return scalars, arrays


def cache_path(directory: str, step: int) -> str:
  return os.path.join(directory, "checkpoints", f"step_{step:08d}.npz")


def save_record(path: str, scalars: dict, arrays: dict, config_fingerprint: str) -> None:
  """Writes one checkpoint's results atomically."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, scalars=np.array(json.dumps(scalars)),
           fingerprint=np.array(config_fingerprint), **arrays)
  os.replace(tmp, path)


def load_record(path: str, config_fingerprint: str):
  """(scalars, arrays) of a cached checkpoint, or None if absent, unreadable or made with
  another analysis config."""
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as record:
      if str(record["fingerprint"]) != config_fingerprint:
        return None
      arrays = {k: record[k] for k in record.files if k not in ("scalars", "fingerprint")}
      return json.loads(str(record["scalars"])), arrays
  except (OSError, ValueError, KeyError):
    return None


# ---------------------------------------------------------------------------------------------
# Measures across checkpoints.

def cross_checkpoint(records: list, run: Run, config, grid) -> dict:
  """{step: scalars} comparing checkpoints: AGOP alignment to the final checkpoint, kernel
  distances to the previous one and to step 0, restricted and excluded loss at the final
  checkpoint's key frequencies.

  Args:
    records: [(step, scalars, arrays)] sorted by step.
  """
  out = {step: {} for step, _, _ in records}
  final_arrays = records[-1][2]
  keys = None
  if "fourier_norms" in final_arrays:
    keys = fourier.key_frequencies(final_arrays["fourier_norms"], config.fourier.key_frequencies)
  initial = records[0][2].get("kernel") if records[0][0] == 0 else None
  previous = None
  for step, _, arrays in records:
    row = out[step]
    if "g_tok" in arrays and "g_tok" in final_arrays:
      row["agop/alignment_final"] = spectra.cosine(arrays["g_tok"], final_arrays["g_tok"])
      row["agop/alignment_final_off_diagonal"] = spectra.cosine(
          spectra.off_diagonal(arrays["g_tok"]), spectra.off_diagonal(final_arrays["g_tok"]))
    if "kernel" in arrays:
      if previous is not None:
        row["grad/kernel_distance_previous"] = gradients.kernel_distance(arrays["kernel"],
                                                                         previous)
      if initial is not None:
        row["grad/kernel_distance_init"] = gradients.kernel_distance(arrays["kernel"], initial)
      previous = arrays["kernel"]
    if keys is not None and "grid_logits" in arrays and grid is not None:
      row.update(fourier.restricted_and_excluded_loss(arrays["grid_logits"], grid.targets,
                                                      grid.train_mask, keys, grid.sign))
  return out, keys


def available_checkpoints(workdir: str, include_latest: bool) -> list:
  """[(step, prefix)]: the series (step 0 and powers of two), plus the newest rolling
  checkpoint when its step is not in the series (a run's final weights usually are not)."""
  found = checkpoints.series(workdir)
  latest = checkpoints.latest(workdir) if include_latest else None
  if latest is not None and latest[0] not in dict(found):
    found = sorted(found + [latest])
  return found


def accuracy_at(metric_rows: list, step: int) -> dict:
  """Train and validation accuracy of the last evaluation at or before `step`."""
  before = [r for r in metric_rows if r["step"] <= step]
  if not before:
    return {}
  return {"train/accuracy": before[-1]["train/accuracy"],
          "validation/accuracy": before[-1]["validation/accuracy"],
          "metrics/step": before[-1]["step"]}


def select_steps(available: list, spec: str) -> list:
  """The (step, prefix) pairs of `available` that `spec` ("all" or "0,256,...") names."""
  if spec == "all":
    return available
  wanted = [int(s) for s in spec.split(",")]
  by_step = dict(available)
  missing = [s for s in wanted if s not in by_step]
  if missing:
    raise AnalysisError(f"steps: {missing} have no series checkpoint; allowed: "
                        f"{','.join(str(s) for s, _ in available)}")
  return [(s, by_step[s]) for s in sorted(set(wanted))]


def analyse(config, workdir: str, log=print) -> list:
  """Analyses every selected series checkpoint of `workdir` not analysed yet, then rewrites
  the table, TensorBoard events, images and figure under `<workdir>/analysis/`.

  Returns:
    The table rows: [{"step": ..., measure: value, ...}] sorted by step.
  """
  check(config)
  run = Run(workdir)
  available = available_checkpoints(workdir, config.include_latest)
  if not available:
    raise AnalysisError(f"--workdir={workdir}: no checkpoints under "
                        f"{os.path.join(workdir, 'checkpoints')}")
  selected = select_steps(available, config.steps)
  directory = os.path.join(workdir, ANALYSIS_DIRNAME)
  os.makedirs(directory, exist_ok=True)
  logs.write_atomically(os.path.join(directory, "config.json"), config.to_json(indent=2))
  config_fingerprint = fingerprint(config)

  model = run.build_model()
  analyser = Analyser(model, run, config)
  records = []
  for step, prefix in selected:
    path = cache_path(directory, step)
    record = load_record(path, config_fingerprint)
    if record is None:
      try:
        checkpoints.restore_model(model, prefix)
      except (tf.errors.OpError, AssertionError, ValueError) as error:
        log(f"step {step}: checkpoint unreadable ({str(error).splitlines()[0]}); skipped")
        continue
      start = time.monotonic()
      scalars, arrays = analyser()
      scalars["time/analysis_seconds"] = time.monotonic() - start
      save_record(path, scalars, arrays, config_fingerprint)
      log(f"step {step}: analysed in {scalars['time/analysis_seconds']:.1f} s")
      record = (scalars, arrays)
    records.append((step, *record))
  if not records:
    raise AnalysisError(f"--workdir={workdir}: no readable series checkpoint")

  grid = analyser.grid
  across, keys = cross_checkpoint(records, run, config, grid)
  metric_rows = logs.read_rows(os.path.join(workdir, "metrics.jsonl"))
  rows = [{"step": step, **accuracy_at(metric_rows, step), **scalars, **across[step]}
          for step, scalars, _ in records]
  summary = {"final_step": records[-1][0], "analysed_steps": [r[0] for r in records],
             "key_frequencies": None if keys is None else [int(k) for k in keys],
             "step_validation_99": logs.first_step_reaching(metric_rows,
                                                            "validation/accuracy"),
             "element_order": ("discrete log" if run.operation in circulant.MULTIPLICATIVE
                               else "residue" if run.is_modular else "permutation index")}
  write_outputs(directory, rows, records, run, config, summary, metric_rows, grid)
  return rows


# ---------------------------------------------------------------------------------------------
# Outputs.

def write_table(directory: str, rows: list) -> None:
  """measures.jsonl and measures.csv (NaN for a measure a row lacks)."""
  columns = ["step"] + sorted({k for row in rows for k in row} - {"step"})
  logs.write_atomically(os.path.join(directory, JSONL_FILENAME),
                        "".join(json.dumps(row) + "\n" for row in rows))
  text = io.StringIO()
  writer = csv.writer(text)
  writer.writerow(columns)
  for row in rows:
    writer.writerow([row.get(c, math.nan) for c in columns])
  logs.write_atomically(os.path.join(directory, CSV_FILENAME), text.getvalue())


def heatmap_steps(steps: list, count: int) -> list:
  """`count` steps spread evenly (by index) over `steps`, always the first and last."""
  if count <= 0 or not steps:
    return []
  indices = np.unique(np.round(np.linspace(0, len(steps) - 1, min(count, len(steps)))))
  return [steps[int(i)] for i in indices]


def write_outputs(directory, rows, records, run, config, summary, metric_rows, grid) -> None:
  """Table, summary, TensorBoard (rewritten from the rows), heatmaps and the figure."""
  write_table(directory, rows)
  logs.write_atomically(os.path.join(directory, "summary.json"),
                        json.dumps(summary, indent=2) + "\n")
  order = circulant.element_order(run.operation, run.modulus) if run.is_modular else None
  with_agop = [(step, arrays["g_tok"]) for step, _, arrays in records if "g_tok" in arrays]
  chosen = heatmap_steps([step for step, _ in with_agop], config.agop.heatmaps)
  images = {step: plots.agop_image(g_tok, run.num_elements, order)
            for step, g_tok in with_agop if step in chosen}

  tensorboard_dir = os.path.join(directory, "tensorboard")
  shutil.rmtree(tensorboard_dir, ignore_errors=True)
  writer = tf.summary.create_file_writer(tensorboard_dir)
  with writer.as_default():
    for row in rows:
      for tag, value in row.items():
        if tag != "step" and isinstance(value, (int, float)) and math.isfinite(value):
          tf.summary.scalar(tag, value, step=row["step"])
    for step, image in images.items():
      tf.summary.image("agop/g_tok_sqrt", image[None], step=step)
  writer.close()
  if images:
    plots.save_heatmaps(images, os.path.join(directory, HEATMAP_FILENAME))
  plots.plot_analysis(rows, metric_rows, os.path.join(directory, FIGURE_FILENAME),
                      title=os.path.basename(os.path.normpath(run.workdir)))
