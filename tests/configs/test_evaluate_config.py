"""configs/evaluate.py: every mode and variant is coherent; bad args fail."""

import pytest

from ftgen import configs

MODES = ("pretrained", "icl", "retrieval", "finetuned")


@pytest.mark.parametrize("arg",
                         [f"{m}{v}" for m in MODES for v in ("", ",tiny")])
def test_evaluate_configs_are_coherent(arg):
  config = configs.load(f"evaluate:{arg}")
  assert config.condition == arg.split(",")[0]
  assert config.model == ("tiny" if arg.endswith("tiny") else "smollm2-135m")
  assert bool(config.instruction) == (config.condition in ("icl", "retrieval"))


@pytest.mark.parametrize("arg", ["", "nope", "icl,huge"])
def test_evaluate_config_errors_name_allowed_values(arg):
  with pytest.raises(ValueError, match="allowed|needs a condition"):
    configs.load(f"evaluate:{arg}")
