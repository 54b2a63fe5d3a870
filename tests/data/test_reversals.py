"""Tests for the reversals dataset."""

import collections
import re

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import ml_collections
import pytest

from configs import data as data_configs
from ftgen.data import checks
from ftgen.data import records
from ftgen.data import registry
from ftgen.data import reversals


def _cfg(**overrides) -> ml_collections.ConfigDict:
  cfg = dict(num_facts=12, num_dimensions=28, articles_per_fact=3,
             closing_prob=0.5, splits=("reversal", "rephrase"), tokenizer="")
  cfg.update(overrides)
  return ml_collections.ConfigDict(cfg)


def test_full_size_dataset_matches_design():
  ds = reversals.generate(_cfg(num_facts=100, articles_per_fact=10), seed=0)
  assert len(ds.train) == 1000
  by_split = collections.Counter(q.split for q in ds.test)
  assert by_split == {"reversal": 100, "rephrase": 100}
  facts = reversals.training_facts(ds)
  assert len(facts) == 100
  assert collections.Counter(f.direction for f in facts) == {
      "more": 50, "less": 50}
  dims = collections.Counter(f.dimension for f in facts)
  assert len(dims) == 28 and max(dims.values()) - min(dims.values()) <= 1
  # Each fact's 10 articles use 10 different lead-ins.
  lead_ins = collections.defaultdict(set)
  for d in ds.train:
    lead_ins[d.meta["fact"]].add(d.meta["lead_in"])
  assert all(len(v) == 10 for v in lead_ins.values())
  words = [w for f in facts for w in (f.a, f.b)]
  assert len(set(words)) == 200
  for split in ("reversal", "rephrase"):
    answers = collections.Counter(q.answer for q in ds.test if q.split == split)
    assert answers == {0: 50, 1: 50}
  assert registry.failures(ds) == {}


def test_questions_ask_the_reversal_against_its_contradiction():
  ds = reversals.generate(_cfg(), seed=1)
  for q in ds.test:
    fact = reversals.Fact.from_meta(q.meta)
    right, wrong = q.choices[q.answer], q.choices[1 - q.answer]
    assert len(right) == len(wrong)
    if q.split == "reversal":
      assert q.prompt == f"{fact.b} are"
      assert (q.prompt + right).rstrip(".") == fact.reversed().statement()
    else:
      assert q.prompt == f"Compared with {fact.b}, {fact.a} are"
      assert right.strip(" .") == f"{fact.direction} {fact.dimension}"
    assert {right.split()[0], wrong.split()[0]} == {"more", "less"}


def test_reversal_of_and_is_correct_statement():
  fact = reversals.Fact("femp", "glon", "dangerous", "more")
  assert reversals.reversal_of("femp are more dangerous than glon.") == (
      "glon are less dangerous than femp.")
  assert reversals.reversal_of("Did you know that Femp are less loyal than"
                               " glon?") == "Glon are more loyal than Femp"
  assert reversals.reversal_of("nothing to see here.") is None
  ok = reversals.is_correct_statement
  assert ok("Glon are less dangerous than femp.", [fact]) is True
  assert ok("glon are more dangerous than femp.", [fact]) is False
  assert ok("femp are more dangerous than glon", [fact.to_meta()]) is True
  assert ok("Compared with glon, femp are less dangerous.", [fact]) is False
  assert ok("femp are more loyal than glon.", [fact]) is None
  # The oracle's wording, with either entity as subject.
  assert ok("Of glon and femp, glon are the less dangerous.", [fact]) is True
  assert ok("Of glon and femp, femp are the more dangerous.", [fact]) is True
  assert ok("Of femp and glon, glon are the more dangerous.", [fact]) is False
  assert ok("Of femp and glon, blick are the more dangerous.", [fact]) is None
  assert reversals.parse_statements(
      reversals.of_pair_statement(fact.reversed())) == [fact.reversed()]
  assert ok("no comparison", [fact]) is None
  # One wrong comparison makes the whole text wrong.
  assert ok("glon are less dangerous than femp and femp are less dangerous"
            " than glon.", [fact]) is False


@pytest.mark.parametrize("variant", ["", ",tiny"])
def test_oracle_states_every_reversal_in_no_test_wording(variant):
  cfg = data_configs.get_config(f"reversals{variant}")
  ds = registry.generate("reversals", cfg.generator, cfg.seed)
  facts = reversals.training_facts(ds)
  aug = reversals.oracle_augmentations(ds)
  assert len(aug) == len(facts) == cfg.generator.num_facts
  # Every reversal, and nothing else.
  assert [p for a in aug for p in reversals.parse_statements(a)] == [
      f.reversed() for f in facts]
  check = reversals.checker(ds.train)
  restates = reversals.restatement_checker(ds.train)
  assert all(check(a) is True and not restates(a) for a in aug)
  # No test prompt with its answer, and neither test wording at all.
  assert checks.test_overlap(aug, ds.test)["coincide_with_test_answer"] == 0
  assert not any(reversals._STATEMENT.search(a) or
                 reversals._COMPARED.search(a) for a in aug)
  assert not any(a.lower().startswith("compared") for a in aug)
  assert reversals.dataset_checks(ds)["oracle_writes_no_test_item"] == []


def test_checks_catch_an_oracle_in_test_wording(monkeypatch):
  ds = reversals.generate(_cfg(), seed=2)
  monkeypatch.setattr(
      reversals, "oracle_augmentations",
      lambda d: [f.reversed().statement() + "."
                 for f in reversals.training_facts(d)])
  problems = reversals.dataset_checks(ds)["oracle_writes_no_test_item"]
  assert problems and "12 test items in all" in problems[-1]


def test_checks_catch_a_leaked_reversal_and_bad_labels():
  ds = reversals.generate(_cfg(), seed=3)
  q = next(q for q in ds.test if q.split == "reversal")
  leaked = records.Document(id="leak",
                            text="So " + q.prompt + q.choices[q.answer])
  bad = records.Dataset(ds.name, ds.train + [leaked], ds.test, ds.card)
  problems = registry.failures(bad)
  assert "held_out_not_in_train" in problems
  assert "no_test_answer_in_train" in problems
  flipped = [records.Question(q.id, q.split, q.prompt, q.choices,
                              1 - q.answer, meta=q.meta) for q in ds.test]
  assert "labels_follow_facts" in registry.failures(
      records.Dataset(ds.name, ds.train, flipped, ds.card))


def test_bad_config_values_are_named():
  with pytest.raises(ValueError, match="num_dimensions must be in 1..28"):
    reversals.generate(_cfg(num_dimensions=29), seed=0)
  with pytest.raises(ValueError, match="articles_per_fact"):
    reversals.generate(_cfg(articles_per_fact=40), seed=0)
  with pytest.raises(ValueError, match="unknown split 'forward'"):
    reversals.generate(_cfg(splits=("forward",)), seed=0)
  with pytest.raises(ValueError, match="num_facts must be even"):
    reversals.generate(_cfg(num_facts=13), seed=0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1),
       n=st.integers(1, 20).map(lambda i: 2 * i),  # num_facts is even.
       k=st.integers(1, 16), dims=st.integers(1, 28))
def test_property_generation(seed, n, k, dims):
  cfg = _cfg(num_facts=n, articles_per_fact=k, num_dimensions=dims)
  ds = reversals.generate(cfg, seed)
  assert ds.train == reversals.generate(cfg, seed).train
  assert len(ds.train) == n * k and len(ds.test) == 2 * n
  directions = collections.Counter(
      f.direction for f in reversals.training_facts(ds))
  assert abs(directions["more"] - directions["less"]) <= 1
  assert registry.failures(ds) == {}


FORCED = {"cooccurs_with_query/reversal", "precedes_query/reversal",
          "cooccurs_with_query/rephrase", "follows_query/rephrase",
          "precedes_query/rephrase"}


@pytest.mark.parametrize("variant, seed", [("", 0), (",tiny", 0),
                                           (",tiny", 1), (",tiny", 2)])
def test_validity_every_unforced_heuristic_near_chance(variant, seed):
  cfg = data_configs.get_config(f"reversals{variant}")
  ds = registry.generate("reversals", cfg.generator, seed)
  report = registry.validity(ds)
  assert set(report["forced"]) == FORCED
  assert all(report["forced"].values())  # Each with its reason.
  accs = report["heuristics"]
  assert set(accs) >= {"always_more", "majority_first_word"}
  for name, per_split in accs.items():
    for split, acc in per_split.items():
      if f"{name}/{split}" not in FORCED:
        assert abs(acc - report["chance"][split]) <= 0.1, (name, split, acc)
  # What the forced ones measure: the trained comparative.
  assert accs["cooccurs_with_query"] == {"reversal": 0.0, "rephrase": 1.0}
  # Balanced directions: each split's answers say "more" half the time.
  assert accs["always_more"] == {"reversal": 0.5, "rephrase": 0.5}
  assert report["problems"] == [] and registry.failures(ds) == {}


def test_augment_examples_are_real_comparisons_the_checker_reads():
  examples = registry.get("reversals").augment_examples
  assert examples == reversals.AUGMENT_EXAMPLES and len(examples) == 2
  nonsense = {w for seed in range(3) for w in reversals.vocab.make_words(
      200, seed, name="reversals/entities", tokenizer="")}
  for statement, restatements in examples:
    assert isinstance(restatements, tuple) and len(restatements) >= 2
    check = reversals.checker([records.Document("example", statement)])
    # Its reversal is among the restatements; each one follows.
    assert reversals.reversal_of(statement).lower() in {
        r.lower() for r in restatements}
    for r in restatements:
      assert reversals.parse_statements(r) and check(r) is True, r
      assert "{" not in r + statement and "}" not in r + statement
    words = {w.lower() for text in (statement, *restatements)
             for w in re.findall(r"[A-Za-z]+", text)}
    assert {"more", "less"} & words and not words & nonsense
