r"""Runs the paper's experiment on one dataset: every condition, resumable.

  python launch/run_experiment.py --config=configs/experiment.py:reversals \
      --workdir=runs/reversals
  python launch/run_experiment.py \
      --config=configs/experiment.py:syllogisms,tiny \
      --workdir=/tmp/syl --config.seeds=0,1

Rerunning the same command after an interruption skips finished stages.
`--multihost` calls jax.distributed.initialize() first (Cloud TPU pod
slices, multi-node GPU); every process runs the same stages.
"""

import os
import signal
import sys

from absl import flags
from absl import logging

import _common  # launch/_common.py (this script's directory is on sys.path)
from ftgen.parallel import distributed

_common.define_flags("configs/experiment.py:NAME[,tiny]",
                     "Experiment directory.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Call jax.distributed.initialize() before anything.")


def main(config, workdir: str):
  if not flags.FLAGS["verbosity"].present:
    # Orbax logs every checkpoint step at INFO; keep the table readable.
    logging.set_verbosity(logging.WARNING)
  distributed.maybe_initialize(_MULTIHOST.value)
  # Imported only after jax.distributed.initialize(): the runner's imports
  # may touch the jax backend, which must not start before it.
  from ftgen.experiments import runner  # pylint: disable=g-import-not-at-top
  try:
    runner.run_experiment(config, workdir)
  except runner.ExperimentConfigError as e:
    raise _common.Error(str(e)) from e
  except KeyboardInterrupt as e:
    # Ctrl-C or a preemption (SIGTERM): finished stages and the latest
    # fine-tuning checkpoint are kept, so the same command resumes. Further
    # Ctrl-C during the shutdown would only replace this message with a
    # traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"\ninterrupted: {e or 'stopped'}\nrerun the same command to resume"
          f" from {workdir}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # A Ctrl-C that lands inside one of jax's C++ callbacks can leave XLA's
    # runtime in a state where interpreter teardown segfaults; everything
    # worth keeping is on disk already (stages commit atomically, orbax
    # ignores an unfinished save), so leave without the teardown.
    os._exit(130)  # pylint: disable=protected-access


if __name__ == "__main__":
  _common.run(main)
