"""CPU threads of the TensorFlow runtime, matched to the batch shards of the training step."""

import os

import tensorflow as tf

ENV_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def usable_cores() -> int:
  """Cores this process may run on (its CPU affinity: a SLURM allocation, taskset)."""
  return len(os.sched_getaffinity(0))


def configure(batch_shards: int) -> tuple:
  """Gives each op cores // batch_shards threads, so that the shards run side by side.

  Measured on 2 cores (paper model, float32): 2 shards with 1 thread per op made 34 steps/s,
  one pass with 2 threads per op 27. Leaves TensorFlow alone when either thread variable
  of ENV_VARIABLES is set (the user's choice, or grok-sweep's share of the cores), or when
  the runtime has already started in this process (its thread pools are then fixed).

  Returns:
    (intra-op threads, inter-op threads) in effect; 0 means TensorFlow's default.
  """
  if batch_shards > 1 and not any(name in os.environ for name in ENV_VARIABLES):
    try:
      tf.config.threading.set_intra_op_parallelism_threads(
          max(1, usable_cores() // batch_shards))
      tf.config.threading.set_inter_op_parallelism_threads(usable_cores())
    except RuntimeError:  # "... cannot be modified after initialization"
      pass
  return (tf.config.threading.get_intra_op_parallelism_threads(),
          tf.config.threading.get_inter_op_parallelism_threads())
