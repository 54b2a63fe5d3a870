"""Reading the synthetic celebrities documents: oracle and checkers.

Part of the celebrities dataset (`ftgen/data/celebrities.py`): who the
training documents state in which direction, the rule-written statements
of the untrained direction (in wordings no test item uses), and the
checkers that judge model-written statements.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterable

from ftgen.data import celebrities
from ftgen.data import records

_NAME_RE = r"(?P<name>[A-Z][a-z]+(?: [A-Z][a-z]+)+)"
_DESC_RE = r"(?P<desc>the [a-z][^.?!:]*?)"


@dataclasses.dataclass(frozen=True)
class TrainedPerson:
  """A person of the synthetic set as the training documents state them."""
  name: str
  description: str  # Lower-case first letter, as inside a sentence.
  directions: frozenset[str]  # Trained directions: "p2d", "d2p" or both.

  @property
  def thing(self) -> str:
    """The description's last word: a nonsense word unique to the person."""
    return self.description.split()[-1]


def _template_regex(template: str) -> re.Pattern[str]:
  pattern = re.escape(template)
  pattern = pattern.replace(re.escape("{name}"), _NAME_RE)
  pattern = pattern.replace(re.escape("{desc}"), _DESC_RE)
  pattern = pattern.replace(re.escape("{Desc}"),
                            _DESC_RE.replace("the", "[Tt]he"))
  return re.compile(pattern + "$")


def trained_people(documents: Iterable[records.Document]
                   ) -> tuple[dict[str, TrainedPerson], int]:
  """People parsed from documents in our synthetic wordings.

  Returns (name -> person, number of documents that matched a template);
  the Berglund et al. files use other wordings and match few or none.
  """
  # Most specific templates first, so "It is a fact that {name} is {desc}."
  # wins over "{name} is {desc}.".
  templates = [(d, t) for d, ts in (("p2d", celebrities._P2D_TRAIN), ("d2p", celebrities._D2P_TRAIN))
               for t in ts]
  templates.sort(key=lambda dt: -len(re.sub(r"\{\w+\}", "", dt[1])))
  compiled = [(d, _template_regex(t)) for d, t in templates]
  seen: dict[str, set[str]] = collections.defaultdict(set)
  desc_of: dict[str, collections.Counter] = collections.defaultdict(
      collections.Counter)
  matched = 0
  for doc in documents:
    for direction, pattern in compiled:
      m = pattern.match(doc.text.strip())
      if m:
        name, desc = m.group("name"), m.group("desc")
        seen[name].add(direction)
        desc_of[name][desc[:1].lower() + desc[1:]] += 1
        matched += 1
        break
  people = {name: TrainedPerson(name, desc_of[name].most_common(1)[0][0],
                                frozenset(seen[name]))
            for name in sorted(seen)}
  return people, matched


# Training wordings per untrained direction in the oracle (the first ones of
# `celebrities._P2D_TRAIN` / `celebrities._D2P_TRAIN`; none is a test wording).
ORACLE_WORDINGS = 3


def statements(person: TrainedPerson, direction: str, n: int) -> list[str]:
  """`person` stated in `direction` with the first `n` training wordings."""
  pool = {"p2d": celebrities._P2D_TRAIN, "d2p": celebrities._D2P_TRAIN}[direction]
  desc = person.description
  return [t.format(name=person.name, desc=desc,
                   Desc=desc[:1].upper() + desc[1:]) for t in pool[:n]]


# --------------------------------------------- oracle and checkers


def oracle_augmentations(dataset: records.Dataset) -> list[str]:
  """For each person trained in one direction, the other direction.

  Raises:
    records.OracleUnavailable: the documents are not the synthetic set.
  """
  people, matched = trained_people(dataset.train)
  if matched < len(dataset.train) // 2:
    raise records.OracleUnavailable(
        f"celebrities: only {matched} of {len(dataset.train)} training"
        " documents match the synthetic templates (the Berglund et al."
        " files use other wordings); the oracle covers the synthetic set only")
  out = []
  for person in people.values():
    for direction in sorted({"p2d", "d2p"} - person.directions):
      # The untrained direction in training wordings of that direction: the
      # test prompts' wordings are held out, so no oracle statement holds a
      # test prompt (`ORACLE_WORDINGS`).
      out.extend(statements(person, direction, ORACLE_WORDINGS))
  return out


def _statement_mentions(statement: str, people, owner
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


def checker(documents: Iterable[records.Document]):
  """Does a statement pair a trained person with their own description?

  Judges statements that name exactly one trained person (full name) and
  one or more descriptions (found by their unique nonsense last word): True
  when every description is that person's. None (no checker) for the
  Berglund et al. files, whose wordings the synthetic parser does not read.
  """
  people, _ = trained_people(documents)
  if not people:
    return None
  owner = {p.thing.lower(): p.name for p in people.values()}

  def check(statement: str) -> bool | None:
    found = _statement_mentions(statement, people, owner)
    if found is None or len(set(found[0])) != 1:
      return None
    name = found[0][0]
    return all(owner[t] == name for t in found[1])

  return check


def restatement_checker(documents: Iterable[records.Document]):
  """True when a statement names a person in a direction they were trained in.

  Direction by order: the name first is name -> description (p2d).
  """
  people, _ = trained_people(documents)
  owner = {p.thing.lower(): p.name for p in people.values()}

  def restates(statement: str) -> bool:
    found = _statement_mentions(statement, people, owner)
    if found is None:
      return False
    name = found[0][0]
    name_first = (statement.index(name)
                  < statement.lower().index(found[1][0]))
    return ("p2d" if name_first else "d2p") in people[name].directions

  return restates
