"""`grok-aggregate`: a sweep's table and steps-to-99% figure, finished or still running.

  grok-aggregate --sweep_dir=sweeps/fraction

Writes <sweep_dir>/table.csv, table.md and steps_to_99.png, and prints the table.
"""

from absl import app
from absl import flags

from grok_tf import aggregate
from grok_tf import cli
from grok_tf import sweep

_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory written by grok-sweep.")


def main(argv):
  try:
    _, markdown, figure = aggregate.aggregate(_SWEEP_DIR.value)
  except sweep.SweepError as error:
    cli.fail(argv, str(error))
  print(markdown + f"\nfigure: {figure}")


def run(argv=None):
  """Console-script entry point: bad input is one line and exit 2."""
  flags.mark_flag_as_required("sweep_dir")
  app.run(main, argv=cli.command_argv("grok-aggregate", argv), flags_parser=cli.flags_parser())


if __name__ == "__main__":
  run()
