"""Shortcut heuristics: what a test split scores without any reasoning.

A dataset measures generalization only if no cheap rule answers its
questions. For every test split the generator computes the accuracy of the
no-reasoning heuristics a skeptic would try and records them in the dataset's
manifest (`validity`) and card; `registry.run_checks` fails a dataset whose
heuristic sits more than `TOLERANCE` from chance, unless the dataset's spec
lists that heuristic (on that split) as forced by the task, with the reason.
A forced heuristic is reported as a baseline row in every results table
(`ftgen/experiments/results.py`).

A heuristic scores every choice of a question from the question and the
training documents; it picks the best-scored choice, and ties are broken
uniformly at random, so its accuracy is the expected share of correct picks
(a heuristic that cannot tell the choices apart scores chance exactly).

The generic heuristics (any dataset):

* `longest_choice`, `shortest_choice`: by characters;
* `majority_first_word`: always the same answer word: the choice starting
  with the word that starts the split's correct answers most often (the
  quantifier of a syllogism, "more"/"less" of a comparison, a property's
  value); the skeptic's best fixed answer, so chosen with the split's
  answers;
* `cooccurs_with_query`: the choice whose words share the most training
  documents with the question's queried words;
* `follows_query`: the choice whose first word follows a queried word in the
  most training documents (and `precedes_query`, the opposite order).

Queried words are the question's rare words: words of its prompt that occur
in at least one and at most `max(3, 10%)` of the training documents; a
dataset may name them from its question metadata instead
(`DatasetSpec.query_words`). Words are compared by `stem`: lower-cased with
a final "s" removed (nonsense plurals: "blasps" ~ "blasp").
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Any, Callable, Mapping, Sequence

from ftgen.data import records

# Allowed distance of a heuristic's accuracy from chance on a split.
TOLERANCE = 0.1

_WORD = re.compile(r"[A-Za-z]+")


def stem(word: str) -> str:
  """Lower case without a final "s" (a crude plural rule, enough for
  nonsense words); 3 letters or fewer, and "ss" endings ("less"), are kept
  whole, so stemming a stem changes nothing."""
  w = word.lower()
  if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
    w = w[:-1]
  return w


def words(text: str) -> list[str]:
  return [stem(w) for w in _WORD.findall(text)]


@dataclasses.dataclass
class Context:
  """What heuristics may look at: the training documents and the split."""

  documents: Sequence[records.Document]
  split: Sequence[records.Question]
  query_words: Callable[[records.Question], Sequence[str]] | None = None

  def __post_init__(self):
    # Per document: word -> (first, last) position; postings: word -> docs.
    self.spans: list[dict[str, tuple[int, int]]] = []
    self.postings: dict[str, set[int]] = collections.defaultdict(set)
    for i, d in enumerate(self.documents):
      span: dict[str, tuple[int, int]] = {}
      for j, w in enumerate(words(d.text)):
        span[w] = (span[w][0], j) if w in span else (j, j)
        self.postings[w].add(i)
      self.spans.append(span)
    self.max_df = max(3, len(self.documents) // 10)
    # The most frequent first word of the split's correct answers (ties:
    # the alphabetically first, so the rule is one fixed word).
    counts = collections.Counter(
        _first(q.choices[a]) for q in self.split for a in q.answers)
    self.majority_word = min(counts, key=lambda w: (-counts[w], w),
                             default="")

  def queried(self, q: records.Question) -> list[str]:
    """The question's queried words (stems)."""
    if self.query_words is not None:
      return [stem(w) for w in self.query_words(q)]
    out = []
    for w in words(q.prompt):
      if 1 <= len(self.postings.get(w, ())) <= self.max_df and w not in out:
        out.append(w)
    return out

  def key_words(self, q: records.Question, choice: str) -> list[str]:
    """The choice's words that are not in the prompt."""
    prompt = set(words(q.prompt))
    return [w for w in words(choice) if w not in prompt]


def _first(text: str) -> str:
  ws = words(text)
  return ws[0] if ws else ""


Heuristic = Callable[[records.Question, Context], Sequence[float]]


def longest_choice(q, ctx):
  del ctx
  return [len(c.strip()) for c in q.choices]


def shortest_choice(q, ctx):
  del ctx
  return [-len(c.strip()) for c in q.choices]


def majority_first_word(q, ctx):
  return [float(_first(c) == ctx.majority_word) for c in q.choices]


def cooccurs_with_query(q, ctx):
  query = set().union(*(ctx.postings.get(w, set()) for w in ctx.queried(q)))
  out = []
  for c in q.choices:
    docs = set(query)
    for w in ctx.key_words(q, c):
      docs &= ctx.postings.get(w, set())
    out.append(len(docs) if ctx.key_words(q, c) else 0)
  return out


def _order_count(q, ctx, after: bool):
  """Per choice: documents where its first key word comes after (before) a
  queried word."""
  query = ctx.queried(q)
  out = []
  for c in q.choices:
    keys = ctx.key_words(q, c)
    if not keys or not query:
      out.append(0)
      continue
    n = 0
    for i in ctx.postings.get(keys[0], ()):
      span = ctx.spans[i]
      found = [span[w] for w in query if w in span]
      if not found:
        continue
      first, last = span[keys[0]]
      if (last > min(f for f, _ in found) if after
          else first < max(l for _, l in found)):
        n += 1
    out.append(n)
  return out


def follows_query(q, ctx):
  return _order_count(q, ctx, after=True)


def precedes_query(q, ctx):
  return _order_count(q, ctx, after=False)


GENERIC: dict[str, Heuristic] = {
    "longest_choice": longest_choice,
    "shortest_choice": shortest_choice,
    "majority_first_word": majority_first_word,
    "cooccurs_with_query": cooccurs_with_query,
    "follows_query": follows_query,
    "precedes_query": precedes_query,
}


def expected_accuracy(q: records.Question, scores: Sequence[float]) -> float:
  """Accuracy of picking the best score, ties broken uniformly."""
  best = max(scores)
  tied = [i for i, s in enumerate(scores) if s == best]
  return sum(1 for i in tied if i in q.answers) / len(tied)


def report(dataset: records.Dataset,
           heuristics: Mapping[str, Heuristic] | None = None,
           forced: Mapping[str, str] | None = None,
           query_words: Callable[[records.Question], Sequence[str]] | None
           = None) -> dict[str, Any]:
  """The validity section of a dataset's manifest.

  Args:
    dataset: the generated dataset.
    heuristics: the dataset's own heuristics, added to `GENERIC`.
    forced: "HEURISTIC" or "HEURISTIC/SPLIT" -> why the task forces it.
    query_words: question -> its queried words (default: rare prompt words).

  Returns:
    {"tolerance", "chance": {split}, "heuristics": {name: {split: acc}},
     "forced": {key: reason}, "problems": [...]} (problems: the heuristics
    outside chance +- TOLERANCE that are not forced).
  """
  every = {**GENERIC, **(heuristics or {})}
  forced = dict(forced or {})
  out: dict[str, Any] = {"tolerance": TOLERANCE, "chance": {},
                         "heuristics": {name: {} for name in every},
                         "forced": forced, "problems": []}
  by_split: dict[str, list[records.Question]] = {}
  for q in dataset.test:
    by_split.setdefault(q.split, []).append(q)
  for split, qs in by_split.items():
    ctx = Context(dataset.train, qs, query_words)
    chance = sum(q.chance for q in qs) / len(qs)
    out["chance"][split] = round(chance, 4)
    for name, fn in every.items():
      acc = sum(expected_accuracy(q, fn(q, ctx)) for q in qs) / len(qs)
      out["heuristics"][name][split] = round(acc, 4)
      if abs(acc - chance) > TOLERANCE and not is_forced(forced, name, split):
        out["problems"].append(
            f"split {split!r}: heuristic {name} scores {acc:.3f}, chance"
            f" {chance:.3f} (more than {TOLERANCE} apart)")
  return out


def is_forced(forced: Mapping[str, str], name: str, split: str) -> bool:
  return name in forced or f"{name}/{split}" in forced


def card_text(section: Mapping[str, Any]) -> str:
  """The dataset card's "Validity" section."""
  splits = list(section["chance"])
  lines = [
      "Accuracy of no-reasoning heuristics per split (ties broken at random;"
      f" required within {section['tolerance']} of chance unless forced by"
      " the task; ftgen/data/validity.py).",
      "",
      "| heuristic | " + " | ".join(splits) + " |",
      "| --- | " + " | ".join("---" for _ in splits) + " |",
      "| chance | " + " | ".join(f"{section['chance'][s]:.3f}"
                                  for s in splits) + " |",
  ]
  for name, accs in section["heuristics"].items():
    cells = []
    for s in splits:
      mark = "*" if is_forced(section["forced"], name, s) else ""
      cells.append(f"{accs[s]:.3f}{mark}")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  if section["forced"]:
    lines += ["", "Forced by the task (*), reported as baseline rows in the"
              " results tables:", ""]
    lines += [f"* `{k}`: {v}" for k, v in section["forced"].items()]
  return "\n".join(lines)
