"""What every grok_tf command shares: bad input is one line on stderr and exit code 2."""

import os
import re
import sys

from absl import flags

EXIT_BAD_INPUT = 2


def one_line(error: BaseException, argv) -> str:
  """The root cause of a flag or config error as one line, naming the flag it came from."""
  chain = [error]
  while chain[-1].__cause__ or chain[-1].__context__:
    chain.append(chain[-1].__cause__ or chain[-1].__context__)
  error = next((e for e in chain if isinstance(e, KeyError) and "Did you mean" in str(e)),
               chain[-1])
  if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):
    # ml_collections' unknown field: "'widht'\nDid you mean "width" instead of "widht"?"
    name, _, hint = error.args[0].partition("\n")
    message = f"unknown config field {name}. {hint}".strip()
  else:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[-1] if lines else type(error).__name__
  quoted = re.findall(r"'([^']+)'", message)
  culprit = next((arg.split("=")[0] for arg in argv[1:]
                  if arg.startswith("--") and any(word in arg for word in quoted)), None)
  return f"{culprit}: {message}" if culprit else message


def command_argv(command: str, argv=None) -> list:
  """argv (default sys.argv) with argv[0] replaced by the command's name, e.g. "grok-train",
  so messages name the command however it was started (console script or `python -m`)."""
  return [command] + list(sys.argv[1:] if argv is None else argv[1:])


def fail(argv, message: str):
  """Prints `<command>: error: <message>` to stderr and exits with EXIT_BAD_INPUT."""
  print(f"{os.path.basename(argv[0])}: error: {message}", file=sys.stderr)
  sys.exit(EXIT_BAD_INPUT)


def call_or_fail(fn, argv):
  """fn(), with any exception reported as one line (for flag definitions that parse argv)."""
  try:
    return fn()
  except Exception as error:  # pylint: disable=broad-except
    fail(argv, one_line(error, argv))


def flags_parser(after_parse=lambda: None, allow_arguments=False):
  """An absl `flags_parser` that reports bad flags, stray arguments (unless
  `allow_arguments`, e.g. for arguments passed through after `--`) and any error raised by
  `after_parse()` (e.g. loading the config file) as one line with exit code 2."""
  def parse(argv):
    remaining = call_or_fail(lambda: flags.FLAGS(argv), argv)
    call_or_fail(after_parse, argv)
    if len(remaining) > 1 and not allow_arguments:
      fail(argv, f"unexpected arguments: {' '.join(remaining[1:])}; flags take the form "
                 f"--name=value")
    return remaining
  return parse
