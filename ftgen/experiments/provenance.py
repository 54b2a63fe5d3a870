"""Where a run's numbers came from: command, code version and machine.

Every invocation of the experiment runner appends one entry to the
workdir's `provenance.json` (process 0 only), so a report built from the
workdir (ftgen/experiments/report.py) can say which command, commit and
machine produced each table, including every resume of the same run.
Kept out of summary.json, which holds only what the data determine (two runs
of one command give the same summary.json apart from timings).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import subprocess
from typing import Any

from ftgen.data import io as data_io
from ftgen.data import workdir as workdir_lib

FILENAME = "provenance.json"


def code_version() -> dict[str, Any]:
  """{"commit", "dirty"} of the git checkout ftgen is imported from, or
  {"version"} of an installed package."""
  root = pathlib.Path(__file__).resolve().parents[2]
  try:
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
        capture_output=True, text=True, timeout=10).stdout.strip()
    status = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", "ftgen",
         "configs", "launch"], check=True, capture_output=True, text=True,
        timeout=10).stdout
    return {"commit": commit, "dirty": bool(status.strip())}
  except (OSError, subprocess.SubprocessError):
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    try:
      return {"version": metadata.version("ftgen")}
    except metadata.PackageNotFoundError:
      return {"version": "unknown"}


def machine(device: str = "") -> dict[str, Any]:
  """The host and accelerator a run used."""
  try:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    mem = 0
  return {"platform": platform.platform(), "processor": platform.machine(),
          "cpus": os.cpu_count(), "memory_gb": round(mem / 2**30, 1),
          "python": platform.python_version(), "devices": device}


def start(command: str, device: str) -> dict[str, Any]:
  """A new entry for this invocation (finished by `finish`)."""
  return {"command": command, **code_version(), "machine": machine(device),
          "started": _now(), "finished": None, "wall_s": None}


def finish(workdir: workdir_lib.AnyPath, entry: dict[str, Any],
           wall_s: float, ran: list[str]):
  """Appends the finished entry to `workdir/provenance.json`."""
  path = workdir_lib.as_path(workdir) / FILENAME
  entries = read(workdir)
  entries.append(dict(entry, finished=_now(), wall_s=round(wall_s, 1),
                      stages_ran=list(ran)))
  data_io.atomic_write_json(path, entries, indent=2)


def read(workdir: workdir_lib.AnyPath) -> list[dict[str, Any]]:
  """The workdir's entries, oldest first ([] when none)."""
  path = workdir_lib.as_path(workdir) / FILENAME
  if not path.is_file():
    return []
  entries = json.loads(path.read_text())
  if not isinstance(entries, list):
    raise ValueError(f"{path}: expected a JSON list of runs")
  return entries


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds")
