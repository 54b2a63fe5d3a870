"""launch/finetune.py with every training step slowed down (tests only).

tests/train/test_resume.py signals a run mid-training; a tiny model trains
its 50 steps in about a second, so each step here first waits 0.05 s to let
a signal land mid-run.
The delay sits in the loop's per-step host-to-device copy of the batch
(`loop._put_batch`, called once per step; the batcher itself is also called
to count the cost of skipped steps on resume).

  python tests/train/slow_finetune.py --config=... --workdir=... [flags]
"""

import pathlib
import runpy
import sys
import time

from ftgen.train import loop

_LAUNCH = pathlib.Path(__file__).resolve().parents[2] / "launch"
_DELAY_S = 0.05
_put_batch = loop._put_batch  # pylint: disable=protected-access


def _slow_put_batch(*args, **kwargs):
  time.sleep(_DELAY_S)
  return _put_batch(*args, **kwargs)


if __name__ == "__main__":
  loop._put_batch = _slow_put_batch  # pylint: disable=protected-access
  # As if launched directly: the launcher imports launch/_common.py.
  sys.path.insert(0, str(_LAUNCH))
  sys.argv[0] = str(_LAUNCH / "finetune.py")
  runpy.run_path(sys.argv[0], run_name="__main__")
