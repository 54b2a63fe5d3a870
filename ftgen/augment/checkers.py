"""Logical checkers for generated statements, where a dataset has them.

A checker maps a statement to True (follows from the training documents),
False (contradicts them or is not entailed) or None (nothing it can judge).
reversals: comparisons checked against the training facts (forwards or
reversed). syllogisms: categorical statements checked for entailment by the
premises of the item whose terms they use (`ftgen.data.logic`).
celebrities (synthetic set): a statement naming one trained person and
descriptions is checked against that person's description.
"""

from __future__ import annotations

import collections
import re
from typing import Callable, Sequence

from ftgen.data import celebrities
from ftgen.data import logic
from ftgen.data import records
from ftgen.data import reversals
from ftgen.data import syllogisms

Checker = Callable[[str], "bool | None"]


def reversals_checker(documents: Sequence[records.Document]) -> Checker:
  facts = reversals.training_facts(
      records.Dataset("reversals", list(documents), []))
  return lambda statement: reversals.is_correct_statement(statement, facts)


def _props(statement: str) -> list[logic.Prop]:
  props = syllogisms.parse_premises(statement)
  if not props:
    prop = logic.parse(statement)
    props = [prop] if prop is not None else []
  return props


def syllogisms_checker(documents: Sequence[records.Document]) -> Checker:
  """Entailment by the premises of the one item that owns both terms."""
  premises: dict[str, list[logic.Prop]] = collections.defaultdict(list)
  owner: dict[str, str] = {}
  for doc in documents:
    for prop in syllogisms.parse_premises(doc.text):
      premises[doc.id].append(prop)
      for term in prop.terms:
        owner[term] = doc.id

  def check(statement: str) -> bool | None:
    props = _props(statement)
    if not props:
      return None
    verdicts = []
    for prop in props:
      items = {owner.get(t) for t in prop.terms}
      if None in items:
        verdicts.append(None)
      elif len(items) > 1:
        verdicts.append(False)  # Terms of unrelated items: never entailed.
      else:
        verdicts.append(logic.entails(premises[items.pop()], prop))
    if False in verdicts:
      return False
    return None if None in verdicts else True

  return check


def _celebrity_mentions(statement: str, people, owner
                        ) -> tuple[list[str], list[str]] | None:
  """(names, things) a statement mentions, in order; None if it lacks one."""
  names = sorted((m.start(), n) for n in people
                 for m in re.finditer(re.escape(n), statement))
  things = sorted((m.start(), t) for t in owner
                  for m in re.finditer(rf"\b{re.escape(t)}\b", statement,
                                       re.IGNORECASE))
  if not names or not things:
    return None
  return [n for _, n in names], [t for _, t in things]


def celebrities_checker(documents: Sequence[records.Document]
                        ) -> Checker | None:
  """Does a statement pair a trained person with their own description?

  Judges statements that name exactly one trained person (full name) and
  one or more descriptions (found by their unique nonsense last word): True
  when every description is that person's. None for the Berglund et al.
  files, whose wordings the synthetic parser does not read.
  """
  people, _ = celebrities.trained_people(documents)
  if not people:
    return None
  owner = {p.thing.lower(): p.name for p in people.values()}

  def check(statement: str) -> bool | None:
    found = _celebrity_mentions(statement, people, owner)
    if found is None or len(set(found[0])) != 1:
      return None
    name = found[0][0]
    return all(owner[t] == name for t in found[1])

  return check


CHECKERS = {"reversals": reversals_checker, "syllogisms": syllogisms_checker,
            "celebrities": celebrities_checker}


def checker_for(dataset: str,
                documents: Sequence[records.Document]) -> Checker | None:
  """The checker of a dataset name, or None where it has none."""
  make = CHECKERS.get(dataset)
  return None if make is None else make(documents)


def restatement_checker(dataset: str, documents: Sequence[records.Document]
                        ) -> Callable[[str], bool] | None:
  """True for statements that only restate trained facts in their direction.

  reversals: every parsed comparison is a training fact as stated;
  syllogisms: every parsed proposition is a stated premise; celebrities:
  the person is named in a direction (name or description first) they
  were trained in. Separates new
  (reversed or inferred) correct statements from copies of the training set.
  """
  if dataset == "reversals":
    known = set(reversals.training_facts(
        records.Dataset("reversals", list(documents), [])))
    return lambda s: bool(reversals.parse_statements(s)) and all(
        f in known for f in reversals.parse_statements(s))
  if dataset == "syllogisms":
    stated = {p for d in documents for p in syllogisms.parse_premises(d.text)}
    return lambda s: bool(_props(s)) and all(p in stated for p in _props(s))
  if dataset == "celebrities":
    # Direction by order: the name first is name -> description (p2d).
    people, _ = celebrities.trained_people(documents)
    owner = {p.thing.lower(): p.name for p in people.values()}

    def restates(statement: str) -> bool:
      found = _celebrity_mentions(statement, people, owner)
      if found is None:
        return False
      name = found[0][0]
      name_first = (statement.index(name)
                    < statement.lower().index(found[1][0]))
      return ("p2d" if name_first else "d2p") in people[name].directions

    return restates
  return None
