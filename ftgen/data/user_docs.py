"""Your own documents: any JSONL of `{"id", "text"}` documents.

An optional JSONL of questions in the test schema may come with them
(docs/design.md#datasets, #dataset-files).

Both files are validated line by line (`ftgen.data.io` names the file, line
and field of the first problem). Without questions the dataset is
train-only: `test.jsonl` is written empty, which is enough for augmentation
and fine-tuning; evaluation then asks for questions.
"""

from __future__ import annotations

import pathlib
from typing import Any

from ftgen.data import io
from ftgen.data import records


def generate(cfg: Any, seed: int) -> records.Dataset:
  """Reads `cfg.documents` and, when set, `cfg.questions`."""
  del seed  # Nothing is drawn at random: the files are the dataset.
  if not cfg.documents:
    raise ValueError(
        "the user dataset needs --config.generator.documents=PATH (a JSONL of"
        ' {"id", "text"} documents); --config.generator.questions=PATH is'
        " optional"
    )
  docs_path = pathlib.Path(cfg.documents).expanduser()
  train = io.read_documents(docs_path)
  test: list[records.Question] = []
  if cfg.questions:
    test = io.read_questions(pathlib.Path(cfg.questions).expanduser())
  splits = sorted({q.split for q in test})
  card = {
      "description": (
          f"User documents from {docs_path.name} ({len(train)} documents)"
          + (f" with {len(test)} questions from"
             f" {pathlib.Path(cfg.questions).name} in splits {splits}."
             if test else
             "; no questions were given, so the dataset is train-only"
             " (augmentation and fine-tuning work; evaluation needs"
             " --config.generator.questions=PATH).")),
      "source": f"documents: {docs_path}\nquestions: {cfg.questions or '-'}",
  }
  return records.Dataset("user", train, test, card=card)
