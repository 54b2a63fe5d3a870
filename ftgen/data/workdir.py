"""What ftgen owns on disk: sentinels, inputs kept out of outputs, one run
per workdir (docs/design.md#reliability).

* **Sentinels.** Every directory ftgen creates as an output carries a mark
  of its maker: a dataset directory its `manifest.json` (written by
  `ftgen.data.io.write_dataset`), a checkpoint-cache entry its
  `ftgen_manifest.json`, every other one (experiment, stage, fine-tuning,
  evaluation workdirs, fine-tuned exports) a small `.ftgen` file naming what
  made it and when. ftgen removes or replaces a directory only when it
  carries one (`check_replaceable`, `remove_dir`); anything else is the
  user's, and ftgen refuses with one line naming the path.
* **Inputs outside outputs.** `check_inputs_outside` fails before any work
  when a path in a config lies inside a directory ftgen would replace.
* **A lock per workdir.** `locked` holds `fcntl.flock` on `DIR/.ftgen.lock`
  for the whole run; a second run on the same directory fails at once with
  "another run (pid N) is using DIR". The lock is host-local (flock), and
  under `jax.distributed` only process 0 takes it (`enabled`), as only
  process 0 is meant to write.
* **Local or gs://.** `as_path` gives a `pathlib.Path` for a local path
  (every guarantee above, unchanged) and an `etils.epath.Path` for a URL
  such as `gs://bucket/run`. On an object store a "directory" is a prefix:
  it is ftgen's when its sentinel object is there, `make_dir` writes only
  that object, `remove_dir` deletes the prefix's objects (the sentinels
  last, so a removal cut short leaves a prefix that is still ftgen's), and
  `locked` takes no lock (one log line says so): an object store has no
  flock, and a lock object would outlive a preempted run and block the
  very rerun that should resume it.

No jax here; `ftgen.data.io` uses this module for its directory
replacement, so this module writes its two small files (sentinel, lock)
itself, with `O_NOFOLLOW`, never through a symlink.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import pathlib
import re
import shutil
import tempfile
import time
from typing import Any, Iterable, Iterator, Mapping, Union

from etils import epath

_log = logging.getLogger(__name__)

# A local path or an object-store URL (`as_path`).
AnyPath = Union[pathlib.Path, epath.Path]

SENTINEL = ".ftgen"
LOCK_FILE = ".ftgen.lock"
# Written by ftgen.checkpoints.cache (cached_build) into every cache entry.
CACHE_MANIFEST = "ftgen_manifest.json"
# A dataset directory's manifest (ftgen.data.io.write_dataset) holds these.
_DATASET_MANIFEST_KEYS = ("generator_version", "canary")


class WorkdirError(ValueError):
  """A directory ftgen would write is not its own, holds inputs, or is busy.

  The message is one line naming the path and what to do.
  """


class WorkdirBusy(WorkdirError):
  """Another run holds the workdir's lock."""


def is_remote(path: epath.PathLike) -> bool:
  """Whether `path` is a URL (`gs://bucket/run`) rather than a local path."""
  return "://" in os.fspath(path)


_remote_configured = False


def _configure_remote():
  """Turns off gcsfs's listings cache (once, before its first use).

  Other writers share a bucket workdir: the other processes of a
  multi-host job, and tensorstore writing orbax's checkpoints in this one;
  a cached listing would hide their objects from `exists` and `iterdir`.
  """
  global _remote_configured
  if _remote_configured:
    return
  _remote_configured = True
  try:
    import fsspec  # pylint: disable=g-import-not-at-top
  except ImportError:
    return  # etils then reports the missing gcsfs itself.
  for proto in ("gs", "gcs"):
    fsspec.config.conf.setdefault(proto, {}).setdefault(
        "use_listings_cache", False)


def as_path(path: epath.PathLike) -> AnyPath:
  """`path` as a `pathlib.Path` (local) or an `epath.Path` (a URL).

  Local paths stay `pathlib.Path`s, so their symlink checks and atomic
  renames are exactly as before; `pathlib.Path("gs://b/x")` would collapse
  the URL to `gs:/b/x`.
  """
  if not is_remote(path):
    return pathlib.Path(os.fspath(path))
  _configure_remote()
  return epath.Path(path)


def remote_files(prefix: epath.Path) -> list[str]:
  """The objects under the URL `prefix`, as names relative to it, sorted."""
  root = os.fspath(prefix).split("://", 1)[1].rstrip("/")
  out = []
  for dirpath, _, files in prefix.walk():
    rel = os.fspath(dirpath).split("://", 1)[-1][len(root):].strip("/")
    out += [f"{rel}/{f}" if rel else f for f in files]
  return sorted(out)


def lexists(path: epath.PathLike) -> bool:
  """`os.path.lexists` (a broken symlink exists), or an object or prefix."""
  if is_remote(path):
    return as_path(path).exists()
  return os.path.lexists(path)


def _is_file(path: AnyPath) -> bool:
  if is_remote(path):
    return path.is_file()
  return path.is_file() and not path.is_symlink()


def _dataset_manifest(path: AnyPath) -> bool:
  if not _is_file(path):
    return False
  try:
    manifest = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, UnicodeDecodeError, ValueError):
    return False
  return isinstance(manifest, dict) and all(
      k in manifest for k in _DATASET_MANIFEST_KEYS)


def made_by_ftgen(path: epath.PathLike) -> bool:
  """Whether `path` is a real directory (not a symlink) with ftgen's sentinel."""
  path = as_path(path)
  if is_remote(path):
    pass  # A prefix: no symlinks; its sentinel alone says whose it is.
  elif path.is_symlink() or not path.is_dir():
    return False
  return (_is_file(path / SENTINEL) or _is_file(path / CACHE_MANIFEST)
          or _dataset_manifest(path / "manifest.json"))


def check_replaceable(path: epath.PathLike):
  """Raises `WorkdirError` unless `path` is absent or a directory ftgen made.

  Args:
    path: a directory ftgen is about to remove or replace.
  """
  path = as_path(path)
  if not lexists(path):
    return
  if not is_remote(path) and path.is_symlink():
    why = "is a symbolic link"
  elif not path.is_dir():
    why = "exists and is not a directory"
  elif made_by_ftgen(path):
    return
  else:
    why = (f"exists and was not made by ftgen (no manifest.json or"
           f" {SENTINEL})")
  raise WorkdirError(f"{path} {why}; choose another --workdir or remove it"
                     " yourself")


def remove_dir(path: epath.PathLike, *, check: bool = True):
  """Removes the directory `path` (or a symlink there, not its target).

  The directory is first renamed aside, so `path` is never half-deleted.

  Args:
    path: the directory.
    check: refuse (`WorkdirError`) unless ftgen made it. Only directories
      that are ftgen's by location (the checkpoint cache) pass False.
  """
  path = as_path(path)
  if check:
    check_replaceable(path)
  if is_remote(path):
    _remove_prefix(path)
    return
  if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
    path.unlink()
    return
  if not path.exists():
    return
  trash = pathlib.Path(
      tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
  try:
    os.replace(path, trash / "old")
  except FileNotFoundError:
    pass  # Another process moved it meanwhile.
  shutil.rmtree(trash, ignore_errors=True)


# The objects that make a prefix ftgen's: deleted last, uploaded first.
OWNERSHIP_FILES = (SENTINEL, CACHE_MANIFEST, "manifest.json")


def _remove_prefix(path: epath.Path):
  """Deletes every object under `path`, its ownership objects last.

  An object store cannot rename a prefix aside, so a removal cut short
  leaves part of it; with the sentinel still there the rerun may replace it.
  """
  if path.is_file():
    path.unlink()
    return
  names = remote_files(path)
  for name in sorted(names, key=lambda n: n in OWNERSHIP_FILES):
    (path / name).unlink(missing_ok=True)


def _write_new(path: pathlib.Path, text: str):
  """Creates `path` with `text`; never follows or replaces a symlink."""
  fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
               0o644)
  with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(text)


def mark(directory: os.PathLike[str] | str, what: str):
  """Writes the sentinel `.ftgen` into `directory` (kept if already there).

  Args:
    directory: an existing directory that ftgen made.
    what: what it is (e.g. "experiment workdir"), recorded with the time.
  """
  info = {"made_by": "ftgen", "what": what, "pid": os.getpid(),
          "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds")}
  directory = as_path(directory)
  if is_remote(directory):
    # Check then write: gcsfs's create-only mode (ifGenerationMatch=0) is
    # not honoured by every emulator, and two writers of one sentinel write
    # the same claim.
    if not (directory / SENTINEL).exists():
      (directory / SENTINEL).write_text(json.dumps(info) + "\n")
    return
  try:
    _write_new(directory / SENTINEL, json.dumps(info) + "\n")
  except FileExistsError:
    pass


def make_dir(path: epath.PathLike, what: str) -> AnyPath:
  """Creates the output directory `path` with a sentinel, unless it exists.

  An existing directory is used as it is and not claimed: ftgen marks only
  what it creates. On an object store (`gs://`) the directory is a prefix:
  an empty one gets its sentinel object; one holding objects is used as it
  is.

  Args:
    path: the directory; its parents are created.
    what: recorded in the sentinel.

  Returns:
    `path` as a `pathlib.Path` (local) or `epath.Path` (a URL).
  """
  path = as_path(path)
  if is_remote(path):
    if path.is_file():
      raise WorkdirError(f"{path} exists and is not a directory (an object);"
                         " choose another --workdir or remove it yourself")
    if not path.is_dir():
      mark(path, what)
    return path
  if path.is_dir():
    return path
  if os.path.lexists(path):
    raise WorkdirError(f"{path} exists and is not a directory; choose another"
                       " --workdir or remove it yourself")
  path.parent.mkdir(parents=True, exist_ok=True)
  try:
    path.mkdir()
  except FileExistsError:
    return path  # Made meanwhile by another process.
  mark(path, what)
  return path


# ----------------------------------------------------------- inputs


def _leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
  if isinstance(tree, Mapping):
    for k, v in tree.items():
      yield from _leaves(v, f"{prefix}{k}.")
  elif isinstance(tree, (list, tuple)):
    for i, v in enumerate(tree):
      yield from _leaves(v, f"{prefix}{i}.")
  else:
    yield prefix[:-1], tree


def input_paths(config: Mapping[str, Any]) -> list[tuple[str, pathlib.Path]]:
  """(dotted key, path) of every string in `config` naming an existing path.

  A value with a scheme (`hf:DIR`, `gguf:FILE`) counts by its path part.
  Only values that look like paths count (a separator or a file suffix):
  names such as `reversals` or `finetune` would otherwise match the very
  directories ftgen writes when the workdir is the current directory.
  """
  out = []
  for key, value in _leaves(config):
    if not isinstance(value, str) or not value:
      continue
    for candidate in (value, re.sub(r"^[a-z]+:", "", value)):
      looks_like_path = os.sep in candidate or pathlib.Path(candidate).suffix
      if looks_like_path and os.path.lexists(candidate):
        out.append((key, pathlib.Path(candidate)))
        break
  return out


def check_inputs_outside(config: Mapping[str, Any],
                         outputs: Iterable[os.PathLike[str] | str]):
  """Raises `WorkdirError` when an input path lies inside an output.

  Args:
    config: a (nested) config dict; every string naming an existing path
      is an input.
    outputs: directories ftgen may remove or replace.
  """
  # Inputs are local paths; a remote output (gs://) holds none of them.
  outputs = [pathlib.Path(o) for o in outputs if not is_remote(o)]
  resolved = [o.resolve() for o in outputs]
  for key, path in input_paths(config):
    p = path.resolve()
    for out, r in zip(outputs, resolved):
      if p == r or r in p.parents:
        raise WorkdirError(
            f"config key {key!r} = {str(path)!r} lies inside {out}, which"
            " ftgen replaces when it (re)writes it; move the input out of"
            " there or choose another --workdir")


# ----------------------------------------------------------- the lock


def _holder(fd: int) -> str:
  # The holder writes its pid right after taking the lock; allow it a moment.
  for _ in range(20):
    text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    if text:
      return text
    time.sleep(0.01)
  return "unknown"


@contextlib.contextmanager
def locked(directory: epath.PathLike, *,
           lock_file: os.PathLike[str] | str | None = None,
           enabled: bool = True) -> Iterator[None]:
  """Holds the exclusive lock of `directory` for the `with` block.

  Args:
    directory: the workdir (it must exist).
    lock_file: the lock's path; default `directory/.ftgen.lock`. A directory
      that is replaced as a whole keeps its lock beside it.
    enabled: False takes no lock (processes other than 0 of a multi-host
      job, which share process 0's workdir).

  Raises:
    WorkdirBusy: another open of the lock holds it (another process, or
      another `locked` block of this one): "another run (pid N) is using DIR".
    WorkdirError: the lock file cannot be opened (read-only directory,
      symlink).
  """
  if not enabled:
    yield
    return
  if is_remote(directory):
    _log.warning("%s is on an object store: no workdir lock is taken (do"
                 " not start a second run on it)", directory)
    yield
    return
  directory = pathlib.Path(directory)
  path = pathlib.Path(lock_file) if lock_file else directory / LOCK_FILE
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
  except OSError as e:
    why = ("is a symbolic link" if e.errno == errno.ELOOP
           else f"cannot be opened ({e.strerror})")
    raise WorkdirError(f"the lock file {path} {why}; choose another --workdir"
                       " or fix its permissions") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirBusy(f"another run (pid {_holder(fd)}) is using"
                        f" {directory}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
      yield
    finally:
      os.ftruncate(fd, 0)  # No stale pid for the next contender to read.
  finally:
    os.close(fd)  # Releases the lock.
