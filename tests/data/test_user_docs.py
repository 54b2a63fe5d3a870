"""Tests for user-supplied documents and questions."""

import json
import os
import subprocess
import sys

import pytest

from configs import data as data_configs
from ftgen.data import io
from ftgen.data import lm_eval
from ftgen.data import pipeline
from ftgen.data import registry
from ftgen.data import user_docs


def _write(path, rows):
  path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                          for r in rows))
  return path


def _cfg(documents="", questions=""):
  cfg = data_configs.get_config("user")
  cfg.generator.documents = str(documents)
  cfg.generator.questions = str(questions)
  return cfg


@pytest.fixture
def files(tmp_path):
  docs = _write(tmp_path / "docs.jsonl", [
      {"id": "a", "text": "Femp are larger than glon."},
      {"id": 7, "text": "Glon live in the sea.", "source": "notes"},
  ])
  qs = _write(tmp_path / "qs.jsonl", [
      {"id": "q0", "split": "reversal", "prompt": "Glon are",
       "choices": [" smaller than femp.", " larger than femp."], "answer": 0},
      {"id": "q1", "split": "reversal", "prompt": "Femp are",
       "choices": [" larger than glon.", " smaller than glon."], "answer": 1},
  ])
  return docs, qs


def test_reads_documents_and_questions(files, tmp_path):
  cfg = _cfg(*files)
  ds = registry.generate("user", cfg.generator, cfg.seed)
  assert [d.id for d in ds.train] == ["a", "7"]
  assert ds.train[1].meta == {"source": "notes"}
  assert [q.answer for q in ds.test] == [0, 1]
  assert registry.failures(ds) == {}
  out = pipeline.generate_to_dir(cfg, tmp_path / "out")
  prefix = lm_eval.task_prefix_of(out)
  assert prefix.startswith("ftgen_user_")
  assert (out / "lm_eval" / f"{prefix}_reversal.yaml").is_file()
  again = pipeline.generate_to_dir(cfg, tmp_path / "again")
  for name in ("train.jsonl", "test.jsonl", "manifest.json"):
    assert (out / name).read_bytes() == (again / name).read_bytes()


def test_train_only_without_questions(files, tmp_path):
  cfg = _cfg(files[0])
  out = pipeline.generate_to_dir(cfg, tmp_path)
  assert (out / "test.jsonl").read_text() == ""
  assert len((out / "train.jsonl").read_text().splitlines()) == 2
  assert "train-only" in (out / "README.md").read_text()
  assert not (out / "lm_eval").exists()


def test_documents_required():
  with pytest.raises(ValueError, match="--config.generator.documents=PATH"):
    user_docs.generate(_cfg().generator, 0)


@pytest.mark.parametrize("rows, where", [
    (['{"id": "a", "text": "ok"}', '{"id": "b", "text": '],
     ":2:21: not valid JSON"),
    (['{"id": "a", "text": "ok"}', '{"id": "b"}'],
     ":2:1: missing field 'text'"),
    (['{"id": "a", "text": "ok"}', '{"id": "a", "text": "x"}'],
     ":2:8: duplicate id 'a'"),
])
def test_malformed_documents_name_line_and_field(tmp_path, rows, where):
  bad = _write(tmp_path / "bad.jsonl", rows)
  with pytest.raises(io.DataError) as e:
    user_docs.generate(_cfg(bad).generator, 0)
  assert where in str(e.value) and str(bad) in str(e.value)
  assert "\n" not in str(e.value)


def test_bom_accepted_and_non_utf8_named(tmp_path):
  # Notepad's "UTF-8" writes a BOM and CRLF line ends.
  docs = tmp_path / "notepad.jsonl"
  docs.write_bytes(b"\xef\xbb\xbf" + b'{"id": "a", "text": "Femp swim."}\r\n'
                   + b'{"id": "b", "text": "Glon fly."}\r\n')
  dataset = user_docs.generate(_cfg(docs).generator, 0)
  assert [(d.id, d.text) for d in dataset.train] == [
      ("a", "Femp swim."), ("b", "Glon fly.")]
  latin1 = tmp_path / "latin1.jsonl"
  latin1.write_bytes('{"id": "a", "text": "Caf\u00e9."}\n'.encode("latin-1"))
  with pytest.raises(io.DataError) as e:
    user_docs.generate(_cfg(latin1).generator, 0)
  assert str(e.value).startswith(f"{latin1}:1:25: not valid UTF-8")


def test_malformed_questions_name_line_and_field(files, tmp_path):
  bad = _write(tmp_path / "badq.jsonl", [
      {"id": "q0", "split": "s", "prompt": "p", "choices": ["a", "b"],
       "answer": 5}])
  with pytest.raises(io.DataError, match=r"badq.jsonl:1:\d+: .*answer 5"):
    user_docs.generate(_cfg(files[0], bad).generator, 0)


def test_launcher_bad_input_one_line_and_nothing_left(repo_root, tmp_path):
  bad = _write(tmp_path / "bad.jsonl", ['{"id": "a", "text": "ok"}', "{oops"])
  workdir = tmp_path / "work"
  proc = subprocess.run(
      [sys.executable, "launch/generate_data.py",
       "--config=configs/data.py:user",
       f"--config.generator.documents={bad}", f"--workdir={workdir}"],
      # PYTHONPATH: the launcher must work from a checkout that is not
      # pip-installed, too.
      env=dict(os.environ, PYTHONPATH=str(repo_root)),
      cwd=repo_root, capture_output=True, text=True, timeout=120, check=False)
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  assert (lines[0].startswith("error:") and
          f"{bad}:2:2: not valid JSON" in lines[0])
  assert not (workdir / "user").exists()
  assert not workdir.exists() or not any(workdir.iterdir())
