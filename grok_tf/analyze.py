"""`grok-analyze`: gradient-outer-product analysis of a run's checkpoint series.

  grok-analyze --workdir=runs/RUN [--config=configs/analysis.py[:quick]] [--config.<field>=]

Writes RUN/analysis/ (see `grok_tf.analysis.runner`). Exit codes: 0 done, 2 bad input.
"""

import os
import sys

import tensorflow as tf
from absl import app
from absl import flags
from ml_collections import config_flags

from grok_tf.analysis import runner

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "configs", "analysis.py")
EXIT_BAD_INPUT = 2  # as grok-train


def _fail(message: str) -> None:
  print(f"grok-analyze: error: {message}", file=sys.stderr)
  sys.exit(EXIT_BAD_INPUT)


def define_flags() -> None:
  """--config and --workdir. Defined when the command runs, not on import: ml_collections
  reads `--config.<field>` overrides from sys.argv while defining the flag, so a bad override
  must be caught here to stay one line."""
  try:
    config_flags.DEFINE_config_file(
        "config", DEFAULT_CONFIG, "Analysis config file, e.g. configs/analysis.py[:quick].",
        lock_config=True)
  except Exception as error:  # pylint: disable=broad-except
    _fail(f"--config: {str(error).strip().splitlines()[-1] or repr(error)}")
  flags.DEFINE_string("workdir", None, "Run directory of grok-train to analyse.")
  flags.mark_flag_as_required("workdir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  tf.get_logger().setLevel("ERROR")  # pfor's notes on dense embedding gradients
  workdir, config = flags.FLAGS.workdir, flags.FLAGS.config
  try:
    config.to_dict()  # a config file that failed to load raises only when first read
  except OSError as error:
    _fail(f"--config: cannot load it ({str(error).strip().splitlines()[-1].strip()})")
  try:
    runner.analyse(config, workdir, log=lambda line: print(line, flush=True))
  except runner.AnalysisError as error:
    _fail(str(error))
  print(os.path.join(workdir, runner.ANALYSIS_DIRNAME, runner.FIGURE_FILENAME))


def parse_flags(argv):
  """absl flag parsing where every bad flag or config file is one line and exit code 2."""
  try:
    return flags.FLAGS(argv)
  except Exception as error:  # pylint: disable=broad-except
    _fail(str(error).strip().splitlines()[0] if str(error).strip() else repr(error))


def run():
  """Console-script entry point."""
  define_flags()
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
