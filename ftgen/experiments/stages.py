"""Completion markers that make an experiment's stages resumable.

A stage is done iff `WORKDIR/stages/NAME.json` exists; the marker holds what
the stage returned plus its wall time. A stage directory without a marker is
partial and is removed before the stage reruns (unless the stage resumes by
itself, like fine-tuning from its orbax checkpoints). Stage directories are
made here with ftgen's sentinel (`ftgen.data.workdir`); one without it is
not ftgen's and is never removed: the rerun refuses instead.

Under `jax.distributed` every process runs every stage (its sharded
computation needs them all; host work is deterministic, so all decide
alike) and process 0 alone writes the workdir: it prepares a stage's
directory and writes its marker while the others wait at a barrier, so all
see the same markers when they decide whether a stage is done, and the
stage's own library writes its outputs from process 0.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from ftgen.data import workdir as workdir_lib
from ftgen.experiments import results as results_lib
from ftgen.parallel import distributed


class Stages:
  """Completion markers: a stage is done iff `stages/NAME.json` exists."""

  def __init__(self, workdir: workdir_lib.AnyPath, log: Callable[[str], None]):
    self.dir = workdir / "stages"
    distributed.primary_only(
        lambda: self.dir.mkdir(parents=True, exist_ok=True),
        "stages directory made")
    self.log = log
    self.ran: list[str] = []
    self.skipped: list[str] = []

  def _marker(self, name: str) -> workdir_lib.AnyPath:
    return self.dir / (name.replace("/", "__") + ".json")

  def _read(self, path: workdir_lib.AnyPath) -> dict[str, Any] | None:
    try:
      info = json.loads(path.read_text())
      why = "" if isinstance(info, dict) else "not a JSON object"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
      why = repr(e)
    if not why:
      return info
    # Markers are written atomically, so this one was edited by hand or
    # damaged on disk: the stage is treated as not done and redone.
    self.log(f"[warn] unreadable stage marker {path} ({why}); the stage"
             " will be redone")
    if distributed.is_primary():
      path.unlink(missing_ok=True)
    return None

  def info(self, name: str) -> dict[str, Any] | None:
    path = self._marker(name)
    return self._read(path) if path.is_file() else None

  def all(self) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted(self.dir.glob("*.json")):
      info = self._read(p)
      if info is not None:
        out[p.stem.replace("__", "/")] = info
    return out

  def run(self, name: str, outdir: workdir_lib.AnyPath | None,
          fn: Callable[[], dict[str, Any] | None], *,
          resumable: bool = False) -> dict[str, Any]:
    """Runs `fn` unless the stage is done; writes the marker on success.

    Under `jax.distributed`, `fn` runs on every process and writes files
    from process 0 only; every process returns process 0's marker.
    """
    done = self.info(name)
    if done is not None:
      self.skipped.append(name)
      self.log(f"[skip] {name} (done in {done.get('wall_s', 0):.1f} s)")
      return done
    if outdir is not None:
      distributed.primary_only(
          lambda: self._prepare(name, outdir, resumable),
          f"stage {name} prepared")
    self.log(f"[run ] {name}")
    t0 = time.perf_counter()
    info = dict(fn() or {})
    info["wall_s"] = time.perf_counter() - t0
    distributed.primary_only(
        lambda: results_lib.write_json(self._marker(name), info),
        f"stage {name} done")
    if not distributed.is_primary():
      # Every process goes on with what process 0 recorded.
      info = self.info(name)
      if info is None:
        raise RuntimeError(f"process 0 wrote no marker for stage {name}; see"
                           " its log")
    self.ran.append(name)
    return info

  def _prepare(self, name: str, outdir: workdir_lib.AnyPath, resumable: bool):
    """Removes a partial `outdir` (unless `resumable`), then (re)makes it."""
    if workdir_lib.lexists(outdir) and not resumable:
      # Only a directory ftgen made (its sentinel) is removed; anything
      # else is the user's: refused (docs/design.md#reliability).
      workdir_lib.check_replaceable(outdir)
      self.log(f"[redo] {name}: removing partial {outdir}")
      workdir_lib.remove_dir(outdir)
    # Made (and marked) here, so a stage killed at any point leaves a
    # directory that the rerun may remove.
    workdir_lib.make_dir(outdir, f"stage {name}")
