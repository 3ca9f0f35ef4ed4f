"""`grok-plot`: the grokking curve of any workdir, finished or still training."""

from absl import app
from absl import flags

from grok_tf import cli
from grok_tf import figures

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory to plot.")
_OUTPUT = flags.DEFINE_string("output", None, "PNG path (default: <workdir>/curves.png).")


def main(argv):
  try:
    print(figures.plot_run(_WORKDIR.value, _OUTPUT.value))
  except FileNotFoundError as error:
    cli.fail(argv, str(error))


def run(argv=None):
  """Console-script entry point: bad input is one line and exit 2."""
  flags.mark_flag_as_required("workdir")
  app.run(main, argv=cli.command_argv("grok-plot", argv), flags_parser=cli.flags_parser())


if __name__ == "__main__":
  run()
