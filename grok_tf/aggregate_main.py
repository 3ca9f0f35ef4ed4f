"""`grok-aggregate`: a sweep's table and figures, finished or still running.

  grok-aggregate --sweep_dir=sweeps/fraction [--output_dir=docs/figures/fraction]

Writes table.csv, table.md, steps_to_99.png, curves.png and best_accuracy.png into the output
directory (default: the sweep directory) and prints the table.
"""

from absl import app
from absl import flags

from grok_tf import aggregate
from grok_tf import cli
from grok_tf import sweep

_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory written by grok-sweep.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Where the tables and figures go (default: --sweep_dir).")


def main(argv):
  try:
    _, markdown, paths = aggregate.aggregate(_SWEEP_DIR.value, _OUTPUT_DIR.value)
  except (sweep.SweepError, OSError) as error:
    cli.fail(argv, str(error))
  print(markdown + "\nfigures: " + " ".join(paths))


def run(argv=None):
  """Console-script entry point: bad input is one line and exit 2."""
  flags.mark_flag_as_required("sweep_dir")
  app.run(main, argv=cli.command_argv("grok-aggregate", argv), flags_parser=cli.flags_parser())


if __name__ == "__main__":
  run()
