"""Metrics sinks: a JSONL file and TensorBoard event files (tensorboardX)."""

from __future__ import annotations

import json
import math
import pathlib
import sys
from typing import Any

from ftgen.data import io as data_io


class MetricsWriter:
  """Appends metric rows to `workdir/metrics.jsonl` and TensorBoard.

  On resume at step s, rows with a step > s (written by the interrupted run
  after its last checkpoint, and about to be recomputed) are dropped, so the
  file reads as one uninterrupted run.

  With `enabled=False` (processes other than 0 of a multi-host job, which
  share process 0's workdir) it writes nothing.
  """

  def __init__(self, workdir: str | pathlib.Path, *, resume_step: int = 0,
               tensorboard: bool = True, enabled: bool = True):
    self.path = pathlib.Path(workdir) / "metrics.jsonl"
    self._file = self._tb = None
    if not enabled:
      return
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._truncate_after(resume_step)
    self._file = open(self.path, "a", encoding="utf-8")
    if tensorboard:
      tbx = _import_tensorboardx()
      if tbx is not None:
        self._tb = tbx.SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))

  def _truncate_after(self, step: int):
    if self.path.is_symlink():
      # Appending would write through the link, possibly out of the workdir
      # (docs/design.md#reliability): the link goes, the rows start afresh.
      self.path.unlink()
    if not self.path.exists():
      return
    keep = []
    for line in self.path.read_text(encoding="utf-8").splitlines():
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line cut short by a kill.
      if row.get("step", 0) <= step:
        keep.append(line)
    data_io.atomic_write_text(self.path, "".join(k + "\n" for k in keep))

  def write(self, step: int, values: dict[str, Any]):
    if self._file is None:
      return
    row = {"step": int(step)}
    row.update({k: _plain(v) for k, v in values.items()})
    self._file.write(json.dumps(row) + "\n")
    self._file.flush()
    if self._tb is not None:
      for k, v in row.items():
        if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
          self._tb.add_scalar(k, v, step)

  def close(self):
    if self._file is None:
      return
    self._file.close()
    if self._tb is not None:
      self._tb.close()


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


def read_metrics(workdir: str | pathlib.Path) -> list[dict[str, Any]]:
  path = pathlib.Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line]
