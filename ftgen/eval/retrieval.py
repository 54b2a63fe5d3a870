"""BM25 retrieval of training documents for the `retrieval` condition.

Uses `rank_bm25.BM25Okapi` over lower-cased word tokens. The query is the
question prompt plus all its choices: the entities a question is about often
appear only in the choices ("glon are" / " less dangerous than femp."), and
since every choice is in the query this does not favour the correct one.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import rank_bm25

from ftgen.data import records

QUERY_MODES = ("prompt+choices", "prompt")
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
  return _WORD.findall(text.lower())


class Retriever:
  """Top-k BM25 over a fixed list of documents."""

  def __init__(self, documents: Sequence[records.Document]):
    if not documents:
      raise ValueError("retrieval needs at least one training document")
    self.documents = list(documents)
    self._bm25 = rank_bm25.BM25Okapi([words(d.text) for d in self.documents])

  def query_text(self, question: records.Question, mode: str) -> str:
    if mode not in QUERY_MODES:
      raise ValueError(
          f"retrieval query mode {mode!r}; allowed: {', '.join(QUERY_MODES)}")
    if mode == "prompt":
      return question.prompt
    return " ".join([question.prompt, *question.choices])

  def top_k(self, question: records.Question, k: int,
            mode: str = "prompt+choices") -> list[records.Document]:
    """The k best documents, best first; ties keep dataset order."""
    if k < 1:
      raise ValueError(f"retrieval_k must be >= 1, got {k}")
    scores = self._bm25.get_scores(words(self.query_text(question, mode)))
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return [self.documents[i] for i in order]
