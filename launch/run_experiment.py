r"""Runs the paper's experiment on one dataset: every condition, resumable.

  python launch/run_experiment.py --config=configs/experiment.py:reversals \
      --workdir=runs/reversals
  python launch/run_experiment.py \
      --config=configs/experiment.py:syllogisms,tiny \
      --workdir=/tmp/syl --config.seeds=0,1

Rerunning the same command after an interruption skips finished stages.
`--multihost` calls jax.distributed.initialize() first (Cloud TPU pod
slices, multi-node GPU); every process runs the same command on one shared
workdir (a path every process sees): all take part in sampling, training
and scoring, process 0 writes the files. `--coordinator_address`,
`--num_processes` and `--process_id` set what the environment would
otherwise tell jax, e.g. two processes on one machine:

  python launch/run_experiment.py \
      --config=configs/experiment.py:reversals,tiny --workdir=/tmp/rev \
      --multihost --coordinator_address=localhost:8476 --num_processes=2 \
      --process_id=0   # and the same with --process_id=1 beside it
"""

import os
import shlex
import signal
import sys

from absl import flags
from absl import logging

import _common  # launch/_common.py (this script's directory is on sys.path)

_common.define_flags("configs/experiment.py:NAME[,tiny]",
                     "Experiment directory.")
_common.define_multihost_flags()


def main(config, workdir: str):
  if not flags.FLAGS["verbosity"].present:
    # Orbax logs every checkpoint step at INFO; keep the table readable.
    logging.set_verbosity(logging.WARNING)
  _common.initialize_multihost()
  # Imported only after jax.distributed.initialize(): the runner's imports
  # may touch the jax backend, which must not start before it.
  from ftgen.experiments import runner  # pylint: disable=g-import-not-at-top
  try:
    runner.run_experiment(
        config, workdir,
        command=" ".join(shlex.quote(a) for a in ["python"] + sys.argv))
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
