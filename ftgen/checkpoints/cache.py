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
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Any, Callable

from ftgen.data import io as data_io

MANIFEST = "ftgen_manifest.json"
# Bytes of the source hashed into its fingerprint: enough to catch a replaced
# file with the same size and mtime, cheap enough to check on every load.
HASH_PREFIX_BYTES = 16 << 20


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
    return directory, False
  try:
    with data_io.atomic_path(directory, directory=True) as tmp:
      build(tmp)
      with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
  except OSError:
    # The final rename loses a race when another process put its own entry
    # in place meanwhile: keep that one if it is current.
    if not is_current(directory, expected):
      raise
  return directory, True
