"""Categorical propositions and a model-enumerating entailment checker.

A proposition relates two terms: "all S are P", "some S are P", "no S are P"
(and "some S are not P", which the datasets never use but the checker
understands). Semantics are modern (Boolean): no existential import, so
"all S are P" says nothing about whether any S exists, and Darapti-style
forms ("All M are P, all M are S, so some S are P") are invalid.

A model over terms T is the set of non-empty regions of their Venn diagram: a
region is the subset of T its members belong to (2^|T| regions, 2^(2^|T|)
models; 256 for three terms). Truth in a model depends only on which regions
are inhabited, so checking every model decides entailment exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from typing import Iterable, Iterator, Sequence

QUANTIFIERS = ("all", "some", "no", "some_not")
# Traditional mood letters.
LETTERS = {"A": "all", "E": "no", "I": "some", "O": "some_not"}
# Valid forms whose premises and conclusion avoid "some ... are not",
# as (figure, mood). Figures place the middle term M:
#   1: M-P, S-M   2: P-M, S-M   3: M-P, M-S   4: P-M, M-S
# The table only names forms; `is_valid_form` proves each one (and a test
# checks the table is exactly the valid A/E/I forms).
FORMS = {
    "Barbara": (1, "AAA"),
    "Celarent": (1, "EAE"),
    "Darii": (1, "AII"),
    "Cesare": (2, "EAE"),
    "Camestres": (2, "AEE"),
    "Datisi": (3, "AII"),
    "Disamis": (3, "IAI"),
    "Calemes": (4, "AEE"),
    "Dimaris": (4, "IAI"),
}
MAX_TERMS = 4  # 2^16 models; more would be slow and is never needed.


@dataclasses.dataclass(frozen=True, order=True)
class Prop:
  """`quantifier` `subject` are `predicate`."""

  quantifier: str
  subject: str
  predicate: str

  def __post_init__(self):
    if self.quantifier not in QUANTIFIERS:
      raise ValueError(
          f"unknown quantifier {self.quantifier!r}; allowed:"
          f" {', '.join(QUANTIFIERS)}")

  @property
  def terms(self) -> tuple[str, str]:
    return (self.subject, self.predicate)

  def converse(self) -> "Prop":
    return Prop(self.quantifier, self.predicate, self.subject)

  def render(self) -> str:
    """Canonical English: 'all S are P', 'some S are not P', ..."""
    if self.quantifier == "some_not":
      return f"some {self.subject} are not {self.predicate}"
    return f"{self.quantifier} {self.subject} are {self.predicate}"


_CANONICAL = re.compile(
    r"^\s*(all|some|no)\s+([A-Za-z]+)\s+are\s+(not\s+)?([A-Za-z]+)\s*\.?\s*$",
    re.IGNORECASE)


def parse(text: str) -> Prop | None:
  """Parses the canonical wording of `Prop.render` (any case, optional '.')."""
  m = _CANONICAL.match(text)
  if m is None:
    return None
  q, s, neg, p = m.groups()
  q = q.lower()
  if neg:
    if q != "some":
      return None
    q = "some_not"
  return Prop(q, s.lower(), p.lower())


def _terms(props: Iterable[Prop]) -> tuple[str, ...]:
  seen: dict[str, None] = {}
  for prop in props:
    for t in prop.terms:
      seen.setdefault(t, None)
  if len(seen) > MAX_TERMS:
    raise ValueError(
        f"entailment over {len(seen)} terms; at most {MAX_TERMS} supported")
  return tuple(seen)


@functools.lru_cache(maxsize=8)
def models(num_terms: int) -> tuple[frozenset[int], ...]:
  """Every model: a frozenset of inhabited regions (bitmasks over terms)."""
  regions = range(2 ** num_terms)
  return tuple(
      frozenset(r for r in regions if (mask >> r) & 1)
      for mask in range(2 ** len(regions)))


def holds(prop: Prop, model: frozenset[int], terms: Sequence[str]) -> bool:
  """Truth of `prop` in `model` (regions are bitmasks over `terms`)."""
  s = 1 << terms.index(prop.subject)
  p = 1 << terms.index(prop.predicate)
  if prop.quantifier == "all":
    return not any(r & s and not r & p for r in model)
  if prop.quantifier == "some":
    return any(r & s and r & p for r in model)
  if prop.quantifier == "no":
    return not any(r & s and r & p for r in model)
  return any(r & s and not r & p for r in model)  # some_not


def _satisfying(props: Sequence[Prop],
                terms: Sequence[str]) -> Iterator[frozenset[int]]:
  for model in models(len(terms)):
    if all(holds(p, model, terms) for p in props):
      yield model


def entails(premises: Sequence[Prop], conclusion: Prop) -> bool:
  """True when `conclusion` holds in every model of `premises`."""
  terms = _terms([*premises, conclusion])
  return all(holds(conclusion, m, terms) for m in _satisfying(premises, terms))


def consistent(props: Sequence[Prop]) -> bool:
  """True when some model makes every proposition true."""
  terms = _terms(props)
  return next(_satisfying(props, terms), None) is not None


def form_props(figure: int, mood: str, s: str = "S", m: str = "M",
               p: str = "P") -> tuple[Prop, Prop, Prop]:
  """(major premise, minor premise, conclusion) of a figure and mood."""
  if figure not in (1, 2, 3, 4):
    raise ValueError(f"figure must be 1, 2, 3 or 4, got {figure!r}")
  if len(mood) != 3 or any(c not in LETTERS for c in mood.upper()):
    raise ValueError(
        f"mood must be three of the letters {''.join(LETTERS)}, got {mood!r}")
  qa, qb, qc = (LETTERS[c] for c in mood.upper())
  major = Prop(qa, m, p) if figure in (1, 3) else Prop(qa, p, m)
  minor = Prop(qb, s, m) if figure in (1, 2) else Prop(qb, m, s)
  return major, minor, Prop(qc, s, p)


def is_valid_form(figure: int, mood: str) -> bool:
  """Whether the syllogism of this figure and mood is valid (modern logic)."""
  major, minor, conclusion = form_props(figure, mood)
  return entails([major, minor], conclusion)


def conclusion_choices(s: str, p: str) -> tuple[Prop, ...]:
  """The six candidate conclusions: {all, some, no} x both term orders."""
  return tuple(Prop(q, a, b) for q in ("all", "some", "no")
               for a, b in ((s, p), (p, s)))


def valid_aei_forms() -> list[tuple[int, str]]:
  """Every valid (figure, mood) using only all/some/no, by enumeration."""
  return [(fig, "".join(mood)) for fig in (1, 2, 3, 4)
          for mood in itertools.product("AEI", repeat=3)
          if is_valid_form(fig, "".join(mood))]
