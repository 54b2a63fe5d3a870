"""One process of tests/experiments/test_multihost_experiment.py.

  python tests/experiments/multihost_experiment_worker.py WRITES LAUNCHER ARGS..

Runs LAUNCHER (launch/run_experiment.py) with ARGS in this process, after
installing an audit hook that appends to the file WRITES every path this
process opens for writing or renames onto (one line each, flushed, so a
killed process keeps its record). The test checks from these records that
only process 0 wrote the shared workdir's files.
"""

import faulthandler
import os
import runpy
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND


def _audit(record):
  def hook(event, args):
    if event == "open":
      path, mode, flags = args
      writes = (any(c in mode for c in "wax+") if isinstance(mode, str)
                else bool((flags or 0) & _WRITE_FLAGS))
      if writes and isinstance(path, (str, os.PathLike)):
        record.write(os.path.abspath(path) + "\n")
        record.flush()
    elif event in ("os.rename", "os.replace"):
      record.write(os.path.abspath(args[1]) + "\n")
      record.flush()
  return hook


def main():
  writes, launcher, args = sys.argv[1], sys.argv[2], sys.argv[3:]
  # A stage takes seconds; a process still going after 300 s is stuck:
  # print where (the test shows both logs) before the distributed runtime's
  # barrier timeouts abort it.
  faulthandler.dump_traceback_later(300, exit=False)
  record = open(writes, "a", encoding="utf-8")  # pylint: disable=consider-using-with
  sys.addaudithook(_audit(record))
  # As `python LAUNCHER`: its directory first on sys.path (for _common).
  sys.path.insert(0, os.path.dirname(os.path.abspath(launcher)))
  sys.argv = [launcher, *args]
  runpy.run_path(launcher, run_name="__main__")


if __name__ == "__main__":
  main()
