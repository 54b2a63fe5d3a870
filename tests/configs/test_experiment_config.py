"""configs/experiment.py: every dataset and variant loads locked and coherent.
"""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _module():
  spec = importlib.util.spec_from_file_location(
      "configs_experiment", ROOT / "configs" / "experiment.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("variant", ["", ",tiny"])
def test_every_dataset_loads_locked(variant):
  m = _module()
  for name in m.DATASETS:
    c = m.get_config(name + variant)
    assert c.data.name == name and c.finetune.name == name
    assert c.augment_local.strategy == "local"
    assert c.augment_global.strategy == "global"
    assert c.split_mode == m.PAPER_SPLIT_MODE[name]
    assert c.model == ("tiny" if variant else "smollm2-135m")
    assert set(c.conditions) <= set(m.CONDITIONS)
    with pytest.raises(AttributeError):
      c.no_such_field = 1


@pytest.mark.parametrize("arg", ["", "nope", "reversals,huge"])
def test_errors_name_allowed_values(arg):
  with pytest.raises(ValueError, match="allowed|needs a dataset name"):
    _module().get_config(arg)
