"""What ftgen owns on disk: sentinels, inputs outside outputs, the workdir
lock, and the atomic writer never writing through a symlink."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from ftgen.data import io
from ftgen.data import workdir


def _escaped(text):
  return "^" + re.escape(text)


def test_make_dir_marks_only_what_it_creates(tmp_path):
  new = workdir.make_dir(tmp_path / "a" / "run", "experiment workdir")
  assert workdir.made_by_ftgen(new)
  info = json.loads((new / workdir.SENTINEL).read_text())
  assert info["made_by"] == "ftgen" and info["what"] == "experiment workdir"
  assert info["created"] and info["pid"] == os.getpid()
  mine = tmp_path / "mine"
  mine.mkdir()
  assert workdir.make_dir(mine, "x") == mine
  assert not workdir.made_by_ftgen(mine)  # Existing: used, not claimed.
  (tmp_path / "file").write_text("x")
  with pytest.raises(workdir.WorkdirError, match="is not a directory"):
    workdir.make_dir(tmp_path / "file", "x")


def test_sentinels_that_count(tmp_path):
  dataset = tmp_path / "dataset"
  dataset.mkdir()
  # A manifest.json of the user's own is no sentinel; ftgen's dataset
  # manifest (generator_version, canary) is.
  (dataset / "manifest.json").write_text('{"files": []}')
  assert not workdir.made_by_ftgen(dataset)
  (dataset / "manifest.json").write_text(
      json.dumps({"generator_version": "1", "canary": io.CANARY}))
  assert workdir.made_by_ftgen(dataset)
  cache_entry = tmp_path / "entry"
  cache_entry.mkdir()
  (cache_entry / workdir.CACHE_MANIFEST).write_text("{}")
  assert workdir.made_by_ftgen(cache_entry)
  # A symlink to an ftgen directory is not ftgen's to remove.
  link = tmp_path / "link"
  link.symlink_to(dataset)
  assert not workdir.made_by_ftgen(link)


def test_remove_dir_refuses_a_user_directory_and_keeps_every_file(tmp_path):
  user = tmp_path / "user"
  user.mkdir()
  for name in ("docs.jsonl", "questions.jsonl", "notes.txt"):
    (user / name).write_text(name)
  with pytest.raises(workdir.WorkdirError, match=_escaped(
      f"{user} exists and was not made by ftgen (no manifest.json or .ftgen);"
      " choose another --workdir or remove it yourself")) as e:
    workdir.remove_dir(user)
  assert "\n" not in str(e.value)
  assert sorted(p.name for p in user.iterdir()) == [
      "docs.jsonl", "notes.txt", "questions.jsonl"]
  ours = workdir.make_dir(tmp_path / "ours", "stage")
  (ours / "partial").write_text("x")
  workdir.remove_dir(ours)
  assert not ours.exists() and sorted(os.listdir(tmp_path)) == ["user"]


def test_atomic_directory_write_refuses_before_the_block_runs(tmp_path):
  user = tmp_path / "out"
  user.mkdir()
  (user / "notes.txt").write_text("mine")
  ran = []
  with pytest.raises(workdir.WorkdirError, match="was not made by ftgen"):
    with io.atomic_path(user, directory=True):
      ran.append(1)
  assert not ran and (user / "notes.txt").read_text() == "mine"
  assert sorted(os.listdir(tmp_path)) == ["out"]  # No temporary left.
  # ftgen's own directory is replaced whole.
  workdir.mark(user, "test")
  with io.atomic_path(user, directory=True) as tmp:
    (tmp / "new.txt").write_text("new")
  assert sorted(os.listdir(user)) == ["new.txt"]


def test_atomic_file_write_replaces_a_symlink_not_its_target(tmp_path):
  outside = tmp_path / "outside" / "file.md"
  outside.parent.mkdir()
  outside.write_text("precious")
  run = tmp_path / "run"
  run.mkdir()
  (run / "summary.md").symlink_to(outside)
  io.atomic_write_text(run / "summary.md", "table")
  assert not (run / "summary.md").is_symlink()
  assert (run / "summary.md").read_text() == "table"
  assert outside.read_text() == "precious"


def test_inputs_inside_an_output_are_refused(tmp_path):
  out = tmp_path / "DIR" / "user"
  out.mkdir(parents=True)
  (out / "docs.jsonl").write_text("{}")
  (tmp_path / "docs.jsonl").write_text("{}")
  config = {"name": "user", "generator": {"documents": str(out / "docs.jsonl"),
                                          "questions": ""}}
  with pytest.raises(workdir.WorkdirError, match=_escaped(
      f"config key 'generator.documents' = '{out / 'docs.jsonl'}' lies inside"
      f" {out}")):
    workdir.check_inputs_outside(config, [out])
  # A scheme prefix counts by its path; a path beside the output is fine.
  with pytest.raises(workdir.WorkdirError, match="'model'"):
    workdir.check_inputs_outside({"model": f"hf:{out}"}, [out])
  workdir.check_inputs_outside(
      {"generator": {"documents": str(tmp_path / "docs.jsonl")}}, [out])


def test_names_are_not_paths_even_in_the_current_directory(tmp_path,
                                                           monkeypatch):
  # `--workdir=.`: "finetune" and "reversals" name ftgen's own outputs there.
  monkeypatch.chdir(tmp_path)
  for name in ("finetune", "reversals"):
    (tmp_path / name).mkdir()
  workdir.check_inputs_outside(
      {"conditions": ["finetune"], "data": {"name": "reversals"}},
      [tmp_path / "finetune", tmp_path / "reversals"])


def test_second_lock_in_this_process_fails_at_once(tmp_path):
  with workdir.locked(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(workdir.WorkdirBusy, match=_escaped(
        f"another run (pid {os.getpid()}) is using {tmp_path}")):
      with workdir.locked(tmp_path):
        pass
    assert time.perf_counter() - t0 < 1.0
  with workdir.locked(tmp_path):  # Released at the end of the block.
    pass
  with workdir.locked(tmp_path), workdir.locked(tmp_path, enabled=False):
    pass  # Processes other than 0 of a multi-host job take no lock.


def test_lock_held_by_another_process_names_its_pid(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c",
       "import sys, time\n"
       "from ftgen.data import workdir\n"
       "with workdir.locked(sys.argv[1]):\n"
       "  print('locked', flush=True)\n"
       "  time.sleep(60)\n", str(tmp_path)],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir.WorkdirBusy, match=_escaped(
        f"another run (pid {holder.pid}) is using {tmp_path}")):
      with workdir.locked(tmp_path):
        pass
  finally:
    holder.kill()
    holder.wait()
  with workdir.locked(tmp_path):  # A killed holder's lock is gone.
    pass


def test_lock_file_symlink_and_read_only_directory(tmp_path):
  (tmp_path / workdir.LOCK_FILE).symlink_to(tmp_path / "elsewhere")
  with pytest.raises(workdir.WorkdirError, match="is a symbolic link"):
    with workdir.locked(tmp_path):
      pass
  assert not (tmp_path / "elsewhere").exists()
  if os.geteuid() == 0:
    return  # root writes anyway.
  ro = tmp_path / "ro"
  ro.mkdir()
  ro.chmod(0o555)
  try:
    with pytest.raises(workdir.WorkdirError, match="cannot be opened"):
      with workdir.locked(ro):
        pass
  finally:
    ro.chmod(0o755)
