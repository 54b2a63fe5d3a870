"""Orbax checkpoints of the train state, with a model check and safe restore.

Each step directory under `WORKDIR/checkpoints/` holds two items: `state`
(step, trained params, optimizer state, RNG) and `meta` (JSON: the model
fingerprint, the data position, the full config). Saves are async and atomic
(orbax writes a temporary directory and renames it when complete).

Each save stores a digest of the state (`meta["digest"]`,
`ftgen.train.state.checkpoint_digest`: sha256 of every leaf's bytes) and
refuses a state with non-finite values (docs/design.md#reliability).

Restore walks the steps newest first and skips any that cannot be read (a
crash while writing, a truncated file) or whose restored state does not
match its digest (bytes changed on disk: orbax restores those silently);
skipped step directories are moved to `WORKDIR/checkpoints_broken/` so the
next save at that step succeeds.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import Any

from etils import epath
import orbax.checkpoint as ocp

from ftgen.data import workdir as workdir_lib
from ftgen.train import state as state_lib

_log = logging.getLogger(__name__)

# Keys of the model fingerprint that must match to resume.
_MODEL_KEYS = ("model", "shapes_sha256", "num_params", "lora_rank",
               "lora_targets")


class CheckpointMismatchError(ValueError):
  """The workdir holds a checkpoint of another model or setup."""


class NonFiniteStateError(ValueError):
  """A train state to save holds NaN or inf values."""


class _DigestMismatch(Exception):
  """A restored state differs from the digest saved with it."""


class Checkpointer:
  """Saves and restores train states under `workdir/checkpoints`."""

  def __init__(self, workdir: epath.PathLike, *, max_to_keep: int = 3,
               async_save: bool = True):
    # Local or gs://: orbax writes either (its epath), atomically by a
    # commit marker on object stores.
    self.workdir = workdir_lib.as_path(workdir)
    self.directory = self.workdir / "checkpoints"
    self.max_to_keep = max_to_keep
    self.async_save = async_save
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self.max_to_keep, create=True,
        enable_async_checkpointing=self.async_save,
        cleanup_tmp_directories=True)
    directory = (self.directory if workdir_lib.is_remote(self.directory)
                 else self.directory.absolute())
    return ocp.CheckpointManager(directory, options=options,
                                 item_names=("state", "meta"))

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: dict[str, Any],
           force: bool = False) -> bool:
    """Starts an (async) save of `state` at `step`, its digest in `meta`.

    Raises:
      NonFiniteStateError: `state` holds NaN or inf (never saved).
    """
    digest, bad = state_lib.checkpoint_digest(state)
    if bad:
      raise NonFiniteStateError(
          f"refusing to save the train state of step {step}: non-finite"
          f" values in {', '.join(bad[:4])}"
          + (f" and {len(bad) - 4} more" if len(bad) > 4 else ""))
    meta = dict(meta, digest=digest,
                digest_layout=state_lib.layout_digest(state))
    return self._manager.save(
        step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                      meta=ocp.args.JsonSave(meta)),
        force=force)

  def wait(self):
    self._manager.wait_until_finished()

  def latest_step(self) -> int | None:
    """The newest saved step (in-flight saves finished first), or None."""
    self._manager.wait_until_finished()
    steps = self.all_steps()
    return steps[-1] if steps else None

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()

  def read_meta(self, step: int) -> dict[str, Any]:
    out = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(out["meta"])

  def check_model(self, fingerprint: dict[str, Any]):
    """Raises if the newest readable checkpoint is of another model/setup."""
    for step in reversed(self.all_steps()):
      try:
        saved = self.read_meta(step).get("fingerprint", {})
      except Exception:  # pylint: disable=broad-except
        continue  # Unreadable: restore() will skip it.
      problems = state_lib.describe_mismatch(saved, fingerprint, _MODEL_KEYS)
      if problems:
        raise CheckpointMismatchError(
            f"workdir {self.workdir} holds a checkpoint (step {step}) of"
            f" another model or setup ({'; '.join(problems)}). Config keys"
            " 'model' and 'lora' must match it to resume; use a fresh"
            " --workdir or the matching config.")
      return

  def restore_latest(self, abstract_state: Any
                     ) -> tuple[Any, dict[str, Any]] | None:
    """(state, meta) of the newest complete checkpoint, or None."""
    for step in reversed(self.all_steps()):
      try:
        out = self._manager.restore(
            step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                meta=ocp.args.JsonRestore()))
        meta = dict(out["meta"])
        _verify(step, out["state"], meta)
        return out["state"], meta
      except _DigestMismatch as e:
        _log.warning("checkpoint at step %d fails its digest check (%s);"
                     " moving it to %s and falling back to the previous"
                     " step", step, e, self.workdir / "checkpoints_broken")
        self._quarantine(step)
      except Exception as e:  # pylint: disable=broad-except
        _log.warning("checkpoint at step %d is unreadable (%s: %s); skipping"
                     " it", step, type(e).__name__, str(e)[:200])
        self._quarantine(step)
    return None

  def _quarantine(self, step: int):
    """Moves a broken step directory aside and reopens the manager."""
    self._manager.close()
    broken = self.workdir / "checkpoints_broken"
    src = self.directory / str(step)
    dst = broken / f"{step}-{int(time.time())}"
    if workdir_lib.is_remote(src):
      # No rename of a prefix on an object store: copy, then delete.
      for name in workdir_lib.remote_files(src):
        (src / name).copy(dst / name)
      workdir_lib.remove_dir(src, check=False)
    elif src.exists():
      broken.mkdir(parents=True, exist_ok=True)
      shutil.move(str(src), str(dst))
    self._manager = self._open()


def _verify(step: int, state: Any, meta: dict[str, Any]):
  """Raises _DigestMismatch if `state` is not what was saved at `step`."""
  saved = meta.get("digest")
  if saved is None:  # Written before checkpoints carried a digest.
    _log.warning("checkpoint at step %d has no digest (an older ftgen saved"
                 " it); restoring it unverified", step)
    return
  if meta.get("digest_layout") != state_lib.layout_digest(state):
    # Orbax cast the saved arrays to another dtype (a forced resume with a
    # changed config): the bytes differ by design, not by corruption.
    _log.warning("checkpoint at step %d is restored into other dtypes than"
                 " it was saved with; its digest is not checked", step)
    return
  digest, _ = state_lib.checkpoint_digest(state)
  if digest != saved:
    raise _DigestMismatch(f"saved {saved[:12]}, restored {digest[:12]}")
