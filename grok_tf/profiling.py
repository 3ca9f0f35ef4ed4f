"""Where a compiled call's CPU time goes: a TensorFlow profiler trace, summed per kernel type.

The trace is written where TensorBoard's Profile tab (the tensorboard-plugin-profile package)
can show it; `kernel_times` also reads it back so that `grok-bench` can print the breakdown
without it.
"""

import collections
import glob
import os

import tensorflow as tf

# Kernel types that are matrix multiplications (oneDNN's and TensorFlow's own).
MATMUL_KERNELS = ("_MklMatMul", "MatMul", "_MklBatchMatMulV2", "BatchMatMulV2",
                  "_MklFusedMatMul", "_FusedMatMul")


def kernel_times(run_once, steps: int, logdir: str) -> dict:
  """Profiles one `run_once()` call of `steps` training steps into `logdir`.

  Returns:
    {"core_ms_per_step": CPU time of all kernels per step (summed over threads),
     "matmul_share": the share of it in matmul kernels,
     "kernels": {kernel type: core ms per step}, largest first}.
  """
  # TensorFlow's own copy of the trace format; imported here so that an install without it
  # only loses --profile_dir.
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
  tf.profiler.experimental.start(logdir)
  try:
    run_once()
  finally:
    tf.profiler.experimental.stop()
  paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
                 key=os.path.getmtime)
  space = xplane_pb2.XSpace()
  with open(paths[-1], "rb") as f:
    space.ParseFromString(f.read())
  totals = collections.Counter()
  for plane in space.planes:
    if plane.name != "/host:CPU":
      continue
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):  # the executor's kernel threads
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name  # "<op name>:<kernel type>"
        if ":" in name and "::" not in name:  # kernels, not executor bookkeeping
          totals[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9 / steps
  total = sum(totals.values())
  matmul = sum(ms for kernel, ms in totals.items() if kernel in MATMUL_KERNELS)
  return {"core_ms_per_step": total, "matmul_share": matmul / total if total else 0.0,
          "kernels": dict(totals.most_common())}


def format_kernel_times(times: dict, top: int = 8) -> str:
  """One line: core ms per step, the matmul share and the `top` largest kernel types."""
  largest = ", ".join(f"{kernel} {ms:.2f}" for kernel, ms in list(times["kernels"].items())[:top])
  return (f"{times['core_ms_per_step']:.1f} core-ms/step, {times['matmul_share']:.0%} in "
          f"matmul kernels; largest (core-ms/step): {largest}")
