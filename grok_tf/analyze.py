"""`grok-analyze`: gradient-outer-product analysis of a run's checkpoint series.

  grok-analyze --workdir=runs/RUN [--config=configs/analysis.py[:quick]] [--config.<field>=]

Writes RUN/analysis/ (see `grok_tf.analysis.runner`). Exit codes: 0 done, 2 bad input.
"""

import os

import tensorflow as tf
from absl import app
from absl import flags
from ml_collections import config_flags

from grok_tf import cli
from grok_tf import workdirs
from grok_tf.analysis import runner

DEFAULT_CONFIG = os.path.join(os.path.dirname(workdirs.DEFAULT_CONFIG), "analysis.py")


def _define_flags() -> dict:
  """--config and --workdir, defined when the command runs (see `grok_tf.train`)."""
  return {
      "config": config_flags.DEFINE_config_file(
          "config", DEFAULT_CONFIG, "Analysis config file, e.g. configs/analysis.py[:quick].",
          lock_config=True),
      "workdir": flags.DEFINE_string("workdir", None, "Run directory of grok-train to analyse."),
  }


def main(argv, holders):
  workdir, config = holders["workdir"].value, holders["config"].value
  if not workdir:
    cli.fail(argv, "--workdir is required: the run directory to analyse")
  tf.get_logger().setLevel("ERROR")  # pfor's notes on dense embedding gradients
  try:
    runner.analyse(config, workdir, log=lambda line: print(line, flush=True))
  except runner.AnalysisError as error:
    cli.fail(argv, str(error))
  print(os.path.join(workdir, runner.ANALYSIS_DIRNAME, runner.FIGURE_FILENAME))


def run(argv=None):
  """Console-script entry point: every bad flag or config file is one line and exit 2."""
  argv = cli.command_argv("grok-analyze", argv)
  holders = cli.call_or_fail(_define_flags, argv)
  app.run(lambda argv: main(argv, holders), argv=argv,
          flags_parser=cli.flags_parser(lambda: holders["config"].value.to_dict()))


if __name__ == "__main__":
  run()
