"""Tests for the stage markers that make experiments resumable."""

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

  (out / "stale").mkdir(parents=True)  # A partial directory from a crash.
  assert stages.run("a/b", out, fn)["value"] == 3
  assert not (out / "stale").exists()
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
