"""configs/experiment.py: every dataset and variant is coherent."""

import pytest

from ftgen import configs
from ftgen.data import registry
from ftgen.experiments import runner
from ftgen.experiments import stage_configs

_MODULE = configs.module("experiment")


@pytest.mark.parametrize("variant", ["", ",tiny"])
def test_every_dataset_is_coherent(variant):
  for name in _MODULE.DATASETS:
    c = configs.load(f"experiment:{name}{variant}")
    assert c.data.name == name
    # The paper's splitting, per dataset and condition (runner.split_mode).
    assert c.split_mode == "paper"
    assert runner.split_mode(c, "finetune_aug") == registry.get(
        name).split_mode
    assert c.model == ("tiny" if variant else "smollm2-135m")
    # Three seeds by default, so results carry seed-to-seed spread; the
    # tiny plumbing runs one.
    assert tuple(c.seeds) == ((0,) if variant else (0, 1, 2))
    assert c.augment_model == ("tiny-writer" if variant else "")
    assert set(c.conditions) <= set(_MODULE.CONDITIONS)
    # The fields the experiment sets are left empty in the stage configs.
    assert stage_configs.overridden(c) == []
    assert c.finetune.seed is None and c.evaluate.model is None
    assert c.augment_local.strategy is None


def test_embedded_stage_configs_are_the_stage_configs():
  """Besides the experiment-set fields, a stage config keeps its own keys."""
  c = configs.load("experiment:reversals,tiny")
  for stage, spec in (("finetune", "finetune:reversals,tiny"),
                      ("evaluate", "evaluate:icl,tiny"),
                      ("augment_local", "augment:reversals,local,tiny")):
    assert set(c[stage].to_dict()) == set(configs.load(spec).to_dict())


@pytest.mark.parametrize("arg", ["", "nope", "reversals,huge"])
def test_errors_name_allowed_values(arg):
  with pytest.raises(ValueError, match="allowed|needs a dataset name"):
    configs.load(f"experiment:{arg}")
