"""Fine-tuning in a gs:// workdir (a local GCS emulator): orbax checkpoints
land in the bucket, a preempted run resumes from them and ends where an
uninterrupted local run ends, and the run's files are read from the bucket.
"""

import json
import os
import signal

import pytest

from ftgen.data import workdir as workdir_lib
from ftgen.train import loop
from ftgen.train import metrics

import tiny_finetune  # tests/train/tiny_finetune.py

_STEPS = 6
_SMALL = dict(steps=_STEPS, checkpoint_every=2, log_every=1)


def _preempt_after(monkeypatch, after_step):
  """Makes the next `finetune` receive SIGTERM (a preemption) once it ran
  `after_step` steps."""
  build = loop.build

  def preempting_build(config, workdir):
    setup = build(config, workdir)
    step_fn, ran = setup.train_step, []

    def train_step(*args):
      out = step_fn(*args)
      ran.append(1)
      if len(ran) == after_step:
        os.kill(os.getpid(), signal.SIGTERM)
      return out

    setup.train_step = train_step
    return setup

  monkeypatch.setattr(loop, "build", preempting_build)


@pytest.mark.slow
def test_finetune_in_a_bucket_checkpoints_and_resumes_exactly(
    gcs_bucket, tmp_path, monkeypatch):
  want = loop.finetune(tiny_finetune.config(**_SMALL), tmp_path / "local")
  url = f"{gcs_bucket}/run"
  run = workdir_lib.as_path(url)

  with monkeypatch.context() as m:
    _preempt_after(m, 3)
    first = loop.finetune(tiny_finetune.config(**_SMALL), url)
  assert first["preempted"] and first["steps"] == 3
  assert json.loads((run / "preempted.json").read_text()) == {"step": 3}
  steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps == [2, 3]
  assert (run / ".ftgen").is_file()

  got = loop.finetune(tiny_finetune.config(**_SMALL), url)
  assert got["steps"] == _STEPS
  assert got["params_digest"] == want["params_digest"]
  assert not (run / "preempted.json").exists()
  saved = json.loads((run / "train_summary.json").read_text())
  assert saved["params_digest"] == want["params_digest"]
  # One row per step, as from the uninterrupted run (the resumed run's rows
  # follow the preempted one's), and TensorBoard's events beside them.
  rows = metrics.read_metrics(url)
  assert [r["step"] for r in rows] == list(range(1, _STEPS + 1))
  assert [r["loss"] for r in rows] == pytest.approx(
      [r["loss"] for r in metrics.read_metrics(tmp_path / "local")],
      rel=1e-5)
  assert any(p.name.startswith("events.out.tfevents")
             for p in (run / "tensorboard").iterdir())
