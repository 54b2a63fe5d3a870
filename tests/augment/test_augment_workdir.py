"""The augmentation output: a user's directory there, or an input inside it,
is refused before any model is loaded (docs/design.md#reliability)."""

import re

import pytest

from ftgen import configs
from ftgen.augment import run as augment
from ftgen.data import pipeline
from ftgen.data import workdir as workdir_lib


def _setup(tmp_path):
  data = pipeline.ensure_dataset(configs.load("data:reversals,tiny"),
                                 tmp_path / "data")
  config = configs.load("augment:reversals,local")
  config.model = "tiny"
  return data, config


def _no_model(*args, **kwargs):
  raise AssertionError("the model was loaded")


def test_user_directory_as_output_is_refused_and_kept(tmp_path, monkeypatch):
  data, config = _setup(tmp_path)
  monkeypatch.setattr(augment.model_registry, "load_model", _no_model)
  out = tmp_path / "augmented"
  out.mkdir()
  (out / "notes.txt").write_text("mine")
  with pytest.raises(workdir_lib.WorkdirError, match="^" + re.escape(
      f"{out} exists and was not made by ftgen")):
    augment.run(config, data, out)
  assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_input_inside_the_output_is_refused(tmp_path, monkeypatch):
  # The output is ftgen's (an earlier run made it), the input inside it.
  out = workdir_lib.make_dir(tmp_path / "augmented", "augmentation output")
  data, config = _setup(out)
  monkeypatch.setattr(augment.model_registry, "load_model", _no_model)
  with pytest.raises(workdir_lib.WorkdirError, match=re.escape(
      f"config key 'data_dir' = '{data}' lies inside {out}")):
    augment.run(config, data, out)
  assert (data / "train.jsonl").is_file()
