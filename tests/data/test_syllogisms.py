"""Tests for the syllogisms dataset."""

import collections

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import ml_collections
import pytest

from ftgen.data import logic
from ftgen.data import records
from ftgen.data import registry
from ftgen.data import syllogisms


def _cfg(**overrides) -> ml_collections.ConfigDict:
  cfg = dict(num_items=12, forms=(), tokenizer="")
  cfg.update(overrides)
  return ml_collections.ConfigDict(cfg)


def test_full_size_dataset_matches_design():
  ds = syllogisms.generate(_cfg(num_items=69), seed=0)
  assert len(ds.train) == len(ds.test) == 69
  forms = collections.Counter(q.meta["form"] for q in ds.test)
  assert set(forms) == set(logic.FORMS)
  assert max(forms.values()) - min(forms.values()) <= 1
  positions = collections.Counter(q.answer for q in ds.test)
  assert set(positions) == set(range(6)) and max(positions.values()) <= 12
  words = {w for q in ds.test for p in q.meta["premises"]
           for w in logic.parse(p).terms}
  assert len(words) == 3 * 69
  assert registry.failures(ds) == {}


def test_every_label_is_verified_by_the_checker():
  ds = syllogisms.generate(_cfg(), seed=4)
  docs = {d.id: d for d in ds.train}
  for q in ds.test:
    premises = syllogisms.parse_premises(docs[q.meta["document"]].text)
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
    named = set(q.prompt.removeprefix("Consider ").split(".")[0].split(" and "))
    assert named == set(choices[q.answer].terms)


def test_documents_name_three_entities_and_state_two_premises():
  ds = syllogisms.generate(_cfg(), seed=5)
  for doc in ds.train:
    premises = syllogisms.parse_premises(doc.text)
    terms = {t for p in premises for t in p.terms}
    assert len(terms) == 3
    context = doc.text.split(".")[0]
    assert all(t in context for t in terms)


def test_checks_catch_a_wrong_label_and_a_leaked_conclusion():
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


def test_forms_can_be_restricted_and_unknown_forms_are_named():
  ds = syllogisms.generate(_cfg(forms=("Barbara", "Celarent")), seed=0)
  assert {q.meta["form"] for q in ds.test} == {"Barbara", "Celarent"}
  with pytest.raises(ValueError, match="unknown forms \\['Ferio'\\]"):
    syllogisms.generate(_cfg(forms=("Ferio",)), seed=0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40))
def test_property_generation(seed, n):
  ds = syllogisms.generate(_cfg(num_items=n), seed)
  again = syllogisms.generate(_cfg(num_items=n), seed)
  assert ds.train == again.train and ds.test == again.test
  assert len(ds.train) == len(ds.test) == n
  assert registry.failures(ds) == {}
