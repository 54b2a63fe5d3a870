"""Dataset configs: `configs/data.py:NAME` or `configs/data.py:NAME,tiny`.

NAME is one of reversals, syllogisms, semantic, celebrities, process, user.
Every default lives here; `tiny` shrinks sizes for fast tests.
"""

import ml_collections

from ftgen.data import registry

# Dataset names: those of the dataset registry.
DATASETS = registry.DATASETS
VARIANTS = ("tiny",)


def _reversals(tiny: bool) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      num_facts=12 if tiny else 100,
      num_dimensions=28,
      articles_per_fact=3 if tiny else 10,
      # Chance that an article ends with a neutral closing sentence.
      closing_prob=0.5,
      # Test splits: "reversal" (the reversed fact) and "rephrase" (the
      # trained direction, reworded).
      splits=("reversal", "rephrase"),
      # Words are filtered against this tokenizer's single tokens ("" skips
      # that filter, so the tiny variant needs no model files).
      tokenizer="" if tiny else "smollm2-135m",
  ))


def _syllogisms(tiny: bool) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      num_items=12 if tiny else 69,
      # Names from ftgen.data.logic.FORMS; empty means all nine valid forms.
      forms=(),
      tokenizer="" if tiny else "smollm2-135m",
  ))


def _semantic(tiny: bool) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      num_documents=120 if tiny else 2200,
      min_questions_per_split=20 if tiny else 200,
      # Larger splits are sampled down to this many questions.
      max_questions_per_split=20 if tiny else 300,
      num_choices=4,
      # Leaf categories whose only trained fact is their parent.
      num_holdout_categories=3 if tiny else 16,
      tokenizer="" if tiny else "smollm2-135m",
  ))


def _celebrities(tiny: bool) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      # Directory holding the Berglund et al. JSONL files (or a parent up to 3
      # levels above them); "" generates the synthetic equivalent instead.
      source_dir="",
      # Synthetic only: people per group (p2d, d2p, both), as in Berglund.
      num_people=4 if tiny else 30,
      num_choices=4,
      tokenizer="" if tiny else "smollm2-135m",
  ))


def _process(tiny: bool) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      num_train=40 if tiny else 600,
      num_test_per_split=12 if tiny else 100,
      num_choices=4,
      # Composite (parent, child) rule pairs held out of training (of 9).
      num_heldout_pairs=3,
      # Composite nodes per expression.
      min_internal=2,
      max_internal=4,
      # Also train on one document stating each rule in words.
      rule_documents=True,
      tokenizer="" if tiny else "smollm2-135m",
  ))


def _user(tiny: bool) -> ml_collections.ConfigDict:
  del tiny
  return ml_collections.ConfigDict(dict(
      documents="",  # JSONL of {"id", "text"} documents (required).
      questions="",  # Optional JSONL of questions in the test schema.
  ))


_GENERATORS = dict(reversals=_reversals, syllogisms=_syllogisms,
                   semantic=_semantic, celebrities=_celebrities,
                   process=_process, user=_user)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the locked config for `NAME[,tiny]`."""
  if not arg:
    raise ValueError(
        f"configs/data.py needs a dataset name: configs/data.py:NAME with NAME"
        f" in {', '.join(DATASETS)} (optionally ',tiny')"
    )
  name, *variants = [p.strip() for p in arg.split(",")]
  if name not in DATASETS:
    raise ValueError(
        f"unknown dataset {name!r} in configs/data.py:{arg}; allowed:"
        f" {', '.join(DATASETS)}"
    )
  for v in variants:
    if v not in VARIANTS:
      raise ValueError(
          f"unknown variant {v!r} in configs/data.py:{arg}; allowed:"
          f" {', '.join(VARIANTS)}"
      )
  tiny = "tiny" in variants
  config = ml_collections.ConfigDict()
  config.name = name
  config.seed = 0
  config.parquet = False  # Also write train/test as Parquet.
  config.lm_eval = True  # Also write lm-evaluation-harness task YAMLs.
  # Their group name and task-name prefix (lower-case letters, digits, _);
  # "" = ftgen_<name>_<8 hex of the train/test digests> (ftgen/data/lm_eval.py).
  config.task_prefix = ""
  config.generator = _GENERATORS[name](tiny)
  config.lock()
  return config
