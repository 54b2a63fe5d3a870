"""Reading and writing dataset directories (docs/design.md#dataset-files).

A dataset directory holds `train.jsonl`, `test.jsonl`, `manifest.json` and
`README.md`. Writes are atomic: everything goes into a temporary sibling
directory that is renamed into place at the end, so an interrupted run never
leaves a directory that looks complete.

This module also holds ftgen's one atomic writer (`atomic_path`,
`atomic_write_text`, `atomic_write_json`), used for every file and directory
ftgen writes that a reader could otherwise see half-written. Its targets may
be local paths or object-store URLs (`gs://bucket/run`,
`ftgen.data.workdir.as_path`); the readers here take both too.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import tempfile
from typing import Any, Iterable, Iterator

from etils import epath

from ftgen.data import records
from ftgen.data import validity as validity_lib
from ftgen.data import workdir as workdir_lib

CANARY = (
    "FTGEN CANARY: synthetic evaluation data; do not train on it. "
    "canary GUID 3f1c6a7e-5b2d-4e8f-9a0c-ftgen-dataset"
)
GENERATOR_VERSION = "1"


class DataError(ValueError):
  """A malformed data file; the message names the file, line and field."""


def _umask() -> int:
  """The process umask, read without changing it (Linux), else set back."""
  try:
    with open("/proc/self/status", encoding="ascii") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def _umask_mode(mode: int) -> int:
  return mode & ~_umask()


def _share_modes(path: pathlib.Path):
  """Gives `path` (and, for a directory, all below it) the modes a plain
  `open`/`mkdir` would: 0666/0777 minus the umask.

  Temporary files and directories (mkdtemp, and safetensors' writer) are
  0600/0700, so without this a colleague on shared storage could not read
  a dataset, an export or a cache entry ftgen wrote.
  """
  file_mode, dir_mode = _umask_mode(0o666), _umask_mode(0o777)
  paths = [path]
  if path.is_dir() and not path.is_symlink():
    paths += list(path.rglob("*"))
  for p in paths:
    if p.is_symlink():
      continue
    if p.is_dir():
      os.chmod(p, dir_mode)
    elif p.is_file():
      os.chmod(p, dir_mode if os.stat(p).st_mode & 0o111 else file_mode)


@contextlib.contextmanager
def atomic_path(target: epath.PathLike, *, directory: bool = False,
                replace_unowned: bool = False) -> Iterator[pathlib.Path]:
  """Yields a temporary sibling of `target`, renamed onto `target` on success.

  The caller writes the temporary path (a file it creates, or, with
  `directory=True`, an existing empty directory it fills). When the block ends
  normally a file is fsynced and renamed into place; a directory replaces
  an existing `target` directory only if ftgen made it (its sentinel:
  `ftgen.data.workdir`), checked before the block runs, so a user's
  directory costs no work and is never touched. When the block raises, the
  temporary path is removed and `target` is left as it was. Readers
  therefore see the old version or the complete new one, never a
  half-written one. The rename replaces a symlink at a file `target` rather
  than writing through it (docs/design.md#reliability). What lands at
  `target` has the modes plain `open`/`mkdir` give (0666/0777 minus the
  umask), whatever mode the writer created it with.

  A remote `target` (`gs://...`, `ftgen.data.workdir.is_remote`): the
  temporary path is a local one, uploaded to `target` when the block ends
  normally. A file becomes one object, and an object upload is atomic by
  itself (the object appears whole when the upload completes, replacing
  the old one), so no temporary object is needed. A directory is many
  objects and cannot appear at once: the old prefix is deleted (as
  `workdir.remove_dir`), then the files are uploaded with its sentinel
  (written if the directory has none) first and its manifests last, so
  that a cut-short upload is still ftgen's to replace and never has a
  dataset's `manifest.json`, which marks it complete.

  Args:
    target: the final path; its parent directory is created.
    directory: whether `target` is a directory.
    replace_unowned: with `directory`, replace whatever is at `target`; only
      for places that are ftgen's by location (the checkpoint cache).

  Raises:
    ftgen.data.workdir.WorkdirError: `directory` and `target` exists but is
      not a directory ftgen made.

  Yields:
    The temporary path to write, in `target`'s directory (same file system,
    so the rename is atomic); for a remote `target`, a local temporary path.
  """
  if workdir_lib.is_remote(target):
    with _remote_atomic_path(workdir_lib.as_path(target), directory,
                             replace_unowned) as tmp:
      yield tmp
    return
  target = pathlib.Path(target)
  if directory and not replace_unowned:
    workdir_lib.check_replaceable(target)
  target.parent.mkdir(parents=True, exist_ok=True)
  if directory:
    tmp = pathlib.Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(tmp, _umask_mode(0o777))  # mkdtemp's 0700 would lock others out.
  else:
    # Not mkstemp: its 0600 mode would change the permissions of what ftgen
    # writes. The random part keeps concurrent writers apart.
    tmp = target.with_name(
        f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
  try:
    yield tmp
    if directory:
      _share_modes(tmp)
      # Checked again: something may have appeared at `target` meanwhile.
      workdir_lib.remove_dir(target, check=not replace_unowned)
      os.replace(tmp, target)
    else:
      _share_modes(tmp)
      fd = os.open(tmp, os.O_RDONLY)
      try:
        os.fsync(fd)
      finally:
        os.close(fd)
      os.replace(tmp, target)
  finally:
    if tmp.is_dir() and not tmp.is_symlink():
      shutil.rmtree(tmp, ignore_errors=True)
    elif tmp.exists() or tmp.is_symlink():
      tmp.unlink()


@contextlib.contextmanager
def _remote_atomic_path(target: epath.Path, directory: bool,
                        replace_unowned: bool) -> Iterator[pathlib.Path]:
  """`atomic_path` for an object-store `target` (see there)."""
  if directory and not replace_unowned:
    workdir_lib.check_replaceable(target)
  with tempfile.TemporaryDirectory(prefix="ftgen-upload-") as local:
    tmp = pathlib.Path(local) / target.name
    if directory:
      tmp.mkdir()
    yield tmp
    if not directory:
      upload(tmp, target)
      return
    workdir_lib.remove_dir(target, check=not replace_unowned)
    files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*")
                   if p.is_file())
    if workdir_lib.SENTINEL not in files:
      workdir_lib.mark(target, "directory (uploaded)")
    owners = workdir_lib.OWNERSHIP_FILES
    for rel in sorted(files, key=lambda f: (f in owners[1:], f != owners[0])):
      upload(tmp / rel, target / rel)


def upload(local: os.PathLike[str] | str, target: epath.PathLike):
  """Copies the local file `local` to `target` (one object write)."""
  with open(local, "rb") as src, workdir_lib.as_path(target).open("wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)


def local_copy(path: epath.PathLike) -> pathlib.Path:
  """`path` itself when local; else a local copy of the remote directory.

  For readers that need local files (a fine-tuned export read by
  safetensors and the tokenizer). The copy lies in a temporary directory
  removed when the process exits.
  """
  if not workdir_lib.is_remote(path):
    return pathlib.Path(path)
  remote = workdir_lib.as_path(path)
  local = pathlib.Path(tempfile.mkdtemp(prefix="ftgen-download-")) / remote.name
  atexit.register(shutil.rmtree, local.parent, True)
  for rel in workdir_lib.remote_files(remote):
    (local / rel).parent.mkdir(parents=True, exist_ok=True)
    with (remote / rel).open("rb") as src, open(local / rel, "wb") as dst:
      shutil.copyfileobj(src, dst, 1 << 20)
  return local


def atomic_write_text(path: os.PathLike[str] | str, text: str):
  """Writes `text` (UTF-8, '\\n' line ends) to `path` atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
      f.write(text)


def atomic_write_json(path: os.PathLike[str] | str, obj: Any, *,
                      indent: int | None = 2, **dumps_kwargs):
  """Writes `obj` as JSON plus a final newline to `path` atomically.

  Args:
    path: the file to write.
    obj: a JSON-serializable object.
    indent: as `json.dumps`.
    **dumps_kwargs: passed to `json.dumps` (e.g. `default`, `sort_keys`).
  """
  atomic_write_text(path, json.dumps(obj, indent=indent, **dumps_kwargs) + "\n")


def check_writable_dir(path: os.PathLike[str] | str, what: str = "workdir"
                       ) -> None:
  """Raises OSError (one line) unless directory `path` can be written.

  `path` may not exist yet: then its nearest existing ancestor must be a
  writable directory (where it would be created). Nothing is created, so a
  run that fails a later check leaves no directory behind
  (docs/reliability.md#validation-before-work). A remote `path` (gs://) is
  not checked here: its first write (`make_dir`) fails before any work.
  """
  if workdir_lib.is_remote(path):
    return
  path = pathlib.Path(path).absolute()
  probe = path
  while not probe.exists() and probe != probe.parent:
    probe = probe.parent
  if not probe.is_dir():
    raise NotADirectoryError(
        f"{what} {path} cannot be created: {probe} is not a directory")
  if not os.access(probe, os.W_OK | os.X_OK):
    raise PermissionError(
        f"{what} {path} is not writable ({probe} is read-only or not yours);"
        " choose another directory")


def dumps(row: dict[str, Any]) -> str:
  """One JSONL line; stable across runs (key order as built, UTF-8)."""
  return json.dumps(row, ensure_ascii=False)


def write_jsonl(path: os.PathLike[str] | str, rows: Iterable[dict[str, Any]]):
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    for row in rows:
      f.write(dumps(row) + "\n")


_BOM = b"\xef\xbb\xbf"


def _jsonl_lines(path: os.PathLike[str] | str
                 ) -> Iterator[tuple[int, str, Any]]:
  """Yields (line number, line, parsed object); blank lines are skipped.

  Errors are `DataError`s naming file:line:column. A UTF-8 byte order mark
  at the start of the file (some Windows editors write one) is skipped.
  """
  path = workdir_lib.as_path(path)
  if not path.is_file():
    raise DataError(f"{path}: file not found")
  with path.open("rb") as f:
    for lineno, raw in enumerate(f, start=1):
      if lineno == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM):]
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        col = len(raw[:e.start].decode("utf-8", errors="replace")) + 1
        raise DataError(
            f"{path}:{lineno}:{col}: not valid UTF-8 (byte"
            f" 0x{raw[e.start]:02x}); save the file as UTF-8") from None
      if not line.strip():
        continue
      try:
        yield lineno, line, json.loads(line)
      except json.JSONDecodeError as e:
        # An error at the end of the line lies past its last character, not
        # on a next line after the newline.
        col = min(e.pos, len(line.rstrip("\r\n"))) + 1
        raise DataError(
            f"{path}:{lineno}:{col}: not valid JSON ({e.msg})") from None


def iter_jsonl(path: os.PathLike[str] | str) -> Iterator[tuple[int, Any]]:
  """Yields (line number, parsed object); blank lines are skipped.

  A leading UTF-8 BOM is accepted; errors name file:line:column.
  """
  for lineno, _, obj in _jsonl_lines(path):
    yield lineno, obj


def _where(path, lineno: int, line: str, field: str | None = None) -> str:
  """`path:line:column`, the column of `field`'s value when it is found (by
  its key in the line's text), else of the line's first character."""
  if field is not None:
    m = re.search(re.escape(json.dumps(field)) + r"\s*:\s*", line)
    if m:
      return f"{path}:{lineno}:{m.end() + 1}"
  return f"{path}:{lineno}:{len(line) - len(line.lstrip()) + 1}"


def _require(path, lineno, line, row, field, types, what):
  if not isinstance(row, dict):
    raise DataError(f"{_where(path, lineno, line)}: expected a JSON object,"
                    f" got {type(row).__name__}")
  if field not in row:
    raise DataError(
        f"{_where(path, lineno, line)}: missing field {field!r} ({what})")
  if not isinstance(row[field], types) or isinstance(row[field], bool):
    raise DataError(
        f"{_where(path, lineno, line, field)}: field {field!r} must be"
        f" {what}, got {type(row[field]).__name__}"
    )
  return row[field]


def _meta(path, lineno, line, row) -> dict[str, Any]:
  """The row's `meta` object (absent or null: empty); anything else is an
  error (docs/design.md#dataset-files)."""
  meta = row.get("meta")
  if meta is None:
    return {}
  if not isinstance(meta, dict):
    raise DataError(
        f"{_where(path, lineno, line, 'meta')}: field 'meta' must be a JSON"
        f" object, got {type(meta).__name__}")
  return dict(meta)


def read_documents(path: os.PathLike[str] | str) -> list[records.Document]:
  """Reads `{"id", "text"}` JSONL; other fields go to `meta`."""
  docs, seen = [], {}
  for lineno, line, row in _jsonl_lines(path):
    doc_id = _require(path, lineno, line, row, "id", (str, int), "a string id")
    text = _require(path, lineno, line, row, "text", str, "a string")
    doc_id = str(doc_id)
    if not text.strip():
      raise DataError(f"{_where(path, lineno, line, 'text')}: field 'text' is"
                      " empty")
    if doc_id in seen:
      raise DataError(
          f"{_where(path, lineno, line, 'id')}: duplicate id {doc_id!r} (first"
          f" on line {seen[doc_id]})"
      )
    seen[doc_id] = lineno
    meta = _meta(path, lineno, line, row)
    meta.update({k: v for k, v in row.items()
                 if k not in ("id", "text", "meta")})
    docs.append(records.Document(doc_id, text, meta))
  if not docs:
    raise DataError(f"{path}: no documents")
  return docs


def read_questions(path: os.PathLike[str] | str) -> list[records.Question]:
  """Reads the test schema with line-numbered errors.

  The schema: docs/design.md#dataset-files.
  """
  questions, seen = [], {}
  for lineno, line, row in _jsonl_lines(path):
    need = functools.partial(_require, path, lineno, line, row)
    qid = str(need("id", (str, int), "a string id"))
    split = need("split", str, "a string")
    prompt = need("prompt", str, "a string")
    choices = need("choices", list, "a list of strings")
    answer = need("answer", int, "an integer index")
    if len(choices) < 2 or not all(isinstance(c, str) for c in choices):
      raise DataError(
          f"{_where(path, lineno, line, 'choices')}: field 'choices' must list"
          f" at least 2 strings, got {choices!r}"
      )
    answers = row.get("answers", [answer])
    if not isinstance(answers, list) or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in answers
    ):
      raise DataError(f"{_where(path, lineno, line, 'answers')}: field"
                      " 'answers' must be a list of integers")
    if qid in seen:
      raise DataError(
          f"{_where(path, lineno, line, 'id')}: duplicate id {qid!r} (first on"
          f" line {seen[qid]})"
      )
    seen[qid] = lineno
    meta = _meta(path, lineno, line, row)
    try:
      questions.append(
          records.Question(qid, split, prompt, tuple(choices), answer,
                           tuple(answers), meta)
      )
    except ValueError as e:
      raise DataError(f"{_where(path, lineno, line, 'answer')}: {e}") from None
  if not questions:
    raise DataError(f"{path}: no questions")
  return questions


def sha256_file(path: os.PathLike[str] | str) -> str:
  h = hashlib.sha256()
  with workdir_lib.as_path(path).open("rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _card(dataset: records.Dataset, manifest: dict[str, Any]) -> str:
  lines = [f"# Dataset card: {dataset.name}", ""]
  description = dataset.card.get("description")
  if description:
    lines += [description.strip(), ""]
  lines += [
      f"Generated by ftgen (generator version {manifest['generator_version']},"
      f" seed {manifest['seed']}).",
      "",
      "## Files",
      "",
      "* `train.jsonl`: one training document per line (`id`, `text`).",
      "* `test.jsonl`: one multiple-choice question per line (`id`, `split`,",
      "  `prompt`, `choices`, `answer`, and `answers` when several choices",
      "  are correct).",
      "* `manifest.json`: sizes, seed, sha256 of every file.",
      "",
      "## Sizes",
      "",
      f"* training documents: {manifest['sizes']['train']}",
  ]
  for split, n in manifest["sizes"]["test_splits"].items():
    chance = manifest["chance"][split]
    lines.append(f"* test split `{split}`: {n} questions (chance {chance:.3f})")
  for key, value in dataset.card.items():
    if key == "description":
      continue
    lines += ["", f"## {key}", "", str(value).strip()]
  if "validity" in manifest:
    lines += ["", "## Validity", "", validity_lib.card_text(
        manifest["validity"])]
  lines += ["", "## Canary", "", CANARY, ""]
  return "\n".join(lines)


def write_dataset(
    dataset: records.Dataset,
    outdir: epath.PathLike,
    *,
    seed: int,
    config: dict[str, Any] | None = None,
    parquet: bool = False,
    validity: dict[str, Any] | None = None,
) -> workdir_lib.AnyPath:
  """Writes a dataset directory atomically and returns its path.

  `validity` (`ftgen.data.registry.validity`) goes into the manifest and the
  card.
  """
  outdir = workdir_lib.as_path(outdir)
  with atomic_path(outdir, directory=True) as tmp:
    write_jsonl(tmp / "train.jsonl", (d.to_json() for d in dataset.train))
    write_jsonl(tmp / "test.jsonl", (q.to_json() for q in dataset.test))
    for rel, text in sorted(dataset.extra_files.items()):
      (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
      (tmp / rel).write_text(text, encoding="utf-8")
    if parquet:
      _write_parquet(dataset, tmp)
    splits: dict[str, int] = {}
    chance: dict[str, float] = {}
    for q in dataset.test:
      splits[q.split] = splits.get(q.split, 0) + 1
      chance[q.split] = chance.get(q.split, 0.0) + q.chance
    chance = {s: chance[s] / splits[s] for s in splits}
    files = sorted(
        p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()
    )
    manifest = {
        "name": dataset.name,
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "canary": CANARY,
        "sizes": {"train": len(dataset.train), "test": len(dataset.test),
                  "test_splits": splits},
        "chance": chance,
        "config": config or {},
        "sha256": {f: sha256_file(tmp / f) for f in files},
    }
    if validity is not None:
      manifest["validity"] = validity
    (tmp / "README.md").write_text(_card(dataset, manifest), encoding="utf-8")
    manifest["sha256"]["README.md"] = sha256_file(tmp / "README.md")
    (tmp / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
  return outdir


def _write_parquet(dataset: records.Dataset, outdir: pathlib.Path):
  import pandas as pd  # pylint: disable=g-import-not-at-top

  def flat(row):
    return {k: (json.dumps(v) if isinstance(v, dict) else v)
            for k, v in row.items()}

  pd.DataFrame([flat(d.to_json()) for d in dataset.train]).to_parquet(
      outdir / "train.parquet", index=False)
  pd.DataFrame([flat(q.to_json()) for q in dataset.test]).to_parquet(
      outdir / "test.parquet", index=False)


def load_dataset_dir(path: os.PathLike[str] | str, *, need_train: bool = True,
                     need_questions: bool = True):
  """Reads a dataset directory back: (documents or None, questions).

  The one reader of dataset directories. Every problem is a `DataError`
  naming the directory, or the file, line and field.

  Args:
    path: a dataset directory (train.jsonl, test.jsonl).
    need_train: read train.jsonl (else the documents are None).
    need_questions: False accepts a train-only dataset (your own documents
      without questions): an absent or empty test.jsonl gives no questions.
  """
  path = workdir_lib.as_path(path)
  if not path.is_dir():
    raise DataError(f"{path}: dataset directory not found")
  docs = read_documents(path / "train.jsonl") if need_train else None
  test = path / "test.jsonl"
  if not need_questions and (
      not test.is_file() or not test.read_bytes().removeprefix(_BOM).strip()):
    return docs, []
  return docs, read_questions(test)
