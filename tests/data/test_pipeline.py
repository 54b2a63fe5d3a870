"""Generating a dataset directory, and generating it only when absent."""

from ftgen import configs
from ftgen.data import io
from ftgen.data import pipeline


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
  # Without a manifest the directory is incomplete: generated again, with
  # the same bytes.
  (path / "manifest.json").unlink()
  assert pipeline.ensure_dataset(config, tmp_path) == path
  assert not (path / "marker").exists()
  assert (path / "manifest.json").read_bytes() == manifest
