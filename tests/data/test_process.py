"""Tests for the process-knowledge dataset and its interpreter."""

import functools
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


@functools.lru_cache(maxsize=None)
def _generated(variant, seed):
  """The dataset of `configs/data.py:process{variant}` (generated once)."""
  cfg = data_configs.get_config(f"process{variant}")
  return registry.generate("process", cfg.generator, seed)


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
          process.parse(d.text.splitlines()[0], process._language_of(ds))[1],
          process._language_of(ds))
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


@pytest.mark.parametrize("expr, pairs", [
    ("spil(x) + 3", {("sum", "func"), ("func", "var")}),
    # The sum rule copies its right operand: nothing is applied under it.
    ("3 + spil(x)", {("sum", "const")}),
    ("spil(x + 2) * 3", {("prod", "func"), ("func", "sum"), ("sum", "var"),
                         ("prod", "const")}),
    ("x + (2 * spil(x))", {("sum", "var")}),
])
def test_combinations_are_those_the_derivation_applies(expr, pairs):
  assert process.combinations(process.parse(expr, LANG), LANG) == pairs


def _applied_by_marking(node):
  """The applied pairs found another way: a node is transformed exactly
  when a marker rule put there shows up in the output."""
  marker = ("n", -1)

  def contains(tree):
    return tree == marker or any(
        isinstance(c, tuple) and contains(c) for c in tree)

  out = set()
  parents = dict(process.nodes(node))
  for path, n in process.nodes(node):
    if path and contains(process.transform(
        node, LANG, (path, lambda *_: marker))):
      out.add((process.kind(parents[path[:-1]]), process.kind(n)))
  return out


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 5))
def test_combinations_match_the_transform(seed, internal):
  node = process.random_expression(rng.stream(seed, "c"), LANG, internal)
  assert process.combinations(node, LANG) == _applied_by_marking(node)


@pytest.mark.parametrize("variant, seed", [("", 0), (",tiny", 0),
                                           (",tiny", 1), (",tiny", 2)])
def test_heldout_items_apply_a_heldout_combination(variant, seed):
  ds = _generated(variant, seed)
  cfg = data_configs.get_config(f"process{variant}").generator
  held = set(process.heldout_pairs(seed, cfg.num_heldout_pairs))
  lang = process._language_of(ds)
  for q in ds.test:
    node = process.parse(q.meta["expression"], lang)
    applied = process.combinations(node, lang) & held
    assert {tuple(p.split("/")) for p in q.meta["combinations"]} == (
        process.combinations(node, lang))
    if q.split == "heldout_combinations":
      assert applied, q.id
    else:
      assert not applied, q.id
  for d in ds.train:
    if d.meta["kind"] == "worked":
      node = process.parse(d.text.splitlines()[0], lang)[1]
      assert not process.combinations(node, lang) & held, d.id
  assert registry.failures(ds) == {}


def test_a_heldout_pair_under_a_copied_operand_is_caught():
  ds = process.generate(_cfg(), seed=0)
  lang = process._language_of(ds)
  q = next(q for q in ds.test if q.split == "heldout_combinations")
  # The same expression as the right operand of a sum is copied, never
  # transformed: the item applies only trained combinations.
  node = ("+", ("x",), process.parse(q.meta["expression"], lang))
  prompt = f"{lang.op}({process.to_str(node, lang)}) =>"
  answer = " " + process.to_str(process.transform(node, lang), lang)
  wrong = [" " + process.to_str(w, lang)
           for _, w in process.distractors(node, lang)[:3]]
  ds.test[ds.test.index(q)] = process.records.Question(
      q.id, q.split, prompt, (answer, *wrong), 0,
      meta=dict(q.meta, reference=answer.strip()))
  assert process.dataset_checks(ds)["heldout_combinations_absent_from_train"]


@pytest.mark.parametrize("variant, seed", [("", 0), (",tiny", 0),
                                           (",tiny", 1), (",tiny", 2)])
def test_no_heuristic_beats_chance(variant, seed):
  """Distractors are chosen so that no surface feature points to the
  answer; process lists nothing as forced."""
  report = registry.validity(_generated(variant, seed))
  assert set(process.HEURISTICS) <= set(report["heuristics"])
  assert "most_rewritten" in report["heuristics"]
  assert report["forced"] == {} and report["problems"] == []
  for name, accs in report["heuristics"].items():
    for split, acc in accs.items():
      assert abs(acc - report["chance"][split]) <= 0.1, (name, split, acc)


def test_heuristics_would_catch_unbalanced_distractors():
  """The always-more guess and its relatives score as described on
  questions built for them."""
  q = process.records.Question(
      "q", "seen_combinations", "mond(3 + x) =>",
      (" 4 * x", " 3 * x", " 0 * x + x * x + spil(2)", " 4 * x * x"), 0)
  assert process.most_rewritten(q, None).index(
      max(process.most_rewritten(q, None))) == 2
  assert process.least_rewritten(q, None).index(
      max(process.least_rewritten(q, None))) == 1
  close = process.closest_to_others(q, None)
  assert close.index(max(close)) == 0
