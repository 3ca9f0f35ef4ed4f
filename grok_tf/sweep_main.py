"""`grok-sweep`: expand a sweep config into one SLURM job array, or run it locally.

  grok-sweep --sweep=configs/sweep_fraction.py --dry-run
  grok-sweep --sweep=configs/sweep_fraction.py --max_concurrent=4 -- --partition=cpu
  grok-sweep --sweep=configs/sweep_fraction.py --local=2

Arguments after `--` go to sbatch unchanged (they override launch/train.sbatch's #SBATCH
defaults). Points whose run has finished are never launched again, so running the same
command after a failure or a cancel launches only what is left.
"""

import os
import shlex
import signal
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from grok_tf import cli
from grok_tf import sweep

_SWEEP = config_flags.DEFINE_config_file(
    "sweep", None, "Sweep config file, e.g. configs/sweep_fraction.py[:smoke].",
    lock_config=True)
_SWEEP_DIR = flags.DEFINE_string("sweep_dir", None, "Sweep directory (default sweeps/<name>).")
_DRY_RUN = flags.DEFINE_bool("dry-run", False,
                             "Print the grid and the sbatch command; submit and write nothing.")
_MAX_CONCURRENT = flags.DEFINE_integer(
    "max_concurrent", 0, "At most this many array tasks run at once (0: no limit).", lower_bound=0)
_LOCAL = flags.DEFINE_integer(
    "local", 0, "Run without SLURM, this many grok-train processes at a time (0: submit).",
    lower_bound=0)
_POINTS = flags.DEFINE_string("points", None, "Only these point indices, e.g. 0,3-5.")
_SCRIPT = flags.DEFINE_string("script", sweep.BATCH_SCRIPT, "The batch script to submit.")


def main(argv):
  sbatch_args = argv[1:]
  if _LOCAL.value and sbatch_args:
    raise sweep.SweepError(f"sbatch arguments {' '.join(sbatch_args)} given with --local")
  config_path = config_flags.get_config_filename(flags.FLAGS["sweep"]).partition(":")[0]
  if not os.path.isfile(config_path):  # config_flags reports it only with a traceback
    raise sweep.SweepError(f"--sweep={config_path}: no such file")
  record = sweep.expand_sweep(_SWEEP.value, os.path.abspath(config_path))
  sweep_dir = os.path.abspath(_SWEEP_DIR.value or os.path.join("sweeps", record["name"]))
  sweep.check_same(sweep_dir, record)
  points = sweep.points_of(record)
  if _POINTS.value is not None:
    wanted = set(sweep.parse_indices(_POINTS.value, len(points)))
    points = [p for p in points if p.index in wanted]
  todo = sweep.unfinished(sweep_dir, points)
  grok_train = sweep.grok_train_program()
  command = sweep.sbatch_command(sweep_dir, record["name"], [p.index for p in todo],
                                 _MAX_CONCURRENT.value, sbatch_args, _SCRIPT.value)

  print(f"sweep {record['name']}: {len(record['points'])} points, base {record['base']}, "
        f"directory {sweep_dir}")
  for point in points:
    state = sweep.status(os.path.join(sweep_dir, "runs", point.name))
    print(f"  {point.index:>3}  {state:<8} {point.name}")
  if not todo:
    print("every point has finished: nothing to launch")
    return
  if _DRY_RUN.value:
    if _LOCAL.value:
      print(f"would run {len(todo)} points, {_LOCAL.value} at a time: "
            f"{grok_train} --flagfile={sweep.flags_path(sweep_dir, '<index>')}")
    else:
      print(f"GROK_TRAIN={shlex.quote(grok_train)} {shlex.join(command)}")
    return
  running = sweep.active_job(sweep_dir)
  if running:
    raise sweep.SweepError(f"job array {running} of this sweep is still queued or running "
                           f"(squeue -j {running}): wait for it or scancel it first")
  sweep.write_plan(sweep_dir, record)
  if _LOCAL.value:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
      codes = sweep.run_local(sweep_dir, [p.index for p in todo], _LOCAL.value, grok_train)
    except KeyboardInterrupt:
      print("interrupted: the running points checkpointed; run the same command to resume",
            file=sys.stderr)
      sys.exit(130)
    failed = {i: c for i, c in codes.items() if c != 0}
    print(f"{len(codes) - len(failed)} of {len(codes)} points finished"
          + (f"; not finished (index: exit code): {failed}" if failed else ""))
    sys.exit(1 if failed else 0)
  job_id = sweep.submit(command, grok_train, sweep_dir)
  print(f"submitted job array {job_id} ({len(todo)} tasks): watch with squeue -j {job_id}, "
        f"logs in {os.path.join(sweep_dir, 'logs')}")


def _interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def _main(argv):
  try:
    main(argv)
  except sweep.SweepError as error:
    cli.fail(argv, str(error))


def run(argv=None):
  """Console-script entry point: a bad flag or sweep config file is one line and exit 2."""
  flags.mark_flag_as_required("sweep")
  app.run(_main, argv=cli.command_argv("grok-sweep", argv),
          flags_parser=cli.flags_parser(allow_arguments=True))


if __name__ == "__main__":
  run()
