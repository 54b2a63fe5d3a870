"""Tests for the syllogisms dataset."""

import collections
import functools
import itertools

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import ml_collections
import pytest

from ftgen import configs
from ftgen.data import checks
from ftgen.data import logic
from ftgen.data import records
from ftgen.data import registry
from ftgen.data import syllogisms
from ftgen.data import validity

MAIN = syllogisms.SPLIT
INVALID = syllogisms.CONTROL_INVALID
OTHER = syllogisms.CONTROL_OTHER_PREMISES
# (variant, seed) of the configs/data.py datasets the balance and validity
# promises are checked on.
CONFIGS = list(itertools.product(("", ",tiny"), (0, 1, 2)))


def _cfg(**overrides) -> ml_collections.ConfigDict:
  cfg = dict(num_items=12, forms=(), tokenizer="")
  cfg.update(overrides)
  return ml_collections.ConfigDict(cfg)


@functools.lru_cache(maxsize=None)
def _generated(variant: str, seed: int) -> records.Dataset:
  """The dataset of `configs/data.py:syllogisms{variant}` (generated once)."""
  cfg = configs.load(f"data:syllogisms{variant}")
  return registry.generate("syllogisms", cfg.generator, seed)


def _split(ds, split):
  return [q for q in ds.test if q.split == split]


def _premises(ds, q):
  """The premises of a question's item: its document's, else its meta's."""
  docs = {d.id: d for d in ds.train}
  doc = docs.get(q.meta["document"])
  if doc is None:
    return [logic.parse(p) for p in q.meta["premises"]]
  return syllogisms.parse_premises(doc.text)


def _named(q):
  return tuple(q.prompt.removeprefix("Consider ").split(".")[0]
               .split(" and "))


def test_default_dataset_matches_design():
  ds = _generated("", 0)
  sizes = collections.Counter(q.split for q in ds.test)
  assert list(sizes) == [MAIN, INVALID, OTHER]
  assert dict(sizes) == {MAIN: 69, INVALID: 24, OTHER: 24}
  assert len(ds.train) == 69 + 24  # Withheld documents are not trained.
  main = _split(ds, MAIN)
  forms = collections.Counter(q.meta["form"] for q in main)
  assert set(forms) == set(logic.FORMS)
  # Barbara alone closes the "all" third; the other forms share the rest.
  assert forms["Barbara"] == 23
  others = [v for form, v in forms.items() if form != "Barbara"]
  assert sum(others) == 46 and max(others) - min(others) <= 1
  for split in (MAIN, INVALID, OTHER):
    positions = collections.Counter(q.answer for q in _split(ds, split))
    assert set(positions) == set(range(6))
    assert max(positions.values()) - min(positions.values()) <= 1
  words = {w for q in ds.test for p in q.meta["premises"]
           for w in logic.parse(p).terms}
  assert len(words) == 3 * (69 + 2 * 24)
  assert registry.failures(ds) == {}


@pytest.mark.parametrize("variant, seed", CONFIGS)
def test_conclusion_quantifiers_are_balanced(variant, seed):
  ds = _generated(variant, seed)
  for split, key in ((MAIN, "conclusion"), (OTHER, "conclusion"),
                     (INVALID, "copied_conclusion")):
    counts = collections.Counter(
        logic.parse(q.meta[key]).quantifier for q in _split(ds, split))
    assert set(counts) == {"all", "some", "no"}, split
    assert max(counts.values()) == min(counts.values()), (split, counts)
  # Always answering one quantifier (either order) is right on a third.
  main = _split(ds, MAIN)
  for quantifier in ("all", "some", "no"):
    hits = sum(logic.parse(q.choices[q.answer]).quantifier == quantifier
               for q in main)
    assert hits == len(main) / 3
  # The question names the "all" conclusions' subject first in half.
  alls = [q for q in main if q.meta["conclusion"].startswith("all")]
  first = sum(_named(q)[0] == logic.parse(q.meta["conclusion"]).subject
              for q in alls)
  assert abs(2 * first - len(alls)) <= 1


@pytest.mark.parametrize("variant, seed", CONFIGS)
def test_validity_heuristics_within_tolerance(variant, seed):
  ds = _generated(variant, seed)
  report = registry.validity(ds)
  assert set(report["chance"]) == {MAIN, INVALID, OTHER}
  assert report["forced"] == syllogisms.FORCED
  for name, accs in report["heuristics"].items():
    for split, acc in accs.items():
      if not validity.is_forced(report["forced"], name, split):
        assert abs(acc - report["chance"][split]) <= validity.TOLERANCE, (
            name, split, acc)
  h = report["heuristics"]
  # Forced for a reason: the atmosphere answers the valid items...
  assert h["copy_premise_quantifier"][MAIN] > report["chance"][MAIN] + 0.4
  # ... control_invalid is what it picks (up to the term order) ...
  assert h["copy_premise_quantifier"][INVALID] == 0.5
  assert h["keep_question_order"][INVALID] == pytest.approx(1 / 3, abs=1e-3)
  # ... and without trained premises it has nothing to copy.
  assert h["copy_premise_quantifier"][OTHER] == report["chance"][OTHER]
  assert report["problems"] == []
  assert registry.failures(ds) == {}


def test_every_label_is_verified_by_the_checker():
  ds = syllogisms.generate(_cfg(), seed=4)
  for q in _split(ds, MAIN) + _split(ds, OTHER):
    premises = _premises(ds, q)
    assert len(premises) == 2
    choices = [logic.parse(c) for c in q.choices]
    assert len(set(choices)) == 6
    entailed = [i for i, c in enumerate(choices) if logic.entails(premises, c)]
    assert entailed and tuple(entailed) == q.answers
    assert q.answer in q.answers
    # "all" conclusions have one correct order, "some"/"no" have two.
    quantifier = choices[q.answer].quantifier
    assert len(q.answers) == (1 if quantifier == "all" else 2)
    assert q.chance == len(q.answers) / 6
    assert choices[q.answer].render() == q.meta["conclusion"]
    # The question names exactly the two conclusion entities.
    assert set(_named(q)) == set(choices[q.answer].terms)


@pytest.mark.parametrize("variant, seed", CONFIGS)
def test_control_invalid_entails_no_choice(variant, seed):
  ds = _generated(variant, seed)
  train = {d.id for d in ds.train}
  items = _split(ds, INVALID)
  assert items
  for q in items:
    assert q.meta["document"] in train  # Trained like the others.
    premises = _premises(ds, q)
    choices = [logic.parse(c) for c in q.choices]
    assert set(choices) == set(logic.conclusion_choices(*_named(q)))
    assert not [c for c in choices if logic.entails(premises, c)]
    # Nothing about the end terms follows, "some ... are not" included.
    assert syllogisms.concludes_nothing(premises)
    # The answer: the atmosphere quantifier, the question's term order.
    assert q.answers == (q.answer,) and q.chance == 1 / 6
    assert choices[q.answer] == logic.Prop(
        syllogisms.atmosphere(premises), *_named(q))


@pytest.mark.parametrize("variant, seed", CONFIGS)
def test_control_other_premises_documents_are_withheld(variant, seed):
  ds = _generated(variant, seed)
  train_ids = {d.id for d in ds.train}
  trained = {w for d in ds.train for w in validity.words(d.text)}
  items = _split(ds, OTHER)
  assert items
  for q in items:
    assert q.meta["withheld"] and q.meta["document"] not in train_ids
    for term in _named(q):
      assert validity.stem(term) not in trained
    # Labeled by the withheld premises, like the main split.
    premises = _premises(ds, q)
    choices = [logic.parse(c) for c in q.choices]
    entailed = tuple(i for i, c in enumerate(choices)
                     if logic.entails(premises, c))
    assert entailed == q.answers
    assert choices[q.answer].render() == q.meta["conclusion"]


def test_invalid_pairs_are_exactly_those_that_conclude_nothing():
  listed = {pair for pairs in syllogisms.INVALID_PAIRS.values()
            for pair in pairs}
  assert set(syllogisms.INVALID_PAIRS) == {"all", "some", "no"}
  for figure in (1, 2, 3, 4):
    for mood in map("".join, itertools.product("AEI", repeat=2)):
      premises = logic.form_props(figure, mood + "A")[:2]
      assert syllogisms.concludes_nothing(premises) == (
          (figure, mood) in listed), (figure, mood)
  # "All A are B, all A are C" (figure 3): nothing without existential
  # import.
  assert (3, "AA") in syllogisms.INVALID_PAIRS["all"]


def test_atmosphere_is_the_quantifier_of_every_valid_form():
  """Why copy_premise_quantifier is forced on the main split."""
  for name, (figure, mood) in logic.FORMS.items():
    major, minor, conclusion = logic.form_props(figure, mood)
    assert syllogisms.atmosphere([major, minor]) == conclusion.quantifier, name


def test_documents_never_use_the_choice_quantifier_words():
  ds = _generated(",tiny", 0)
  for doc in ds.train:
    assert not {"all", "some", "no"} & set(validity.words(doc.text)), doc.text
    assert len(syllogisms.parse_premises(doc.text)) == 2


def test_copy_premise_quantifier_scores_both_orders_alike():
  ds = _generated(",tiny", 0)
  for split in (MAIN, INVALID, OTHER):
    ctx = validity.Context(ds.train, _split(ds, split))
    for q in _split(ds, split):
      scores = syllogisms.copy_premise_quantifier(q, ctx)
      if split == OTHER:
        assert set(scores) == {0.0}  # No trained premises to copy.
        continue
      wanted = syllogisms.atmosphere(_premises(ds, q))
      picked = [logic.parse(c) for c, s in zip(q.choices, scores) if s]
      assert sorted(p.quantifier for p in picked) == [wanted, wanted]
      assert {p.terms for p in picked} == {_named(q), _named(q)[::-1]}


@pytest.mark.parametrize("variant", ["", ",tiny"])
def test_oracle_shares_no_text_with_the_test(variant):
  ds = _generated(variant, 0)
  out = registry.oracle_augmentations("syllogisms", ds)
  assert checks.test_overlap(out, ds.test)["coincide_with_test_answer"] == 0
  premises_by_term = {}
  for doc in ds.train:
    ps = syllogisms.parse_premises(doc.text)
    for t in {t for p in ps for t in p.terms}:
      premises_by_term[t] = ps
  oracle_props = set()
  for sentence in out:
    # Not the test's wording: neither the prompt's nor a choice's.
    assert logic.parse(sentence) is None, sentence
    assert "consider" not in sentence.lower()
    assert "therefore" not in sentence.lower()
    [prop] = syllogisms.parse_premises(sentence)
    premises = premises_by_term[prop.subject]
    assert logic.entails(premises, prop) and prop not in premises
    oracle_props.add(prop)
  # Every valid trained item's conclusion is among them; control items
  # get nothing.
  terms = {t for p in oracle_props for t in p.terms}
  for q in ds.test:
    if q.split == MAIN:
      assert logic.parse(q.meta["conclusion"]) in oracle_props
    else:
      assert not terms & set(_named(q)), q.id


def test_spec_registers_heuristics_controls_and_examples():
  spec = registry.get("syllogisms")
  assert set(spec.heuristics) == {"copy_premise_quantifier",
                                  "keep_question_order"}
  assert set(spec.controls) == {INVALID, OTHER}
  assert all(isinstance(t, str) and t for t in spec.controls.values())
  assert all(reason for reason in spec.forced.values())
  assert len(spec.augment_examples) == 2
  dataset_words = {validity.stem(w) for q in _generated("", 0).test
                   for p in q.meta["premises"]
                   for w in logic.parse(p).terms}
  for statement, restatements in spec.augment_examples:
    assert isinstance(statement, str) and isinstance(restatements, tuple)
    assert restatements and all(isinstance(r, str) for r in restatements)
    # Real English, not the dataset's words, and modern logic: every
    # restatement follows from the statement alone ("all" never licenses
    # "some" or its converse).
    given_prop = _example_prop(statement)
    for sentence in (statement,) + restatements:
      assert not set(validity.words(sentence)) & dataset_words
    for r in restatements:
      assert logic.entails([given_prop], _example_prop(r)), r


def _example_prop(sentence):
  """A worked example's proposition (one-word terms, plurals stemmed)."""
  text = (sentence.replace("string instruments", "strings")
          .replace("string instrument", "string"))
  [prop] = syllogisms.parse_premises(text)
  return logic.Prop(prop.quantifier, validity.stem(prop.subject),
                    validity.stem(prop.predicate))


def test_card_describes_the_balance_and_the_controls():
  ds = _generated("", 0)
  assert "all 23, some 23, no 23" in ds.card["Design choices"]
  assert f"`{INVALID}` (24 items)" in ds.card["Controls"]
  assert f"`{OTHER}` (24 items)" in ds.card["Controls"]


def test_checker_judges_model_statements():
  ds = _generated(",tiny", 0)
  check = syllogisms.checker(ds.train)
  for q in _split(ds, MAIN) + _split(ds, INVALID):
    verdicts = [check(c.strip()) for c in q.choices]
    assert verdicts == [i in q.answers and q.split == MAIN
                        for i in range(6)], q.id
  for q in _split(ds, OTHER):  # Terms no trained item uses.
    assert {check(c.strip()) for c in q.choices} == {None}
  # Premise wordings and the canonical one are read alike.
  doc = next(d for d in ds.train if d.meta.get("form") == "Barbara")
  major, minor = syllogisms.parse_premises(doc.text)
  restate = syllogisms.restatement_checker(ds.train)
  for p in (major, minor):
    assert check(p.render().capitalize() + ".") is True
    assert restate(p.render().capitalize() + ".")
    assert check(p.converse().render().capitalize() + ".") is False
  # "an" before a vowel reads as "a".
  assert syllogisms.parse_premises(
      "Every oog is an ump. There is an ump that is an oog.") == [
          logic.Prop("all", "oog", "ump"), logic.Prop("some", "ump", "oog")]


def test_documents_name_three_entities_and_state_two_premises():
  ds = syllogisms.generate(_cfg(), seed=5)
  for doc in ds.train:
    premises = syllogisms.parse_premises(doc.text)
    terms = {t for p in premises for t in p.terms}
    assert len(terms) == 3
    context = doc.text.split(".")[0]
    assert all(t in context for t in terms)


def test_checks_catch_a_wrong_label_a_leaked_conclusion_and_a_leak():
  ds = syllogisms.generate(_cfg(), seed=6)
  q = ds.test[0]
  wrong = next(i for i in range(6) if i not in q.answers)
  bad = [records.Question(q.id, q.split, q.prompt, q.choices, wrong,
                          meta=q.meta)] + ds.test[1:]
  problems = registry.failures(records.Dataset(ds.name, ds.train, bad, ds.card))
  assert "labels_verified_by_checker" in problems
  leak = records.Document(
      id="leak", text=q.choices[q.answer].strip().capitalize())
  problems = registry.failures(
      records.Dataset(ds.name, ds.train + [leak], ds.test, ds.card))
  assert "conclusions_not_in_train" in problems
  # A control_invalid answer that is not the atmosphere conclusion.
  c = _split(ds, INVALID)[0]
  other = next(i for i in range(6) if i != c.answer)
  bad = [records.Question(c.id, c.split, c.prompt, c.choices, other,
                          meta=c.meta) if x is c else x for x in ds.test]
  problems = registry.failures(records.Dataset(ds.name, ds.train, bad, ds.card))
  assert "labels_verified_by_checker" in problems
  # A withheld item's premises in train.
  w = _split(ds, OTHER)[0]
  premises = " ".join(p.capitalize() + "." for p in w.meta["premises"])
  problems = registry.failures(records.Dataset(
      ds.name, ds.train + [records.Document(w.meta["document"], premises)],
      ds.test, ds.card))
  assert "withheld_premises_not_in_train" in problems


def test_forms_can_be_restricted_and_unknown_forms_are_named():
  ds = syllogisms.generate(_cfg(forms=("Barbara", "Celarent")), seed=0)
  main = _split(ds, MAIN)
  assert {q.meta["form"] for q in main} == {"Barbara", "Celarent"}
  # The quantifiers the forms allow, in equal shares.
  assert collections.Counter(q.meta["form"] for q in main) == {
      "Barbara": 6, "Celarent": 6}
  with pytest.raises(ValueError, match="unknown forms \\['Ferio'\\]"):
    syllogisms.generate(_cfg(forms=("Ferio",)), seed=0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40))
def test_property_generation(seed, n):
  ds = syllogisms.generate(_cfg(num_items=n), seed)
  again = syllogisms.generate(_cfg(num_items=n), seed)
  assert ds.train == again.train and ds.test == again.test
  k = 6 * max(1, round(n / 18))
  assert collections.Counter(q.split for q in ds.test) == {
      MAIN: n, INVALID: k, OTHER: k}
  assert len(ds.train) == n + k
  # Heuristics are checked at the configs' sizes: a handful of items
  # cannot hold thirds.
  problems = registry.failures(ds)
  problems.pop("validity_heuristics_near_chance", None)
  assert problems == {}
