"""`grok-aggregate`: a sweep's table and steps-to-99% figure, finished or still running.

  grok-aggregate --sweep_dir=sweeps/fraction

Writes <sweep_dir>/table.csv, table.md and steps_to_99.png, and prints the table.
"""

import sys

from absl import app
from absl import flags

from grok_tf import aggregate
from grok_tf import sweep

_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory written by grok-sweep.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    _, markdown, figure = aggregate.aggregate(_SWEEP_DIR.value)
  except sweep.SweepError as error:
    print(f"grok-aggregate: error: {error}", file=sys.stderr)
    sys.exit(2)
  print(markdown + f"\nfigure: {figure}")


def run():
  """Console-script entry point."""
  flags.mark_flag_as_required("sweep_dir")
  app.run(main)


if __name__ == "__main__":
  run()
