"""`grok-export`: a training run's checkpoint as a TensorFlow SavedModel (and `.keras` file).

  grok-export --workdir=RUN --output=DIR [--step=latest|best|N] [--keras_output=FILE.keras]
              [--overwrite]

Exit codes: 0 exported, 2 bad input (one line on stderr, nothing written).
"""

import os

import tensorflow as tf
from absl import app
from absl import flags

from grok_tf import cli
from grok_tf import data
from grok_tf import export

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory to export from.")
_STEP = flags.DEFINE_string(
    "step", "latest", "Checkpoint: latest, best (highest validation accuracy among saved "
    "checkpoints), or a saved step number.")
_OUTPUT = flags.DEFINE_string("output", None, "SavedModel directory to write.")
_KERAS_OUTPUT = flags.DEFINE_string("keras_output", None,
                                    "Also save the model as this .keras file.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a non-empty --output/--keras_output.")


def main(argv):
  try:
    for flag in (_WORKDIR, _OUTPUT):
      if not flag.value:
        raise export.ExportError(f"--{flag.name} is required")
    if not os.path.isdir(_WORKDIR.value):
      raise export.ExportError(f"--workdir={_WORKDIR.value}: no such directory")
    # Every output is checked before anything is written.
    export.check_output(_OUTPUT.value, _OVERWRITE.value)
    if _KERAS_OUTPUT.value:
      export.check_output(_KERAS_OUTPUT.value, _OVERWRITE.value, "--keras_output", ".keras")
    model, config, step = export.load_model(_WORKDIR.value, _STEP.value)
    if _KERAS_OUTPUT.value:
      export.save_keras(model, _KERAS_OUTPUT.value, _OVERWRITE.value)
    output = export.export_saved_model(model, config, step, _OUTPUT.value, _OVERWRITE.value)
  except export.ExportError as error:
    cli.fail(argv, str(error))
  loaded = tf.saved_model.load(output)
  accuracy = export.table_accuracy(loaded.signatures["solve"],
                                   data.make_table(config.data.operation, config.data.modulus))
  print(f"exported step {step} of {_WORKDIR.value} to {output}"
        + (f" and {os.path.abspath(_KERAS_OUTPUT.value)}" if _KERAS_OUTPUT.value else "")
        + f"; solve accuracy on the full table: {accuracy:.4f}", flush=True)


def run(argv=None):
  """Console-script entry point."""
  app.run(main, argv=cli.command_argv("grok-export", argv), flags_parser=cli.flags_parser())


if __name__ == "__main__":
  run()
