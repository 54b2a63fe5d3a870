"""Tests for the categorical-logic entailment checker."""

import itertools

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from ftgen.data import logic

TERMS = ("a", "b", "c")
props = st.builds(logic.Prop, st.sampled_from(logic.QUANTIFIERS),
                  st.sampled_from(TERMS), st.sampled_from(TERMS))


def _true_in_universe(prop, members):
  """Truth over explicit sets: `members[t]` is the set of elements in t."""
  s, p = members[prop.subject], members[prop.predicate]
  return {"all": s <= p, "some": bool(s & p), "no": not s & p,
          "some_not": bool(s - p)}[prop.quantifier]


def _entails_by_universes(premises, conclusion, max_size=3):
  """Independent method: every membership assignment on <= 3 elements.

  Exact for at most two premises: a countermodel needs one witness per
  'some'/'some_not' premise plus one falsifying the conclusion.
  """
  for size in range(max_size + 1):
    for kinds in itertools.product(range(2 ** len(TERMS)), repeat=size):
      members = {t: {e for e, k in enumerate(kinds) if k >> i & 1}
                 for i, t in enumerate(TERMS)}
      if all(_true_in_universe(p, members) for p in premises) and not (
          _true_in_universe(conclusion, members)):
        return False
  return True


def test_model_count_and_classic_forms():
  assert len(logic.models(3)) == 256
  assert sorted(logic.valid_aei_forms()) == sorted(logic.FORMS.values())
  for name, (figure, mood) in logic.FORMS.items():
    assert logic.is_valid_form(figure, mood), name
  # Forms valid only with existential import are invalid here.
  assert not logic.is_valid_form(3, "AAI")  # Darapti
  assert not logic.is_valid_form(1, "AAI")  # Barbari
  assert logic.is_valid_form(1, "EIO")  # Ferio (a "some not" conclusion)
  assert not logic.is_valid_form(1, "IAI")  # Undistributed middle.


def test_conversions_and_invalid_controls():
  A, S, N = "all", "some", "no"
  p = logic.Prop
  assert logic.entails([p(N, "a", "b")], p(N, "b", "a"))
  assert logic.entails([p(S, "a", "b")], p(S, "b", "a"))
  assert not logic.entails([p(A, "a", "b")], p(A, "b", "a"))
  assert not logic.entails([p(A, "a", "b")], p(S, "a", "b"))
  # "All A are B. All A are C." entails nothing about B and C.
  premises = [p(A, "a", "b"), p(A, "a", "c")]
  assert not [c for c in logic.conclusion_choices("b", "c")
              if logic.entails(premises, c)]
  assert not logic.consistent([p(S, "a", "b"), p(N, "a", "b")])
  assert logic.consistent([p(A, "a", "b"), p(N, "a", "b")])  # a is empty.


def test_parse_and_render_round_trip():
  for q in logic.QUANTIFIERS:
    prop = logic.Prop(q, "glon", "femp")
    assert logic.parse(prop.render() + ".") == prop
    assert logic.parse(" " + prop.render().capitalize()) == prop
  assert logic.parse("every glon is a femp") is None
  assert logic.parse("all glon are not femp") is None


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="unknown quantifier 'most'"):
    logic.Prop("most", "a", "b")
  with pytest.raises(ValueError, match="figure must be"):
    logic.form_props(5, "AAA")
  with pytest.raises(ValueError, match="mood must be"):
    logic.form_props(1, "AXA")
  with pytest.raises(ValueError, match="at most 4"):
    logic.entails([logic.Prop("all", t, u) for t, u in
                   ["ab", "cd"]], logic.Prop("all", "e", "a"))


@settings(max_examples=60, deadline=None)
@given(prop=props)
def test_property_reflexive_and_symmetric(prop):
  assert logic.entails([prop], prop)
  if prop.quantifier in ("some", "no"):
    assert logic.entails([prop], prop.converse())
    assert logic.entails([prop.converse()], prop)


@settings(max_examples=150, deadline=None)
@given(premises=st.lists(props, min_size=0, max_size=2), conclusion=props)
def test_property_agrees_with_explicit_universes(premises, conclusion):
  assert logic.entails(premises, conclusion) == _entails_by_universes(
      premises, conclusion)


@settings(max_examples=60, deadline=None)
@given(premises=st.lists(props, min_size=1, max_size=3), conclusion=props,
       extra=props)
def test_property_monotonic(premises, conclusion, extra):
  # Adding a premise never removes a consequence.
  if logic.entails(premises, conclusion):
    assert logic.entails(premises + [extra], conclusion)


def test_every_figure_and_mood_agrees_with_explicit_universes():
  for figure in (1, 2, 3, 4):
    for mood in itertools.product("AEIO", repeat=3):
      major, minor, conclusion = logic.form_props(figure, "".join(mood),
                                                  s="a", m="b", p="c")
      assert logic.is_valid_form(figure, "".join(mood)) == (
          _entails_by_universes([major, minor], conclusion)), (figure, mood)
