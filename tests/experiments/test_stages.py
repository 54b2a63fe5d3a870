"""Tests for the stage markers that make experiments resumable."""

import re

import pytest

from ftgen.data import workdir
from ftgen.experiments import stages as stages_lib


def test_done_stage_is_skipped_and_partial_output_redone(tmp_path):
  logs = []
  stages = stages_lib.Stages(tmp_path, logs.append)
  out = tmp_path / "work"
  calls = []

  def fn():
    calls.append(1)
    out.mkdir(exist_ok=True)
    (out / "result.txt").write_text("ok")
    return {"value": 3}

  # A partial directory from a crash (made by a stage: with its sentinel).
  workdir.make_dir(out, "stage a/b")
  (out / "stale").mkdir()
  assert stages.run("a/b", out, fn)["value"] == 3
  assert not (out / "stale").exists()
  assert workdir.made_by_ftgen(out)
  again = stages_lib.Stages(tmp_path, logs.append)
  assert again.run("a/b", out, fn)["value"] == 3
  assert len(calls) == 1 and again.skipped == ["a/b"]
  assert set(again.all()) == {"a/b"} and again.all()["a/b"]["wall_s"] >= 0


def test_damaged_marker_means_not_done(tmp_path):
  logs = []
  stages = stages_lib.Stages(tmp_path, logs.append)
  stages.run("data", None, lambda: {"n": 1})
  marker = tmp_path / "stages" / "data.json"
  marker.write_text('{"n": 1, "wall')  # Truncated by hand.
  assert stages.info("data") is None
  assert any("unreadable stage marker" in line for line in logs)
  assert stages.run("data", None, lambda: {"n": 2})["n"] == 2
  marker.write_text("[1, 2]")  # Valid JSON, not a marker.
  assert stages.all() == {}


def test_stage_directory_not_made_by_ftgen_is_refused_and_kept(tmp_path):
  stages = stages_lib.Stages(tmp_path, lambda s: None)
  out = tmp_path / "eval" / "icl"
  out.mkdir(parents=True)
  (out / "notes.txt").write_text("mine")  # The user's, no sentinel.
  calls = []
  with pytest.raises(workdir.WorkdirError, match="^" + re.escape(
      f"{out} exists and was not made by ftgen")):
    stages.run("eval/icl", out, lambda: calls.append(1))
  assert not calls and (out / "notes.txt").read_text() == "mine"
  # A symlink there is refused too; its target is left alone.
  target = tmp_path / "elsewhere"
  target.mkdir()
  (target / "keep.txt").write_text("keep")
  link = tmp_path / "augment"
  link.symlink_to(target)
  with pytest.raises(workdir.WorkdirError, match="is a symbolic link"):
    stages.run("augment", link, lambda: calls.append(1))
  assert not calls and (target / "keep.txt").read_text() == "keep"


def test_new_stage_directory_carries_the_sentinel(tmp_path):
  stages = stages_lib.Stages(tmp_path, lambda s: None)
  out = tmp_path / "augment" / "oracle"
  seen = []
  stages.run("augment/oracle", out,
             lambda: seen.append(workdir.made_by_ftgen(out)))
  assert seen == [True]
