"""Every config in configs/ loads, in every variant, and is locked."""

import importlib.util

import pytest


def _load(repo_root, name):
  spec = importlib.util.spec_from_file_location(
      f"configs_{name}", repo_root / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _data_args():
  import pathlib  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(__file__).resolve().parents[2]
  module = _load(root, "data")
  return [f"{n}{v}" for n in module.DATASETS for v in ("", ",tiny")]


@pytest.mark.parametrize("arg", _data_args())
def test_data_configs_load_locked(repo_root, arg):
  config = _load(repo_root, "data").get_config(arg)
  assert config.name == arg.split(",")[0]
  with pytest.raises(AttributeError):
    config.no_such_field = 1  # Locked: typos in overrides fail loudly.


@pytest.mark.parametrize("arg", ["", "nope", "reversals,huge"])
def test_data_config_errors_name_allowed_values(repo_root, arg):
  with pytest.raises(ValueError, match="allowed|needs a dataset name"):
    _load(repo_root, "data").get_config(arg)
