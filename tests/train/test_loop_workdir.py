"""The fine-tuning workdir: one run at a time, no input inside the export it
replaces, no write through a symlink (docs/design.md#reliability)."""

import os
import re
import time

import pytest

from ftgen.data import workdir as workdir_lib
from ftgen.train import loop
from ftgen.train import metrics

import tiny_finetune  # tests/train/tiny_finetune.py


_tiny = tiny_finetune.config


def test_second_run_on_a_locked_workdir_fails_at_once(tmp_path):
  run = workdir_lib.make_dir(tmp_path / "run", "test")
  with workdir_lib.locked(run):
    t0 = time.perf_counter()
    with pytest.raises(workdir_lib.WorkdirBusy, match="^" + re.escape(
        f"another run (pid {os.getpid()}) is using {run}")):
      loop.finetune(_tiny(steps=2), run)
    assert time.perf_counter() - t0 < 1.0
  assert sorted(os.listdir(run)) == [workdir_lib.SENTINEL,
                                     workdir_lib.LOCK_FILE]


def test_data_inside_the_export_fails_before_any_work(tmp_path):
  data = tmp_path / "run" / "export" / "mine"
  data.mkdir(parents=True)
  (data / "train.jsonl").write_text('{"id": "a", "text": "A wug."}\n')
  config = _tiny(steps=2)
  config.data.dir = str(data)
  with pytest.raises(workdir_lib.WorkdirError, match=re.escape(
      f"config key 'data.dir' = '{data}' lies inside {tmp_path / 'run'}"
      "/export")):
    loop.finetune(config, tmp_path / "run")
  assert sorted(p.name for p in (tmp_path / "run").rglob("*")) == [
      "export", "mine", "train.jsonl"]


def test_metrics_file_symlink_is_replaced_not_written_through(tmp_path):
  outside = tmp_path / "outside.jsonl"
  outside.write_text('{"step": 1, "loss": 9.0}\n')
  run = tmp_path / "run"
  run.mkdir()
  (run / "metrics.jsonl").symlink_to(outside)
  writer = metrics.MetricsWriter(run, resume_step=5, tensorboard=False)
  writer.write(6, {"loss": 1.0})
  writer.close()
  assert not (run / "metrics.jsonl").is_symlink()
  assert [r["step"] for r in metrics.read_metrics(run)] == [6]
  assert outside.read_text() == '{"step": 1, "loss": 9.0}\n'


def test_an_invalid_evaluation_logs_null_not_a_string(tmp_path):
  # An invalid in-training evaluation has no accuracy: JSON null, never the
  # string "None" that a plot or pandas would carry on as a category.
  writer = metrics.MetricsWriter(tmp_path, resume_step=0, tensorboard=False)
  writer.write(3, {"eval/reversal/acc": None, "loss": 1.5})
  writer.close()
  assert metrics.read_metrics(tmp_path) == [
      {"step": 3, "eval/reversal/acc": None, "loss": 1.5}]


@pytest.mark.slow  # Two tiny fine-tunings: ~15 s on 2 cores.
def test_export_is_replaced_whole_with_the_sentinel(tmp_path):
  run = tmp_path / "run"
  loop.finetune(_tiny(steps=2, export_hf=True), run)
  export = run / "export"
  assert workdir_lib.made_by_ftgen(export)
  assert (export / "model.safetensors").is_file()
  # A symlink left inside the export points out of the workdir: the rerun
  # (it resumes at the last step and exports again) never writes through it.
  outside = tmp_path / "outside.json"
  outside.write_text("precious")
  (export / "config.json").unlink()
  (export / "config.json").symlink_to(outside)
  loop.finetune(_tiny(steps=2, export_hf=True), run)
  assert not (export / "config.json").is_symlink()
  assert outside.read_text() == "precious"
  assert workdir_lib.made_by_ftgen(export)
