"""Metrics sinks: a JSONL file and TensorBoard event files (tensorboardX)."""

from __future__ import annotations

import json
import logging
import math
import pathlib
import sys
import tempfile
import time
from typing import Any

from etils import epath

from ftgen.data import io as data_io
from ftgen.data import workdir as workdir_lib

_log = logging.getLogger(__name__)

# On an object store each upload rewrites a whole object, and one object may
# be rewritten about once a second: uploads are at most this often (plus
# `flush` at each checkpoint and `close`).
REMOTE_UPLOAD_S = 10.0


class MetricsWriter:
  """Appends metric rows to `workdir/metrics.jsonl` and TensorBoard.

  On resume at step s, rows with a step > s (written by the interrupted run
  after its last checkpoint, and about to be recomputed) are dropped, so the
  file reads as one uninterrupted run.

  With `enabled=False` (processes other than 0 of a multi-host job, which
  share process 0's workdir) it writes nothing.

  On an object store (a `gs://` workdir), where an object cannot be
  appended to, the rows are kept in memory and `metrics.jsonl` is rewritten
  whole (atomically) at most every `REMOTE_UPLOAD_S` seconds, at each
  `flush` (the loop flushes at every checkpoint, so the rows up to a
  checkpoint survive a preemption) and at `close`; TensorBoard writes its
  event files into a local temporary directory that is uploaded to
  `workdir/tensorboard/` at the same times.
  """

  def __init__(self, workdir: epath.PathLike, *, resume_step: int = 0,
               tensorboard: bool = True, enabled: bool = True):
    workdir = workdir_lib.as_path(workdir)
    self.path = workdir / "metrics.jsonl"
    self._tb_dir = workdir / "tensorboard"
    self._remote = workdir_lib.is_remote(workdir)
    self._file = self._tb = self._tb_local = None
    self._rows: list[str] = []
    self._uploaded = time.monotonic()
    self._open = enabled
    if not enabled:
      return
    if self._remote:
      self._rows = self._kept_rows(resume_step)
    else:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._truncate_after(resume_step)
      self._file = open(self.path, "a", encoding="utf-8")
    if tensorboard:
      tbx = _import_tensorboardx()
      if tbx is not None and self._remote:
        self._tb_local = tempfile.TemporaryDirectory(prefix="ftgen-tb-")
        self._tb = tbx.SummaryWriter(self._tb_local.name)
      elif tbx is not None:
        self._tb = tbx.SummaryWriter(str(self._tb_dir))

  def _kept_rows(self, step: int) -> list[str]:
    """The rows of an existing metrics file with a step <= `step`."""
    if not self.path.exists():
      return []
    keep = []
    for line in self.path.read_text(encoding="utf-8").splitlines():
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line cut short by a kill.
      if row.get("step", 0) <= step:
        keep.append(line)
    return keep

  def _truncate_after(self, step: int):
    if self.path.is_symlink():
      # Appending would write through the link, possibly out of the workdir
      # (docs/design.md#reliability): the link goes, the rows start afresh.
      self.path.unlink()
    if not self.path.exists():
      return
    keep = self._kept_rows(step)
    data_io.atomic_write_text(self.path, "".join(k + "\n" for k in keep))

  def write(self, step: int, values: dict[str, Any]):
    if not self._open:
      return
    row = {"step": int(step)}
    row.update({k: _plain(v) for k, v in values.items()})
    if self._remote:
      self._rows.append(json.dumps(row))
    else:
      self._file.write(json.dumps(row) + "\n")
      self._file.flush()
    if self._tb is not None:
      for k, v in row.items():
        if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
          self._tb.add_scalar(k, v, step)
    if self._remote and (time.monotonic() - self._uploaded
                         >= REMOTE_UPLOAD_S):
      self.flush()

  def flush(self):
    """Makes every row written so far durable (uploads, on an object store)."""
    if not self._open or not self._remote:
      return
    if self._tb is not None:
      self._tb.flush()
    self._upload()

  def _upload(self):
    data_io.atomic_write_text(self.path,
                              "".join(r + "\n" for r in self._rows))
    if self._tb_local is not None:
      for f in sorted(pathlib.Path(self._tb_local.name).iterdir()):
        data_io.upload(f, self._tb_dir / f.name)
    self._uploaded = time.monotonic()

  def close(self):
    if not self._open:
      return
    self._open = False
    if self._tb is not None:
      self._tb.close()
    if self._remote:
      self._upload()
      if self._tb_local is not None:
        self._tb_local.cleanup()
    else:
      self._file.close()


def _import_tensorboardx():
  """tensorboardX, imported without torch.

  tensorboardX's writer imports torch when it is installed only to accept
  torch tensors (5 s here); scalars need none of it, so hide torch during
  the import unless something already loaded it.
  """
  hide = "torch" not in sys.modules
  if hide:
    sys.modules["torch"] = None  # type: ignore[assignment]  # -> ImportError
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top
    return tensorboardX
  except ImportError:
    return None
  finally:
    if hide:
      del sys.modules["torch"]


def _plain(v: Any) -> Any:
  if v is None:
    return None  # JSON null (an invalid evaluation's accuracy), not "None".
  try:
    return float(v) if not isinstance(v, (str, bool, int)) else v
  except (TypeError, ValueError):
    return str(v)


def read_metrics(workdir: epath.PathLike) -> list[dict[str, Any]]:
  path = workdir_lib.as_path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line]
