"""Celebrities questions: wrong choices and balanced 4-way questions.

Part of the celebrities dataset (`ftgen/data/celebrities.py`, which
describes the splits): a name question's wrong names are names that were
completion targets in training, a description question's wrong
descriptions share the answer's template and grammatical form, and each
split's answers take every length rank among their choices about equally
often.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from ftgen.data import records
from ftgen.data import rng

# The group of people each test split asks about.
SPLIT_GROUP = {"p2d_reverse": "p2d", "p2d_forward": "p2d",
                "d2p_forward": "d2p", "d2p_reverse": "d2p"}


def _balanced_positions(n: int, k: int, seed: int, name: str) -> list[int]:
  return rng.shuffled([i % k for i in range(n)], seed, name)


# ------------------------------------------------------------- questions

# Random distractor sets tried per question; the one that keeps the
# answer's length rank most evenly spread over the split is kept.
_LENGTH_TRIES = 32
# Regex of the validity heuristics' words (`ftgen.data.validity`).
WORD_RE = re.compile(r"[A-Za-z]+")


@dataclasses.dataclass(frozen=True)
class Row:
  """One test item before its distractors are drawn.

  Attributes:
    prompt: the question's prompt.
    completion: the correct choice.
    person: whose fact it asks.
    tiers: candidate wrong choices, (completion, person) pairs, best tier
      first; a later tier is used only when the earlier ones hold too few
      other people.
    distinct_first_words: the choices start with different words (names:
      every first name is shared across groups, and a first name among the
      wrong choices as often as among the answers keeps "always answer
      this first name" at chance).
  """
  prompt: str
  completion: str
  person: str
  tiers: tuple[tuple[tuple[str, str], ...], ...]
  distinct_first_words: bool = False


def form_of(completion: str) -> str:
  """The grammatical form of a description completion, by its first word.

  Their files fit each description to each prompt template ("was once the
  composer of ...", "a person who composed ...", "known for composing
  ..."), so one template's completions start in several forms; a distractor
  in another form than the answer is ruled out by grammar alone.
  """
  words = [w.lower().strip("\"'") for w in completion.split()]
  # An adverb ("successfully composed") leaves the form to the next word.
  while len(words) > 1 and words[0].endswith("ly"):
    words = words[1:]
  first = words[0] if words else ""
  if first in ("was", "were", "is", "are"):
    return "copula"
  if first.endswith("ing") and "-" not in first:
    return "gerund"
  if first in ("the", "a", "an") or ("-" in first
                                     and not first.endswith("ed")):
    # Hyphenated modifiers open a noun phrase ("record-breaking diver").
    return "noun phrase"
  return "verb"


class _LengthRanks:
  """How often a split's answer has each length rank among its choices.

  Drawing each question's distractors so that these stay even keeps the
  longest- and shortest-choice heuristics (and any other length rank) at
  chance without making all choices the same length.
  """

  def __init__(self, num_choices: int):
    self.counts = [0.0] * num_choices
    self.n = 0

  @staticmethod
  def vector(correct: str, wrong: list[str]) -> list[float]:
    """Rank weights of the answer (0: longest); ties share their ranks."""
    size = len(correct.strip())
    longer = sum(len(w.strip()) > size for w in wrong)
    equal = sum(len(w.strip()) == size for w in wrong)
    out = [0.0] * (len(wrong) + 1)
    for r in range(longer, longer + equal + 1):
      out[r] = 1 / (equal + 1)
    return out

  def cost(self, vector: list[float]) -> float:
    target = (self.n + 1) / len(self.counts)
    return sum(abs(c + v - target) for c, v in zip(self.counts, vector))

  def add(self, vector: list[float]):
    self.counts = [c + v for c, v in zip(self.counts, vector)]
    self.n += 1


def _first_word(text: str) -> str:
  words = text.split()
  return words[0] if words else ""


def _distractors(row: Row, k: int, gen: np.random.Generator,
                 ranks: _LengthRanks) -> list[str]:
  """`k` wrong choices for `row`, one per other person, from its tiers.

  Within a tier the candidates are grouped (by person, or by first word
  when the row asks for distinct first words) and a set takes at most one
  of a group; of `_LENGTH_TRIES` random sets the one that keeps the
  answer's length rank most even is kept.
  """
  fixed: list[str] = []
  used, seen = {row.person}, {row.completion}
  firsts = {_first_word(row.completion)}
  for tier in row.tiers:
    if len(fixed) == k:
      break
    groups: dict[str, list[tuple[str, str]]] = {}
    for completion, person in tier:
      first = _first_word(completion)
      if (person in used or completion in seen
          or (row.distinct_first_words and first in firsts)):
        continue
      key = first if row.distinct_first_words else person
      if all(p != person for _, p in groups.get(key, ())):
        groups.setdefault(key, []).append((completion, person))
    keys = list(groups)
    need = k - len(fixed)

    def draw(picked_keys):
      return [groups[key][int(gen.integers(len(groups[key])))]
              for key in picked_keys]

    if len(keys) <= need:
      # Too few here: one of each, the rest from the next tier.
      for completion, person in draw(keys):
        fixed.append(completion)
        used.add(person)
        seen.add(completion)
        firsts.add(_first_word(completion))
      continue
    best: tuple[float, list[str]] | None = None
    for _ in range(_LENGTH_TRIES):
      pick = sorted(gen.choice(len(keys), need, replace=False))
      wrong = fixed + [c for c, _ in draw([keys[j] for j in pick])]
      cost = ranks.cost(_LengthRanks.vector(row.completion, wrong))
      if best is None or cost < best[0]:
        best = (cost, wrong)
    assert best is not None
    return best[1]
  return fixed


def make_questions(split: str, rows: list[Row], num_choices: int, seed: int,
               meta: list[dict[str, Any]]) -> list[records.Question]:
  """4-way questions of one split from its rows (`meta`: one per row).

  Wrong choices come from each row's tiers (other people's names or
  descriptions; see `_distractors_card`), drawn from a named stream so that
  the answer's length rank is spread evenly over the split.
  """
  gen = rng.stream(seed, f"celebrities/{split}/distractors")
  positions = _balanced_positions(len(rows), num_choices, seed,
                                  f"celebrities/{split}/positions")
  ranks = _LengthRanks(num_choices)
  out = []
  for i, (row, pos, extra) in enumerate(zip(rows, positions, meta)):
    wrong = _distractors(row, num_choices - 1, gen, ranks)
    if len(wrong) < num_choices - 1:
      raise ValueError(
          f"celebrities split {split!r}: {len(wrong) + 1} people to choose"
          f" from for {row.person!r}, need at least num_choices={num_choices}")
    ranks.add(_LengthRanks.vector(row.completion, wrong))
    choices = wrong[:pos] + [row.completion] + wrong[pos:]
    q_meta = {"person": row.person, "group": SPLIT_GROUP[split], **extra}
    out.append(records.Question(f"celebrities-{split}-{i:04d}", split,
                                row.prompt, tuple(choices), pos, meta=q_meta))
  return out
