"""Evaluation during training: multiple-choice accuracy per test split.

Uses the scorer of `ftgen.eval.scoring` (lm-eval tokenization, bucketed
jitted batches): each question's prompt is the context, each choice a
continuation, and the prediction is the choice with the highest summed
log-prob. Accuracy counts a pick as correct when it is in `answers`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ftgen.data import records


def select_questions(questions: Sequence[records.Question],
                     splits: Sequence[str], max_questions: int
                     ) -> list[records.Question]:
  """Questions of `splits` (all when empty), at most `max_questions` per
  split (0: all), in file order."""
  available = sorted({q.split for q in questions})
  unknown = [s for s in splits if s not in available]
  if unknown:
    raise ValueError(
        f"config key 'eval_splits' names split(s) {unknown} that the test set"
        f" does not have; allowed: {', '.join(available)}")
  wanted = set(splits) if splits else set(available)
  out, counts = [], {}
  for q in questions:
    if q.split not in wanted:
      continue
    if max_questions and counts.get(q.split, 0) >= max_questions:
      continue
    counts[q.split] = counts.get(q.split, 0) + 1
    out.append(q)
  return out


def evaluate(model: Any, params: Any, tokenizer: Any,
             questions: Sequence[records.Question], *, batch_size: int = 16,
             ) -> dict[str, dict[str, float]]:
  """{split: {'acc', 'n', 'chance'}} plus {'all': ...} over the questions."""
  from ftgen.eval import scoring  # pylint: disable=g-import-not-at-top

  def encode(text):
    return tokenizer.encode(text, add_bos=False)

  head = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
  requests, owner = [], []
  for qi, q in enumerate(questions):
    for choice in q.choices:
      requests.append(scoring.encode_pair(
          encode, q.prompt, choice, head=head,
          prefix_token=tokenizer.eos_ids[0]))
      owner.append(qi)
  scores = scoring.score_requests(model, params, requests,
                                  batch_size=batch_size,
                                  pad_id=tokenizer.pad_id)
  owner = np.asarray(owner)
  by_split: dict[str, list[tuple[bool, float]]] = {}
  for qi, q in enumerate(questions):
    ll = scores.logliks[owner == qi]
    correct = int(np.argmax(ll)) in q.answers
    by_split.setdefault(q.split, []).append((correct, q.chance))
  out = {}
  everything = []
  for split, rows in sorted(by_split.items()):
    everything += rows
    out[split] = _summary(rows)
  if everything:
    out["all"] = _summary(everything)
  return out


def _summary(rows: list[tuple[bool, float]]) -> dict[str, float]:
  acc = np.mean([c for c, _ in rows])
  return {"acc": float(acc), "n": len(rows),
          "chance": float(np.mean([ch for _, ch in rows]))}
