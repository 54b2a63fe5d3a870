"""ftgen.configs: the one loader, and every config in configs/ through it."""

import pytest

from ftgen import configs

# Every config file and the arguments of each (the tiny variants included).
_ARGS = {
    "data": [f"{n}{v}" for n in configs.module("data").DATASETS
             for v in ("", ",tiny")],
    "augment": [f"{n},{s}{v}" for n in configs.module("augment").DATASETS
                for s in ("local", "global") for v in ("", ",tiny")],
    "evaluate": [f"{m}{v}" for m in configs.module("evaluate").CONDITIONS
                 for v in ("", ",tiny")],
    "finetune": [f"{n}{v}" for n in configs.module("data").DATASETS
                 for v in ("", ",tiny")],
    "experiment": [f"{n}{v}" for n in configs.module("experiment").DATASETS
                   for v in ("", ",tiny")],
    "export": [f"{f}{v}" for f in configs.module("export").FORMATS
               for v in ("", ",tiny")],
    "tiny_writer": ["", "tiny"],
}


def test_every_config_file_is_covered():
  assert set(configs.available()) == set(_ARGS)


@pytest.mark.parametrize(
    "spec", [f"{name}:{arg}" for name, args in _ARGS.items() for arg in args])
def test_every_config_loads_locked(spec):
  config = configs.load(spec)
  assert config.is_locked
  with pytest.raises(AttributeError):
    config.no_such_field = 1  # Locked: typos in overrides fail loudly.


def test_a_path_loads_the_same_config(repo_root, monkeypatch):
  monkeypatch.chdir(repo_root)
  by_path = configs.load("configs/finetune.py:reversals,tiny")
  assert by_path.to_dict() == configs.load("finetune:reversals,tiny").to_dict()
  assert by_path.model == "tiny"


def test_config_dir_from_argument_and_environment(tmp_path, monkeypatch):
  (tmp_path / "mine.py").write_text(
      "import ml_collections\n\n\n"
      "def get_config(arg=None):\n"
      "  return ml_collections.ConfigDict({'arg': arg})\n")
  assert configs.load("mine:x", tmp_path).arg == "x"
  monkeypatch.setenv(configs.ENV_VAR, str(tmp_path))
  assert configs.load("mine").arg is None
  assert configs.available() == ("mine",)


@pytest.mark.parametrize("spec,match", [
    ("nope:reversals", r"no config 'nope' in .*; available: augment, data,"),
    ("configs/nope.py:x", "no config file configs/nope.py"),
    (":reversals", "empty config name"),
])
def test_unknown_file_is_a_one_line_error(spec, match):
  with pytest.raises(configs.ConfigError, match=match) as e:
    configs.load(spec)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec", ["data", "data:nope", "data:reversals,huge",
                                  "evaluate:nope", "experiment:", "augment:x"])
def test_unknown_name_names_the_allowed_values(spec):
  with pytest.raises(ValueError, match="allowed|needs a|must be") as e:
    configs.load(spec)
  assert "\n" not in str(e.value)


def test_unknown_key_messages():
  config = configs.load("finetune:reversals,tiny")
  assert configs.unknown_key(config, "eval.splits") is None
  assert configs.unknown_key(config, "lora.rank") is None
  assert configs.unknown_key(config, "eval_splits") == (
      "config.eval_splits was renamed: use config.eval.splits")
  assert configs.unknown_key(config, "eval_max_questions") == (
      "config.eval_max_questions was renamed: use"
      " config.eval.max_questions_per_split")
  assert "did you mean config.lora.rank?" in configs.unknown_key(
      config, "lora.rnak")
  exp = configs.load("experiment:reversals,tiny")
  assert configs.unknown_key(exp, "finetune.eval_every") == (
      "config.finetune.eval_every was renamed: use config.finetune.eval.every")
