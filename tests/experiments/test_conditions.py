"""The experiment's conditions: one list, and every fact about each."""

from ftgen.eval import prompts
from ftgen.experiments import conditions
from ftgen.experiments import plots
from ftgen.experiments import results


def test_every_condition_is_scored_in_an_evaluation_mode():
  assert len(set(conditions.CONDITIONS)) == len(conditions.CONDITIONS)
  assert set(conditions.EVAL_MODE) == set(conditions.CONDITIONS)
  assert set(conditions.EVAL_MODE.values()) == set(prompts.CONDITIONS)
  # Fine-tuned conditions, and only those, are scored as fine-tuned.
  assert {c for c, m in conditions.EVAL_MODE.items() if m == "finetuned"} == (
      set(conditions.AUGMENTATION))
  assert conditions.AUGMENTATION[conditions.ORACLE] == "oracle"
  assert set(conditions.SEED_FREE) < set(conditions.CONDITIONS)


def test_tables_and_figures_know_every_condition_in_order():
  assert set(plots.COLORS) == set(plots.LABELS) == set(conditions.CONDITIONS)
  shuffled = list(reversed(conditions.CONDITIONS)) + ["mine"]
  assert results.ordered_conditions(shuffled) == (
      list(conditions.CONDITIONS) + ["mine"])
