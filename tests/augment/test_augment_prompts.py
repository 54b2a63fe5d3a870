"""Augmentation templates: validation and the leakage guard."""

import pytest

from ftgen import configs
from ftgen.data import records
from ftgen.augment import prompts


def _augment_config(arg):
  return configs.load(f"augment:{arg}")


@pytest.mark.parametrize(
    "arg", ["reversals,local", "syllogisms,global,tiny", "user,local"])
def test_default_templates_are_valid(arg):
  config = _augment_config(arg)
  prompts.validate_template(config.template, config.strategy, "config.template")


@pytest.mark.parametrize(
    "arg", ["reversals", "nope,local", "reversals,local,huge"])
def test_bad_config_arg(arg):
  with pytest.raises(ValueError, match="DATASET,STRATEGY|allowed"):
    _augment_config(arg)


@pytest.mark.parametrize("template,strategy,message", [
    ("Rewrite: {sentence}", "local", r"missing field\(s\) \['statement'\]"),
    ("{documents} {statement}", "global", r"missing field\(s\) \['document'\]"),
    ("{statement} {extra}", "local", r"unknown field\(s\) \['extra'\]"),
    ("{statement", "local", "malformed template"),
    ("{statement}", "remote", "unknown augmentation strategy"),
])
def test_template_errors(template, strategy, message):
  with pytest.raises(ValueError, match=message):
    prompts.validate_template(template, strategy, "config.template")


def test_leakage_guard():
  train = [records.Document("d", "Glon are heavier than femp.")]
  q = records.Question("q", "reversal", "Femp are",
                       (" lighter than glon.", " heavier than glon."), 0)
  template = "Documents:\n{documents}\nNow: {document}\n"
  ok = prompts.global_prompt(template, [d.text for d in train], train[0].text)
  prompts.assert_only_training_text(ok, template, train, [q])
  leaked = prompts.global_prompt(
      template, [d.text for d in train] + ["Femp are lighter than glon."],
      train[0].text)
  with pytest.raises(AssertionError, match="test item 'q'"):
    prompts.assert_only_training_text(leaked, template, train, [q])
