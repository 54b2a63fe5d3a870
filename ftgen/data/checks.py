"""Checks every generated dataset passes (docs/design.md#datasets), as code.

The generic checks, each dataset -> list of problems (empty means pass).
`ftgen.data.registry.run_checks` runs them and then the dataset's own checks
(its module's `dataset_checks`, named in its registry entry).
"""

from __future__ import annotations

import collections
import re
from typing import Any, Callable, Iterable

from ftgen.data import records

_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
  """Lower-case, collapse white space: the unit of leakage comparison."""
  return _WS.sub(" ", text.strip().lower())


def no_test_answer_in_train(dataset: records.Dataset) -> list[str]:
  """No test prompt joined with a correct choice appears in any document."""
  train = "\n".join(normalize(d.text) for d in dataset.train)
  problems = []
  for q in dataset.test:
    for a in q.answers:
      target = normalize(q.prompt + q.choices[a])
      if len(target) >= 12 and target in train:
        problems.append(f"{q.id}: {target!r} appears in train")
  return problems


def test_overlap(texts: Iterable[str],
                 questions: Iterable[records.Question]) -> dict[str, Any]:
  """Test items whose prompt + correct choice occurs inside a text.

  The one overlap count of ftgen, for model-written and rule-written
  (oracle) augmentations alike: texts that state a test item's answer in the
  test's own words. For model-written statements it is a measured result (a
  model may infer a test item's answer, which is what augmentation is for);
  the oracle must have none (`ftgen/experiments/runner.py`), or the oracle
  condition measures memorising test strings. Normalized as
  `no_test_answer_in_train` compares (lower case, collapsed white space),
  the final period dropped; targets shorter than 12 characters are too generic to count.

  Returns:
    {"statements": number of texts, "coincide_with_test_answer": test items
    found, "per_split": {split: items found}, "examples": up to 5 items}.
  """
  texts = [normalize(t) for t in texts]
  joined = "\n".join(texts)
  per_split: collections.Counter = collections.Counter()
  examples = []
  for q in questions:
    for a in q.answers:
      # Without its final period: a statement may continue after it.
      target = normalize(q.prompt + q.choices[a]).rstrip(".")
      if len(target) >= 12 and target in joined:
        per_split[q.split] += 1
        if len(examples) < 5:
          examples.append({"id": q.id, "text": target})
        break
  return {"statements": len(texts),
          "coincide_with_test_answer": sum(per_split.values()),
          "per_split": dict(sorted(per_split.items())),
          "examples": examples}


def balanced_answer_positions(dataset: records.Dataset,
                              tolerance: float = 0.15) -> list[str]:
  """Within each split, the canonical answer index is spread evenly."""
  problems = []
  by_split: dict[tuple[str, int], collections.Counter] = {}
  for q in dataset.test:
    by_split.setdefault((q.split, len(q.choices)),
                        collections.Counter())[q.answer] += 1
  for (split, k), counts in by_split.items():
    n = sum(counts.values())
    if n < 2 * k:
      continue  # Too few questions to judge balance.
    for pos in range(k):
      share = counts.get(pos, 0) / n
      if abs(share - 1 / k) > tolerance:
        problems.append(
            f"split {split!r}: answer position {pos} holds {share:.2f} of"
            f" {n} answers (expected {1 / k:.2f})"
        )
  return problems


def unique_ids(dataset: records.Dataset) -> list[str]:
  problems = []
  for kind, ids in (("document", [d.id for d in dataset.train]),
                    ("question", [q.id for q in dataset.test])):
    dup = [i for i, c in collections.Counter(ids).items() if c > 1]
    if dup:
      problems.append(f"duplicate {kind} ids: {dup[:5]}")
  return problems


def distinct_choices(dataset: records.Dataset) -> list[str]:
  return [f"{q.id}: repeated choices" for q in dataset.test
          if len(set(q.choices)) != len(q.choices)]


GENERIC_CHECKS: dict[str, Callable[[records.Dataset], list[str]]] = {
    "unique_ids": unique_ids,
    "distinct_choices": distinct_choices,
    "no_test_answer_in_train": no_test_answer_in_train,
    "balanced_answer_positions": balanced_answer_positions,
}

