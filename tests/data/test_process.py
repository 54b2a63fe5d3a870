"""Tests for the process-knowledge dataset and its interpreter."""

import json
import re

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import ml_collections
import pytest

from configs import data as data_configs
from ftgen.data import process
from ftgen.data import registry
from ftgen.data import rng

LANG = process.Language("mond", ("spil", "rorb", "glev"))


def _cfg(**overrides):
  g = ml_collections.ConfigDict(
      data_configs.get_config("process,tiny").generator.to_dict())
  g.update(overrides)
  return g


@pytest.mark.parametrize("expr, expected", [
    ("x", "x"),
    ("3", "4"),
    ("x + 3", "x * 3"),                     # sum: T(a) * b
    ("x * 3", "x + 4"),                     # prod: T(a) + T(b)
    ("spil(2)", "rorb(3)"),                 # func: partner of T(a)
    ("glev(x + 1)", "spil(x * 1)"),         # the cycle wraps around
    ("(x + 2) * 5", "x * 2 + 6"),
    ("1 + 2 + 3", "2 * 2 * 3"),             # left-associative sums
    ("1 + (2 + 3)", "2 * (2 + 3)"),
])
def test_transform_by_hand(expr, expected):
  node = process.parse(expr, LANG)
  assert process.to_str(node, LANG) == expr
  assert process.to_str(process.transform(node, LANG), LANG) == expected


def test_worked_steps_end_at_the_transform_and_parse_back():
  node = process.parse("spil(x + 2) * 3", LANG)
  steps = process.rewrite_steps(node, LANG)
  assert steps[0] == ("T", node)
  assert steps[-1] == process.transform(node, LANG)
  # One rule a step: prod, func, sum, var, const(3); the sum copies its 2.
  assert len(steps) == 6
  for s in steps:
    assert process.parse(process.to_str(s, LANG), LANG) == s


def test_parse_errors_name_the_input():
  with pytest.raises(ValueError, match=re.escape("'x +': unexpected 'end'")):
    process.parse("x +", LANG)
  with pytest.raises(ValueError, match="unexpected 'zzz'"):
    process.parse("zzz(x)", LANG)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 4))
def test_random_expressions_round_trip(seed, internal):
  node = process.random_expression(rng.stream(seed, "t"), LANG, internal)
  assert process.parse(process.to_str(node, LANG), LANG) == node
  out = process.transform(node, LANG)
  assert process.parse(process.to_str(out, LANG), LANG) == out
  assert process.rewrite_steps(node, LANG)[-1] == out
  # Every distractor differs from the answer by one wrong rule.
  for _, wrong in process.distractors(node, LANG):
    assert wrong != out


def test_dataset_splits_checks_and_determinism():
  ds = process.generate(_cfg(), seed=0)
  cfg = _cfg()
  assert len(ds.train) == cfg.num_train + 4  # Worked rewrites + rule docs.
  assert ds.splits == ["seen_combinations", "heldout_combinations"]
  assert all(len(q.choices) == 4 for q in ds.test)
  assert registry.failures(ds) == {}
  held = {tuple(p.split("/")) for q in ds.test
          if q.split == "heldout_combinations" for p in q.meta["combinations"]}
  train_pairs = set()
  for d in ds.train:
    if d.meta["kind"] == "worked":
      train_pairs |= process.combinations(
          process.parse(d.text.splitlines()[0], process._language_of(ds))[1])
  assert held - train_pairs  # Some combinations are new to the test.
  refs = [json.loads(l)
          for l in ds.extra_files["references.jsonl"].splitlines()]
  assert ([r["reference"] for r in refs] ==
          [q.meta["reference"] for q in ds.test])
  again = process.generate(_cfg(), seed=0)
  assert [q.to_json() for q in again.test] == [q.to_json() for q in ds.test]
  assert [d.text for d in again.train] == [d.text for d in ds.train]
  other = process.generate(_cfg(), seed=1)
  assert [d.text for d in other.train] != [d.text for d in ds.train]


def test_checks_catch_a_wrong_label():
  ds = process.generate(_cfg(), seed=0)
  q = ds.test[0]
  bad = process.records.Question(q.id, q.split, q.prompt, q.choices,
                                 (q.answer + 1) % 4, meta=q.meta)
  ds.test[0] = bad
  assert process.dataset_checks(ds)["labels_match_interpreter"]


def test_impossible_sizes_are_a_clear_error():
  with pytest.raises(ValueError, match="distinct expressions"):
    process.generate(_cfg(num_train=500, min_internal=1, max_internal=1),
                     seed=0)
