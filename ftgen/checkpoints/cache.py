"""The on-disk cache of imported checkpoints (docs/design.md#models).

Importing a GGUF file (dequantizing, renaming, building its tokenizer) takes
seconds to tens of seconds; loading the standard checkpoint directory it
produces takes well under a second. The cache lives in `$FTGEN_CACHE` or
`~/.cache/ftgen`.

Each entry is a directory written atomically: it is built in a temporary
sibling and renamed into place, with `ftgen_manifest.json` written last, so an
interrupted import never leaves a directory that looks complete. The manifest
records the source file's size, mtime and the sha256 of its first bytes, plus
an importer version; when any of them differs the entry is rebuilt.

What a failed or killed import leaves is removed: an import that raises
leaves nothing (`atomic_path` deletes its temporary directory), and the
temporary directory of a killed one (a dot-name beside the entries) is
swept by the next build once it is `STALE_SECONDS` old. A size cap,
`$FTGEN_CACHE_MAX_GB` (unset: unlimited, so nothing a user relies on is
deleted unasked), evicts the least recently used complete entries after
each build; an entry's manifest mtime is its last use.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import secrets
import shutil
import time
from typing import Any, Callable

from ftgen.data import io as data_io

MANIFEST = "ftgen_manifest.json"
# Bytes of the source hashed into its fingerprint: enough to catch a replaced
# file with the same size and mtime, cheap enough to check on every load.
HASH_PREFIX_BYTES = 16 << 20
MAX_GB_ENV = "FTGEN_CACHE_MAX_GB"
# A temporary build directory this old belongs to a killed import (an import
# takes seconds to minutes).
STALE_SECONDS = 3600


def cache_root() -> pathlib.Path:
  """`$FTGEN_CACHE`, else `~/.cache/ftgen`."""
  base = os.environ.get("FTGEN_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "ftgen")
  return pathlib.Path(base)


def fingerprint(path: os.PathLike[str] | str) -> dict[str, Any]:
  """Size, mtime and sha256 of the first `HASH_PREFIX_BYTES` of a file."""
  path = pathlib.Path(path)
  stat = path.stat()
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    remaining = HASH_PREFIX_BYTES
    while remaining > 0:
      block = f.read(min(remaining, 1 << 20))
      if not block:
        break
      digest.update(block)
      remaining -= len(block)
  return {
      "path": str(path.resolve()),
      "size": stat.st_size,
      "mtime_ns": stat.st_mtime_ns,
      "sha256_prefix": digest.hexdigest(),
      "prefix_bytes": HASH_PREFIX_BYTES,
  }


def entry_dir(kind: str, source: os.PathLike[str] | str,
              variant: str) -> pathlib.Path:
  """Where the import of `source` (one per resolved path and variant) lives."""
  source = pathlib.Path(source).resolve()
  key = hashlib.sha256(f"{source}|{variant}".encode()).hexdigest()[:16]
  stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.stem)
  return cache_root() / kind / f"{stem}-{variant}-{key}"


def read_manifest(directory: pathlib.Path) -> dict[str, Any] | None:
  try:
    with open(directory / MANIFEST, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def is_current(directory: pathlib.Path, expected: dict[str, Any]) -> bool:
  """Whether `directory` is a complete entry whose manifest matches."""
  manifest = read_manifest(directory)
  if manifest is None:
    return False
  return all(manifest.get(k) == v for k, v in expected.items())


def cached_build(
    directory: pathlib.Path,
    expected: dict[str, Any],
    build: Callable[[pathlib.Path], None],
) -> tuple[pathlib.Path, bool]:
  """Returns (`directory`, built?), running `build(tmp_dir)` when stale.

  `expected` is what the manifest must hold (source fingerprint, importer
  version, options); `build` fills an empty temporary directory, which then
  replaces `directory` atomically. Two processes racing both build; the
  second rename finds a current entry and keeps it.
  """
  if is_current(directory, expected):
    _touch(directory)
    return directory, False
  max_bytes = max_cache_bytes()  # A bad value fails before the import.
  sweep_stale(directory.parent)
  try:
    # Entries are ftgen's by location (hashed names under the cache root).
    with data_io.atomic_path(directory, directory=True,
                             replace_unowned=True) as tmp:
      build(tmp)
      with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
  except OSError:
    # The final rename loses a race when another process put its own entry
    # in place meanwhile: keep that one if it is current.
    if not is_current(directory, expected):
      raise
  if max_bytes is not None:
    evict_lru(max_bytes, keep=directory)
  return directory, True


def max_cache_bytes() -> int | None:
  """The size cap from `$FTGEN_CACHE_MAX_GB` in bytes (None: unlimited)."""
  value = os.environ.get(MAX_GB_ENV, "").strip()
  if not value:
    return None
  try:
    gb = float(value)
  except ValueError:
    gb = -1.0
  if not gb > 0 or gb == float("inf"):
    raise ValueError(f"{MAX_GB_ENV}={value!r} must be a positive number of"
                     " GB (unset: no cap)")
  return int(gb * 1e9)


def _touch(directory: pathlib.Path):
  try:
    os.utime(directory / MANIFEST)  # Its last use, for `evict_lru`.
  except OSError:
    pass  # A read-only shared cache: no LRU order, nothing breaks.


def _size(directory: pathlib.Path) -> int:
  total = 0
  for root, _, files in os.walk(directory):
    for name in files:
      try:
        total += os.lstat(os.path.join(root, name)).st_size
      except OSError:
        pass
  return total


def _remove(directory: pathlib.Path):
  """Deletes an entry; renamed aside first (a dot-name the sweep knows), so
  no reader sees a manifest beside half-deleted weights."""
  aside = directory.with_name(
      f".{directory.name}.evicted.{secrets.token_hex(4)}")
  try:
    os.replace(directory, aside)
  except OSError:
    return  # Gone meanwhile (another process evicted or rebuilt it).
  shutil.rmtree(aside, ignore_errors=True)


def sweep_stale(kind_dir: pathlib.Path, max_age: float = STALE_SECONDS):
  """Removes temporary directories of killed builds in `kind_dir`."""
  if not kind_dir.is_dir():
    return
  now = time.time()
  for path in kind_dir.iterdir():
    try:
      stale = (path.name.startswith(".") and path.is_dir()
               and not path.is_symlink()
               and now - path.stat().st_mtime > max_age)
    except OSError:
      continue
    if stale:
      shutil.rmtree(path, ignore_errors=True)


def entries() -> list[pathlib.Path]:
  """Complete entries (directories with a manifest) under the cache root."""
  root = cache_root()
  if not root.is_dir():
    return []
  return sorted(d for kind in root.iterdir() if kind.is_dir()
                for d in kind.iterdir()
                if not d.name.startswith(".") and (d / MANIFEST).is_file())


def evict_lru(max_bytes: int, *, keep: pathlib.Path | None = None
              ) -> list[pathlib.Path]:
  """Deletes least recently used entries until all fit `max_bytes`; never
  `keep` (the entry in use). Returns the deleted entries."""
  found = []
  for d in entries():
    try:
      found.append(((d / MANIFEST).stat().st_mtime, d, _size(d)))
    except OSError:
      continue
  total = sum(size for _, _, size in found)
  evicted = []
  for _, d, size in sorted(found, key=lambda x: x[0]):
    if total <= max_bytes:
      break
    if keep is not None and d == keep:
      continue
    _remove(d)
    total -= size
    evicted.append(d)
  return evicted
