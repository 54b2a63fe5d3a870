"""configs/evaluate.py: every mode and variant loads locked; bad args fail."""

import importlib.util

import pytest

MODES = ("pretrained", "icl", "retrieval", "finetuned")


def _module(repo_root):
  spec = importlib.util.spec_from_file_location(
      "configs_evaluate", repo_root / "configs" / "evaluate.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("arg",
                         [f"{m}{v}" for m in MODES for v in ("", ",tiny")])
def test_evaluate_configs_load_locked(repo_root, arg):
  config = _module(repo_root).get_config(arg)
  assert config.condition == arg.split(",")[0]
  assert config.model == ("tiny" if arg.endswith("tiny") else "smollm2-135m")
  assert bool(config.instruction) == (config.condition in ("icl", "retrieval"))
  with pytest.raises(AttributeError):
    config.no_such_field = 1


@pytest.mark.parametrize("arg", ["", "nope", "icl,huge"])
def test_evaluate_config_errors_name_allowed_values(repo_root, arg):
  with pytest.raises(ValueError, match="allowed|needs a condition"):
    _module(repo_root).get_config(arg)
