"""Turn raw generations into clean augmentation statements.

Generated text is split into statements; empty, truncated and degenerate
statements (repetition, prompt echo) are dropped; the rest are deduplicated
against the training set and each other. Every kept statement carries its
provenance (source document, prompt hash, sample index, strategy).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
from typing import Iterable, Sequence

from ftgen.data import checks
from ftgen.data import records

_BULLET = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,3}[.)]|[a-z][.)])\s+")
# Labels small models put before a statement ("Statement:", "Reversal 2:").
_LABEL = re.compile(
    r"^(?:statement|restatement|rephrasing|rephrase|reversal|reversed|"
    r"inference|conclusion|answer|output)\s*\d*\s*:\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_WORD = re.compile(r"[A-Za-z']+")


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """One generated statement and where it came from."""

  text: str
  source_id: str
  prompt_hash: str
  sample_index: int
  strategy: str

  def to_document(self, index: int) -> records.Document:
    return records.Document(
        id=f"aug-{self.strategy}-{index:06d}",
        text=self.text,
        meta={"source_id": self.source_id, "prompt_hash": self.prompt_hash,
              "sample_index": self.sample_index, "strategy": self.strategy},
    )


def prompt_hash(prompt: str) -> str:
  return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def split_statements(text: str) -> list[str]:
  """Splits a generation into statements: lines, then sentences."""
  out = []
  for line in text.splitlines():
    line = _BULLET.sub("", line).strip()
    unlabelled = _LABEL.sub("", line)
    if unlabelled != line:
      line = unlabelled[:1].upper() + unlabelled[1:]
    if not line:
      continue
    out.extend(s.strip() for s in _SENTENCE_END.split(line) if s.strip())
  return out


def _repetitive(words: Sequence[str], n: int = 3) -> bool:
  """True when some word n-gram repeats, or one word fills half the text."""
  if len(words) >= 4:
    top = collections.Counter(words).most_common(1)[0][1]
    if top / len(words) > 0.5:
      return True
  grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
  return len(grams) != len(set(grams))


def rejection_reason(statement: str, *, min_words: int = 3,
                     max_words: int = 60) -> str | None:
  """Why a statement is dropped (None keeps it)."""
  words = [w.lower() for w in _WORD.findall(statement)]
  if not words:
    return "empty"
  if len(words) < min_words:
    return "too_short"
  if len(words) > max_words:
    return "too_long"
  if statement[-1] not in ".!?":
    return "truncated"
  if _repetitive(words):
    return "repetitive"
  return None


@dataclasses.dataclass
class Report:
  """Counts of what post-processing kept and dropped, and why."""

  generated: int = 0
  kept: int = 0
  dropped: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)

  def to_json(self) -> dict:
    return {"generated": self.generated, "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items()))}


# Words with which a model talks about its prompt instead of the facts
# ("The document contains the statements: 1."); dropped as "meta" unless the
# training documents themselves use the word.
META_WORDS = frozenset({"document", "documents", "text", "texts", "passage",
                        "statement", "statements", "sentence", "sentences",
                        "prompt", "question", "questions", "answer", "sorry"})


def clean(
    generations: Iterable[tuple[str, str, str, int, str]],
    training_texts: Iterable[str],
    *,
    echo_texts: Iterable[str] = (),
    min_words: int = 3,
) -> tuple[list[Augmentation], Report]:
  """Splits, filters and deduplicates generations.

  Args:
    generations: (generated text, source id, prompt, sample index, strategy).
    training_texts: documents the statements are deduplicated against.
    echo_texts: text shown in the prompt (instructions, worked examples)
      that a statement must not merely copy.
    min_words: statements with fewer words are dropped.

  Returns:
    The kept augmentations in generation order, and a report.
  """
  known = set()
  vocabulary = set()
  for text in training_texts:
    vocabulary.update(w.lower() for w in _WORD.findall(text))
    known.add(checks.normalize(text))
    known.update(checks.normalize(s) for s in split_statements(text))
  meta = META_WORDS - vocabulary
  echoes = set()
  for text in echo_texts:
    echoes.update(checks.normalize(s) for s in split_statements(text))
  report = Report()
  kept: list[Augmentation] = []
  seen: set[str] = set()
  for text, source_id, prompt, sample_index, strategy in generations:
    phash = prompt_hash(prompt)
    for statement in split_statements(text):
      report.generated += 1
      key = checks.normalize(statement)
      reason = rejection_reason(statement, min_words=min_words)
      if reason is None and meta.intersection(
          w.lower() for w in _WORD.findall(statement)):
        reason = "meta"
      if reason is None and key in echoes:
        reason = "prompt_echo"
      if reason is None and key in known:
        reason = "in_training_set"
      if reason is None and key in seen:
        reason = "duplicate"
      if reason is not None:
        report.dropped[reason] += 1
        continue
      seen.add(key)
      kept.append(Augmentation(statement, source_id, phash, sample_index,
                               strategy))
  report.kept = len(kept)
  return kept, report
