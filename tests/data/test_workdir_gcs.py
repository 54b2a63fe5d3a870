"""The workdir layer on a local directory and on gs:// (a local emulator).

The same calls on both: atomic writes, the sentinel of `make_dir`, the
refusal to replace a directory (prefix) ftgen did not make, a dataset
directory written and read back, and the metrics file of a resumed run.
"""

import json

import pytest

from ftgen.data import io as data_io
from ftgen.data import records
from ftgen.data import workdir as workdir_lib
from ftgen.train import metrics as metrics_lib


@pytest.fixture(params=["local", "gs"])
def root(request, tmp_path):
  if request.param == "local":
    return workdir_lib.as_path(tmp_path)
  return workdir_lib.as_path(request.getfixturevalue("gcs_bucket") + "/run")


def test_as_path_keeps_local_paths_pathlib_and_urls_whole(tmp_path):
  assert type(workdir_lib.as_path(tmp_path)) is type(tmp_path)
  url = workdir_lib.as_path("gs://b/run/x")
  assert str(url) == "gs://b/run/x" and workdir_lib.is_remote(url)
  assert str(url.parent / "y") == "gs://b/run/y"
  assert not workdir_lib.is_remote(tmp_path)


def test_atomic_json_write_replaces_whole(root):
  path = root / "sub" / "a.json"
  data_io.atomic_write_json(path, {"x": 1})
  data_io.atomic_write_json(path, {"x": 2, "y": [1, 2]})
  assert json.loads(path.read_text()) == {"x": 2, "y": [1, 2]}
  # A write that fails leaves the previous version.
  with pytest.raises(RuntimeError):
    with data_io.atomic_path(path) as tmp:
      tmp.write_text("half")
      raise RuntimeError("killed")
  assert json.loads(path.read_text()) == {"x": 2, "y": [1, 2]}
  assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_make_dir_marks_only_what_it_creates(root):
  made = workdir_lib.make_dir(root / "stage", "stage x")
  assert workdir_lib.made_by_ftgen(made)
  assert json.loads((made / ".ftgen").read_text())["what"] == "stage x"
  # A directory holding the user's files is used as it is, not claimed.
  (root / "theirs" / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
  (root / "theirs" / "notes.txt").write_text("mine")
  workdir_lib.make_dir(root / "theirs", "stage y")
  assert not (root / "theirs" / ".ftgen").exists()
  assert not workdir_lib.made_by_ftgen(root / "theirs")


def test_refuses_to_replace_what_ftgen_did_not_make(root):
  (root / "theirs").mkdir(parents=True, exist_ok=True)
  (root / "theirs" / "notes.txt").write_text("mine")
  with pytest.raises(workdir_lib.WorkdirError, match="not made by ftgen"):
    workdir_lib.check_replaceable(root / "theirs")
  with pytest.raises(workdir_lib.WorkdirError, match="not made by ftgen"):
    workdir_lib.remove_dir(root / "theirs")
  with pytest.raises(workdir_lib.WorkdirError, match="not made by ftgen"):
    with data_io.atomic_path(root / "theirs", directory=True):
      pass
  assert (root / "theirs" / "notes.txt").read_text() == "mine"
  (root / "afile").write_text("x")
  with pytest.raises(workdir_lib.WorkdirError, match="not a directory"):
    workdir_lib.check_replaceable(root / "afile")
  # One of ftgen's is removed whole.
  made = workdir_lib.make_dir(root / "ours", "stage")
  (made / "deep" / "f.txt").parent.mkdir(parents=True, exist_ok=True)
  (made / "deep" / "f.txt").write_text("x")
  workdir_lib.remove_dir(made)
  assert not made.exists()


def test_dataset_directory_round_trip_and_replacement(root):
  dataset = records.Dataset(
      "toy", [records.Document("d0", "Ann is tall.")],
      [records.Question("q0", "s", "Ann is", ("tall", "short"), 0)])
  out = data_io.write_dataset(dataset, root / "data" / "toy", seed=0)
  assert workdir_lib.made_by_ftgen(out)
  docs, questions = data_io.load_dataset_dir(out)
  assert [d.text for d in docs] == ["Ann is tall."]
  assert [q.id for q in questions] == ["q0"]
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["sha256"]["train.jsonl"] == data_io.sha256_file(
      out / "train.jsonl")
  # Rewritten whole: an extra file of the old version does not survive.
  (out / "stale.txt").write_text("old")
  data_io.write_dataset(dataset, out, seed=1)
  assert not (out / "stale.txt").exists()
  assert json.loads((out / "manifest.json").read_text())["seed"] == 1


def test_metrics_of_a_resumed_run_read_as_one_run(root):
  workdir = workdir_lib.make_dir(root / "ft", "fine-tuning workdir")
  w = metrics_lib.MetricsWriter(workdir, tensorboard=False)
  for step in (1, 2, 3):
    w.write(step, {"loss": float(step)})
  w.flush()
  assert [r["step"] for r in metrics_lib.read_metrics(workdir)] == [1, 2, 3]
  w.close()
  # Resumed from the checkpoint of step 2: step 3 is recomputed.
  w = metrics_lib.MetricsWriter(workdir, resume_step=2, tensorboard=False)
  w.write(3, {"loss": 3.5})
  w.close()
  rows = metrics_lib.read_metrics(workdir)
  assert [(r["step"], r["loss"]) for r in rows] == [(1, 1.0), (2, 2.0),
                                                     (3, 3.5)]


def test_lock_is_flock_locally_and_absent_on_gcs(root, caplog):
  workdir = workdir_lib.make_dir(root / "w", "experiment workdir")
  with workdir_lib.locked(workdir):
    if workdir_lib.is_remote(workdir):
      assert "no workdir lock" in caplog.text
      with workdir_lib.locked(workdir):
        pass  # Nothing stops a second run there.
    else:
      with pytest.raises(workdir_lib.WorkdirBusy):
        with workdir_lib.locked(workdir):
          pass
