"""Records shared by every dataset: training documents and test questions.

The JSONL schemas are a contract (docs/design.md#dataset-files):
`train.jsonl` holds `{"id", "text", ...}` and `test.jsonl` holds
`{"id", "split", "prompt", "choices", "answer", ["answers"], ...}`.
Extra fields live under `meta` so readers that know only the contract keep
working.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class OracleUnavailable(ValueError):
  """A dataset has no rule-written augmentation (the message says why)."""


def _check_meta(kind: str, record_id: str, meta: Any):
  # `meta` is written as a JSON object (docs/design.md#dataset-files).
  if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
    raise ValueError(f"{kind} {record_id!r}: meta must be a dict with string"
                     f" keys, got {type(meta).__name__}")


@dataclasses.dataclass(frozen=True)
class Document:
  """One training document."""

  id: str
  text: str
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    _check_meta("document", self.id, self.meta)

  def to_json(self) -> dict[str, Any]:
    row: dict[str, Any] = {"id": self.id, "text": self.text}
    if self.meta:
      row["meta"] = self.meta
    return row


@dataclasses.dataclass(frozen=True)
class Question:
  """One multiple-choice test question.

  `answer` is the index of the canonical correct choice; `answers` lists every
  logically correct choice when there are several (else it is `(answer,)`).
  """

  id: str
  split: str
  prompt: str
  choices: tuple[str, ...]
  answer: int
  answers: tuple[int, ...] = ()
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    _check_meta("question", self.id, self.meta)
    if len(self.choices) < 2:
      raise ValueError(
          f"question {self.id!r}: needs at least 2 choices, got"
          f" {len(self.choices)}"
      )
    if not 0 <= self.answer < len(self.choices):
      raise ValueError(
          f"question {self.id!r}: answer {self.answer} is not an index into"
          f" {len(self.choices)} choices"
      )
    answers = tuple(self.answers) or (self.answer,)
    if self.answer not in answers or any(
        not 0 <= a < len(self.choices) for a in answers
    ):
      raise ValueError(
          f"question {self.id!r}: answers {answers} must contain answer"
          f" {self.answer} and index into {len(self.choices)} choices"
      )
    object.__setattr__(self, "answers", tuple(sorted(set(answers))))
    object.__setattr__(self, "choices", tuple(self.choices))

  @property
  def chance(self) -> float:
    """Accuracy of a uniform random pick."""
    return len(self.answers) / len(self.choices)

  def to_json(self) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": self.id,
        "split": self.split,
        "prompt": self.prompt,
        "choices": list(self.choices),
        "answer": self.answer,
    }
    if len(self.answers) > 1:
      row["answers"] = list(self.answers)
    if self.meta:
      row["meta"] = self.meta
    return row


@dataclasses.dataclass
class Dataset:
  """What a generator returns: documents, questions, and card facts.

  `card` holds free-form facts for the dataset card (README.md), e.g. the
  design choices and counts; `extra_files` maps a relative file name to text
  for generator-specific side files (e.g. reference outputs).
  """

  name: str
  train: list[Document]
  test: list[Question]
  card: dict[str, Any] = dataclasses.field(default_factory=dict)
  extra_files: dict[str, str] = dataclasses.field(default_factory=dict)

  @property
  def splits(self) -> list[str]:
    seen: dict[str, None] = {}
    for q in self.test:
      seen.setdefault(q.split, None)
    return list(seen)
