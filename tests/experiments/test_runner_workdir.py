"""The experiment runner owns only what it made: one run per workdir, no
input inside a directory it replaces, no write through a symlink
(docs/design.md#reliability). The stage libraries are faked (only the
pretrained condition runs), as in test_runner.py."""

import os
import re
import time

import pytest

from ftgen import configs
from ftgen.data import io as data_io
from ftgen.data import workdir as workdir_lib
from ftgen.experiments import runner


def _config(**overrides):
  c = configs.load("experiment:reversals,tiny")
  c.conditions = ("pretrained",)
  for k, v in overrides.items():
    c[k] = v
  return c


def _fake_evaluation(cfg, workdir):
  _, questions = data_io.load_dataset_dir(cfg.data, need_train=False)
  data_io.write_jsonl(workdir / "results.jsonl", [
      dict(id=q.id, split=q.split, condition=cfg.condition,
           logliks=[0.0] * len(q.choices), pred=0, correct=q.answer == 0,
           context_tokens=10, num_tokens=[3] * len(q.choices))
      for q in questions])
  return {"seconds_scoring": 0.1}


@pytest.fixture(autouse=True)
def _no_real_stages(monkeypatch):
  def fail(*args):
    raise AssertionError(f"unexpected stage call {args}")
  monkeypatch.setattr(runner, "run_evaluation", _fake_evaluation)
  monkeypatch.setattr(runner, "run_augmentation", fail)
  monkeypatch.setattr(runner, "run_finetune", fail)


def test_second_run_on_a_locked_workdir_fails_at_once(tmp_path):
  # Held through another open of the lock file, as another process would
  # (tests/data/test_workdir.py holds it from a subprocess).
  with workdir_lib.locked(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(workdir_lib.WorkdirBusy, match="^" + re.escape(
        f"another run (pid {os.getpid()}) is using {tmp_path}")):
      runner.run_experiment(_config(), tmp_path, log=lambda s: None)
    assert time.perf_counter() - t0 < 1.0
  # Nothing was started: no dataset, no stage.
  assert sorted(os.listdir(tmp_path)) == [workdir_lib.LOCK_FILE]
  # Once the other run is gone, the same command runs.
  runner.run_experiment(_config(), tmp_path, log=lambda s: None)
  assert (tmp_path / "summary.json").is_file()


def test_documents_inside_a_stage_directory_fail_before_any_work(tmp_path):
  # The case: the experiment's documents under its own data stage
  # directory, which a redone data stage replaces.
  docs = tmp_path / "data" / "user" / "docs.jsonl"
  docs.parent.mkdir(parents=True)
  docs.write_text('{"id": "d1", "text": "A wug is a blicket."}\n')
  c = configs.load("experiment:user,tiny")
  c.conditions = ("pretrained",)
  c.data.generator.documents = str(docs)
  with pytest.raises(workdir_lib.WorkdirError, match="^" + re.escape(
      f"config key 'data.generator.documents' = '{docs}' lies inside"
      f" {tmp_path / 'data' / 'user'}")):
    runner.run_experiment(c, tmp_path, log=lambda s: None)
  assert sorted(p.name for p in tmp_path.rglob("*")) == [
      "data", "docs.jsonl", "user"]


def test_user_directory_at_a_stage_path_is_refused_and_kept(tmp_path):
  mine = tmp_path / "eval" / "pretrained" / "seed_0"
  mine.mkdir(parents=True)
  (mine / "notes.txt").write_text("mine")
  with pytest.raises(workdir_lib.WorkdirError, match="^" + re.escape(
      f"{mine} exists and was not made by ftgen")):
    runner.run_experiment(_config(), tmp_path, log=lambda s: None)
  assert os.listdir(mine) == ["notes.txt"]
  assert (mine / "notes.txt").read_text() == "mine"


def test_outputs_replace_symlinks_and_leave_their_targets(tmp_path):
  outside = tmp_path / "outside"
  outside.mkdir()
  (outside / "summary.md").write_text("precious")
  work = tmp_path / "run"
  work.mkdir()
  for name in ("summary.md", "summary.json", "costs.json"):
    (work / name).symlink_to(outside / "summary.md")
  runner.run_experiment(_config(), work, log=lambda s: None)
  for name in ("summary.md", "summary.json", "costs.json"):
    assert not (work / name).is_symlink() and (work / name).stat().st_size
  assert (outside / "summary.md").read_text() == "precious"
  # Every directory the run made carries ftgen's sentinel.
  for d in ("data/reversals", "eval/pretrained/seed_0"):
    assert workdir_lib.made_by_ftgen(work / d), d
