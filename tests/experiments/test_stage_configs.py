"""Stage configs from the experiment config: experiment-set fields are filled
by the runner, and setting one on the embedded config is an error."""

import pytest

from ftgen import configs
from ftgen.experiments import runner
from ftgen.experiments import stage_configs

_FIELDS = [(stage, field) for stage, fields
           in stage_configs.SET_BY_EXPERIMENT.items() for field in fields]


def _config():
  return configs.load("experiment:reversals,tiny")


def _value_for(config, stage, dotted):
  """A value of the field's own type (what a command line would give)."""
  node, leaf = configs.parent(config[stage], dotted)
  kind = node.get_type(leaf)
  if kind is str:
    return "x"
  if kind is bool:
    return False
  if kind is int:
    return 3
  if kind is float:
    return 0.25
  return configs.load("data:reversals,tiny")


@pytest.mark.parametrize("stage,dotted", _FIELDS)
def test_setting_an_experiment_field_names_the_key_to_use(stage, dotted):
  c = _config()
  node, leaf = configs.parent(c[stage], dotted)
  node[leaf] = _value_for(c, stage, dotted)
  (message,) = stage_configs.overridden(c)
  instead = stage_configs.SET_BY_EXPERIMENT[stage][dotted]
  assert message == (f"config.{stage}.{dotted} is set by the experiment; use"
                     f" {instead}")


def test_finetune_seed_points_at_seeds_before_any_stage(tmp_path, monkeypatch):
  def costly(*args, **kwargs):
    raise AssertionError(f"a stage ran: {args} {kwargs}")
  for name in ("generate_data", "run_augmentation", "run_finetune",
               "run_evaluation"):
    monkeypatch.setattr(runner, name, costly)
  c = _config()
  c.finetune.seed = 3
  c.evaluate.seed = 1
  with pytest.raises(runner.ExperimentConfigError) as e:
    runner.run_experiment(c, tmp_path / "run", log=lambda _: None)
  assert str(e.value) == ("config.finetune.seed is set by the experiment; use"
                          " --config.seeds (and 1 more)")
  assert not (tmp_path / "run").exists()


def test_builders_fill_every_experiment_field():
  c = _config()
  with c.unlocked():
    c.seeds = (4, 5)
    c.steps = 7
    c.max_questions_per_split = 9
    c.question_seed = 2
    c.augment_model = "tiny:gemma3"
  # Steps and split mode are the runner's per condition (runner.plan_steps,
  # runner.split_mode).
  ft = stage_configs.finetune_config(c, seed=5, data_dir="/d",
                                     augmented_path="/a.jsonl", steps=7,
                                     split_mode="independent")
  assert (ft.name, ft.model, ft.seed, ft.steps) == ("reversals", "tiny", 5, 7)
  assert (ft.data.dir, ft.data.augmented_path) == ("/d", "/a.jsonl")
  assert ft.data.source.to_dict() == c.data.to_dict()
  assert ft.data.augmented_ratio == c.augmented_ratio == 0.0
  assert ft.data.split_mode == "independent" and ft.export_hf
  ev = stage_configs.eval_config(c, mode="finetuned", seed=5, data_dir="/d",
                                 checkpoint="/e")
  assert (ev.condition, ev.checkpoint, ev.shuffle_seed, ev.seed) == (
      "finetuned", "/e", 5, 2)
  assert ev.max_questions_per_split == 9
  assert ev.instruction == c.plain_instruction
  icl = stage_configs.eval_config(c, mode="icl", seed=4, data_dir="/d",
                                  checkpoint="")
  assert icl.instruction == c.evaluate.instruction
  aug = stage_configs.augment_config(c, "global", "/d")
  assert (aug.strategy, aug.dataset, aug.seed, aug.data, aug.model) == (
      "global", "reversals", 4, "/d", "tiny:gemma3")
  for built, stage in ((ft, "finetune"), (ev, "evaluate"),
                       (aug, "augment_global")):
    for dotted in stage_configs.SET_BY_EXPERIMENT[stage]:
      node, leaf = configs.parent(built, dotted)
      assert node[leaf] is not None, (stage, dotted)
  # The embedded configs stay empty: each build works on a copy.
  assert stage_configs.overridden(c) == []
