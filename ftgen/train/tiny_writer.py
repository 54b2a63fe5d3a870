"""Builds `tiny-writer`: the tiny llama trained to write English sentences.

A tiny model with random weights writes no sentence (it repeats one token),
so with it every augmentation of the tiny experiments came out empty and
their augmented conditions never ran. `tiny-writer` is the same tiny
architecture and tokenizer, fully fine-tuned by ftgen's own loop
(`ftgen.train.loop.finetune`) on the tiny tokenizer's English corpus
(`tiny_tokenizer.corpus_sentences`), arranged as documents of a few
sentences, one per line. It then writes such lines after any prompt: plain
English sentences, not statements about the prompt's documents, which is
what an augmentation writer this small can honestly produce. The tiny
experiments use it as `augment_model` (configs/experiment.py), so their
augmented conditions train on real, post-processed samples.

The result is shipped in `ftgen/checkpoints/assets/tiny_writer`
(`ftgen.checkpoints.sources.TINY_WRITER_DIR`); rebuild it with

  python launch/build_tiny_writer.py --config=configs/tiny_writer.py \
      --workdir=/tmp/tiny_writer
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Any

import numpy as np

from ftgen.checkpoints import sources
from ftgen.checkpoints import tiny_tokenizer
from ftgen.data import io as data_io
from ftgen.data import workdir as workdir_lib
from ftgen.train import loop

# Documents of the training set: each a seeded draw of this many corpus
# sentences, one per line.
SENTENCES_PER_DOCUMENT = 3
NUM_DOCUMENTS = 64


def corpus_documents(seed: int = 0) -> list[dict[str, str]]:
  """The training documents (`{"id", "text"}` rows)."""
  sentences = tiny_tokenizer.corpus_sentences()
  rng = np.random.default_rng(seed)
  rows = []
  for i in range(NUM_DOCUMENTS):
    pick = rng.choice(len(sentences), SENTENCES_PER_DOCUMENT, replace=False)
    rows.append({"id": f"writer-{i:03d}",
                 "text": "\n".join(sentences[j] for j in pick)})
  return rows


def build(config: Any, workdir: str | pathlib.Path,
          out: str | pathlib.Path = sources.TINY_WRITER_DIR) -> dict[str, Any]:
  """Trains the writer with `config` (configs/tiny_writer.py) in `workdir`
  and puts its export at `out`; returns the fine-tuning summary."""
  workdir = workdir_lib.make_dir(pathlib.Path(workdir), "tiny-writer build")
  corpus = workdir / "corpus.jsonl"
  with data_io.atomic_path(corpus) as tmp:
    data_io.write_jsonl(tmp, corpus_documents(int(config.seed)))
  config.data.source.generator.documents = str(corpus)
  summary = loop.finetune(config, workdir / "finetune")
  export = pathlib.Path(summary["export_dir"])
  out = pathlib.Path(out)
  with data_io.atomic_path(out, directory=True) as tmp:
    for f in sorted(export.iterdir()):
      if f.is_file() and not f.name.startswith("."):
        shutil.copyfile(f, tmp / f.name)
    workdir_lib.mark(tmp, "tiny-writer model")
  return summary
