"""Dataset directory io: round trip, line-numbered errors, atomic writes."""

import json
import os
import stat

import pytest

from ftgen.data import io
from ftgen.data import records


def _dataset():
  return records.Dataset(
      name="toy",
      train=[records.Document("d0", "Glon are heavier than femp."),
             records.Document("d1", "Trisk are red.", {"source": "x"})],
      test=[records.Question("q0", "reversal", "Femp are",
                             (" lighter", " heavier"), 0),
            records.Question("q1", "syllogism", "Some", (" a", " b", " c"), 1,
                             (1, 2))],
      card={"description": "A toy set."},
  )


def test_round_trip_and_manifest(tmp_path):
  path = io.write_dataset(_dataset(), tmp_path / "toy", seed=3)
  docs, questions = io.load_dataset_dir(path)
  assert [d.id for d in docs] == ["d0", "d1"]
  assert docs[1].meta == {"source": "x"}
  assert questions[1].answers == (1, 2)
  manifest = json.loads((path / "manifest.json").read_text())
  assert manifest["seed"] == 3
  assert manifest["sizes"]["test_splits"] == {"reversal": 1, "syllogism": 1}
  assert manifest["chance"]["syllogism"] == pytest.approx(2 / 3)
  for name, digest in manifest["sha256"].items():
    assert io.sha256_file(path / name) == digest
  assert "Canary" in (path / "README.md").read_text()
  row = json.loads((path / "test.jsonl").read_text().splitlines()[1])
  assert set(row) >= {"id", "split", "prompt", "choices", "answer", "answers"}


def test_same_input_same_bytes(tmp_path):
  a = io.write_dataset(_dataset(), tmp_path / "a", seed=0)
  b = io.write_dataset(_dataset(), tmp_path / "b", seed=0)
  for name in ("train.jsonl", "test.jsonl", "README.md"):
    assert (a / name).read_bytes() == (b / name).read_bytes()


def test_rewrite_replaces_the_old_directory(tmp_path):
  path = io.write_dataset(_dataset(), tmp_path / "toy", seed=0)
  (path / "stale.txt").write_text("from an older run")
  io.write_dataset(_dataset(), tmp_path / "toy", seed=1)
  assert not (path / "stale.txt").exists()
  assert json.loads((path / "manifest.json").read_text())["seed"] == 1
  assert [p.name for p in tmp_path.iterdir()] == ["toy"]


def test_atomic_write_text_and_json_bytes(tmp_path):
  path = tmp_path / "sub" / "a.json"
  obj = {"b": [1, 2.5], "a": "é"}
  io.atomic_write_json(path, obj)
  assert path.read_bytes() == (json.dumps(obj, indent=2) + "\n").encode()
  io.atomic_write_json(path, obj, indent=1, sort_keys=True,
                       ensure_ascii=False)
  assert path.read_text(encoding="utf-8") == (
      json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
  io.atomic_write_text(path, "x\ny\n")
  assert path.read_bytes() == b"x\ny\n"
  assert [p.name for p in path.parent.iterdir()] == ["a.json"]
  # Same permissions as a file written with open().
  plain = tmp_path / "plain"
  plain.write_text("")
  assert path.stat().st_mode == plain.stat().st_mode


def test_atomic_path_failure_keeps_the_old_file(tmp_path):
  path = tmp_path / "f.txt"
  io.atomic_write_text(path, "old")
  with pytest.raises(OSError, match="disk full"):
    with io.atomic_path(path) as tmp:
      tmp.write_text("half")
      raise OSError("disk full")
  assert path.read_text() == "old"
  assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_path_replaces_a_symlink_without_following_it(tmp_path):
  outside = tmp_path / "outside.txt"
  outside.write_text("keep me")
  link = tmp_path / "work" / "out.txt"
  link.parent.mkdir()
  link.symlink_to(outside)
  io.atomic_write_text(link, "new")
  assert outside.read_text() == "keep me"
  assert not link.is_symlink() and link.read_text() == "new"


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
  def boom(*args, **kwargs):
    raise RuntimeError("disk full")

  monkeypatch.setattr(io, "_card", boom)
  with pytest.raises(RuntimeError):
    io.write_dataset(_dataset(), tmp_path / "toy", seed=0)
  assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("line,message", [
    ('{"id": "a"}', r"bad.jsonl:2:1: missing field 'text'"),
    ('{"id": "a", "text": 3}',
     r"bad.jsonl:2:21: field 'text' must be a string"),
    ("{not json", r"bad.jsonl:2:2: not valid JSON"),
    ('{"id": "d0", "text": "again"}',
     r"bad.jsonl:2:8: duplicate id 'd0' \(first on line 1\)"),
    ('{"id": "b", "text": "  "}', r"bad.jsonl:2:21: field 'text' is empty"),
    ('  [1, 2]', r"bad.jsonl:2:3: expected a JSON object, got list"),
    ('{"id": "b", "text": "t", "meta": "x"}',
     r"bad.jsonl:2:34: field 'meta' must be a JSON object, got str"),
    ('{"id": "b", "text": "t", "meta": [["k", 1]]}',
     r"bad.jsonl:2:34: field 'meta' must be a JSON object, got list"),
])
def test_document_errors_name_line_column_and_field(tmp_path, line, message):
  path = tmp_path / "bad.jsonl"
  path.write_text('{"id": "d0", "text": "fine"}\n' + line + "\n")
  with pytest.raises(io.DataError, match=message) as e:
    io.read_documents(path)
  assert "\n" not in str(e.value)


def test_utf8_bom_is_accepted_and_meta_kept(tmp_path):
  path = tmp_path / "bom.jsonl"
  path.write_bytes(b"\xef\xbb\xbf" + json.dumps(
      {"id": "d0", "text": "Glon.", "meta": {"k": 1}, "src": "x"}).encode()
                   + b"\r\n" + b'{"id": "d1", "text": "Femp.", "meta": null}\n')
  docs = io.read_documents(path)
  assert [(d.id, d.text, d.meta) for d in docs] == [
      ("d0", "Glon.", {"k": 1, "src": "x"}), ("d1", "Femp.", {})]
  # Only at the start of the file: elsewhere it is not JSON.
  path.write_bytes(b'{"id": "d0", "text": "a"}\n\xef\xbb\xbf{"id": "d1"}\n')
  with pytest.raises(io.DataError, match=r"bom.jsonl:2:1: not valid JSON"):
    io.read_documents(path)
  # A dataset directory whose test.jsonl is only a BOM has no questions.
  path = io.write_dataset(records.Dataset("toy", _dataset().train, []),
                          tmp_path / "toy", seed=0)
  (path / "test.jsonl").write_bytes(b"\xef\xbb\xbf\n")
  assert io.load_dataset_dir(path, need_questions=False)[1] == []


def test_non_utf8_file_names_file_line_and_column(tmp_path):
  path = tmp_path / "latin1.jsonl"
  path.write_bytes('{"id": "d0", "text": "ok"}\n'.encode()
                   + '{"id": "d1", "text": "caf\u00e9 ✓ d\u00e9j\u00e0"}\n'
                   .encode("utf-8").replace("✓".encode(), b"\xe9"))
  with pytest.raises(io.DataError) as e:
    io.read_documents(path)
  assert str(e.value).startswith(f"{path}:2:28: not valid UTF-8 (byte 0xe9)")
  # The test file of a dataset directory, too (not a bare UnicodeDecodeError).
  dataset = io.write_dataset(_dataset(), tmp_path / "toy", seed=0)
  (dataset / "test.jsonl").write_bytes(b'{"id": "\xff"}\n')
  with pytest.raises(io.DataError, match=r"test.jsonl:1:9: not valid UTF-8"):
    io.load_dataset_dir(dataset, need_questions=False)


@pytest.mark.parametrize("row,message", [
    ({"id": "q", "split": "s", "prompt": "p", "choices": ["a"], "answer": 0},
     "at least 2 strings"),
    ({"id": "q", "split": "s", "prompt": "p", "choices": ["a", "b"],
      "answer": 2},
     "answer 2 is not an index"),
    ({"id": "q", "split": "s", "prompt": "p", "choices": ["a", "b"],
      "answer": True},
     "must be an integer index"),
    ({"id": "q", "split": "s", "choices": ["a", "b"], "answer": 0},
     "missing field 'prompt'"),
    ({"id": "q", "split": "s", "prompt": "p", "choices": ["a", "b"],
      "answer": 0, "meta": 3},
     r"q.jsonl:1:\d+: field 'meta' must be a JSON object, got int"),
])
def test_question_errors(tmp_path, row, message):
  path = tmp_path / "q.jsonl"
  path.write_text(json.dumps(row) + "\n")
  with pytest.raises(io.DataError, match=message):
    io.read_questions(path)


def test_records_check_meta():
  with pytest.raises(ValueError, match="document 'd': meta must be a dict"):
    records.Document("d", "t", ["k"])
  with pytest.raises(ValueError, match="question 'q': meta must be a dict"):
    records.Question("q", "s", "p", ("a", "b"), 0, meta={1: "x"})


def test_empty_files_are_errors(tmp_path):
  (tmp_path / "e.jsonl").write_text("\n")
  with pytest.raises(io.DataError, match="no documents"):
    io.read_documents(tmp_path / "e.jsonl")
  with pytest.raises(io.DataError, match="no questions"):
    io.read_questions(tmp_path / "e.jsonl")
  with pytest.raises(io.DataError, match="file not found"):
    io.read_questions(tmp_path / "missing.jsonl")


def test_load_dataset_dir_questions_optional_only_when_asked(tmp_path):
  with pytest.raises(io.DataError, match="dataset directory not found"):
    io.load_dataset_dir(tmp_path / "none")
  train_only = records.Dataset("toy", _dataset().train, [])
  path = io.write_dataset(train_only, tmp_path / "toy", seed=0)
  assert (path / "test.jsonl").read_text() == ""
  with pytest.raises(io.DataError, match="no questions"):
    io.load_dataset_dir(path)
  docs, questions = io.load_dataset_dir(path, need_questions=False)
  assert [d.id for d in docs] == ["d0", "d1"] and questions == []
  (path / "test.jsonl").unlink()
  assert io.load_dataset_dir(path, need_questions=False)[1] == []
  # A dataset with questions reads them either way.
  full = io.write_dataset(_dataset(), tmp_path / "full", seed=0)
  assert len(io.load_dataset_dir(full, need_questions=False)[1]) == 2
  (full / "train.jsonl").unlink()
  with pytest.raises(io.DataError, match="train.jsonl: file not found"):
    io.load_dataset_dir(full)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_get_umask_modes_not_temp_modes(tmp_path, umask):
  """Files 0666 and directories 0777 minus the umask, though the writer
  created them 0600/0700 (mkdtemp, safetensors' save_file)."""
  old = os.umask(umask)
  try:
    with io.atomic_path(tmp_path / "f.bin") as tmp:
      fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
      os.close(fd)
    with io.atomic_path(tmp_path / "d", directory=True) as tmp:
      (tmp / "sub").mkdir(mode=0o700)
      fd = os.open(tmp / "sub" / "w", os.O_WRONLY | os.O_CREAT, 0o600)
      os.close(fd)
    ds = io.write_dataset(_dataset(), tmp_path / "toy", seed=0)
  finally:
    os.umask(old)
  file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
  assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == file_mode
  for p in (tmp_path / "d", tmp_path / "d" / "sub", ds):
    assert stat.S_IMODE(p.stat().st_mode) == dir_mode, p
  for p in (tmp_path / "d" / "sub" / "w", ds / "train.jsonl"):
    assert stat.S_IMODE(p.stat().st_mode) == file_mode, p
