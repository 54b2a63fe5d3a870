"""Generating a dataset directory, and generating it only when absent."""

import re

import pytest

from ftgen import configs
from ftgen.data import io
from ftgen.data import pipeline
from ftgen.data import workdir


def test_ensure_dataset_generates_once_and_keeps_a_complete_directory(
    tmp_path, capsys):
  config = configs.load("data:reversals,tiny")
  path = pipeline.ensure_dataset(config, tmp_path)
  assert path == tmp_path / "reversals"
  assert "wrote" in capsys.readouterr().out
  manifest = (path / "manifest.json").read_bytes()
  docs, questions = io.load_dataset_dir(path)
  assert docs and questions
  # Present: returned as it is, not regenerated.
  (path / "marker").write_text("kept")
  assert pipeline.ensure_dataset(config, tmp_path) == path
  assert capsys.readouterr().out == ""
  assert (path / "marker").read_text() == "kept"
  # Generated again on request: ftgen's own directory (its manifest) is
  # replaced whole, with the same bytes.
  assert pipeline.generate_to_dir(config, tmp_path) == path
  assert not (path / "marker").exists()
  assert (path / "manifest.json").read_bytes() == manifest
  # Without a manifest the directory is not ftgen's (writes are atomic, so
  # ftgen never leaves one): refused, and nothing in it is touched.
  (path / "manifest.json").unlink()
  (path / "marker").write_text("kept")
  with pytest.raises(workdir.WorkdirError, match="^" + re.escape(
      f"{path} exists and was not made by ftgen")):
    pipeline.ensure_dataset(config, tmp_path)
  assert (path / "marker").read_text() == "kept"
  assert (path / "train.jsonl").is_file()


def test_input_inside_the_output_fails_before_generating(tmp_path):
  docs = tmp_path / "docs.jsonl"
  docs.write_text('{"id": "d1", "text": "A wug is a blicket."}\n')
  config = configs.load("data:user")
  config.generator.documents = str(docs)
  out = pipeline.generate_to_dir(config, tmp_path / "DIR")
  # The input moved into ftgen's own output directory: regenerating would
  # replace it.
  inside = out / "my_docs.jsonl"
  inside.write_text(docs.read_text())
  config.generator.documents = str(inside)
  with pytest.raises(workdir.WorkdirError, match=re.escape(
      f"config key 'generator.documents' = '{inside}' lies inside {out}")):
    pipeline.generate_to_dir(config, tmp_path / "DIR")
  assert inside.read_text() == docs.read_text()
