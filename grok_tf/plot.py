"""`grok-plot`: the grokking curve of any workdir, finished or still training."""

import sys

from absl import app
from absl import flags

from grok_tf import figures

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory to plot.")
_OUTPUT = flags.DEFINE_string("output", None, "PNG path (default: <workdir>/curves.png).")


def main(argv):
  del argv
  try:
    print(figures.plot_run(_WORKDIR.value, _OUTPUT.value))
  except FileNotFoundError as error:
    print(f"grok-plot: error: {error}", file=sys.stderr)
    sys.exit(2)


def run():
  flags.mark_flag_as_required("workdir")
  app.run(main)


if __name__ == "__main__":
  run()
