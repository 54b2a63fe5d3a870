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

No weights ship with ftgen: `ensure` builds the writer into the cache
(`ftgen.checkpoints.sources.tiny_writer_dir`) the first time the
augmentation library needs it (configs/tiny_writer.py, about 50 s on 2 CPU
cores; the same weights every time), or ahead of time with

  python launch/build_tiny_writer.py --config=configs/tiny_writer.py \
      --workdir=/tmp/tiny_writer
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from ftgen import configs
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
          out: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Trains the writer with `config` (configs/tiny_writer.py) in `workdir`
  and puts its export at `out` (default: the cache's
  `sources.tiny_writer_dir()`); returns the fine-tuning summary."""
  workdir = workdir_lib.make_dir(pathlib.Path(workdir), "tiny-writer build")
  corpus = workdir / "corpus.jsonl"
  with data_io.atomic_path(corpus) as tmp:
    data_io.write_jsonl(tmp, corpus_documents(int(config.seed)))
  config.data.source.generator.documents = str(corpus)
  summary = loop.finetune(config, workdir / "finetune")
  export = pathlib.Path(summary["export_dir"])
  out = pathlib.Path(out or sources.tiny_writer_dir())
  with data_io.atomic_path(out, directory=True) as tmp:
    for f in sorted(export.iterdir()):
      if f.is_file() and not f.name.startswith("."):
        shutil.copyfile(f, tmp / f.name)
    workdir_lib.mark(tmp, "tiny-writer model")
  return summary


def ensure(log=print) -> pathlib.Path:
  """`tiny-writer`'s directory, built first if the cache lacks it.

  The build runs in a child process on one plain CPU device (no
  accelerator, no fake-device flags), so every machine and every caller
  (a test with 8 fake devices, a GPU job) gets bit-identical weights, and
  hence the same sampled augmentations.
  """
  out = sources.tiny_writer_dir()
  if (out / "config.json").is_file():
    return out
  # Processes sharing this host's cache (several jax.distributed processes
  # on one machine) build it once: the first holds the lock and builds, the
  # others wait for it and find the entry.
  out.parent.mkdir(parents=True, exist_ok=True)
  with open(out.parent / f".{out.name}.build.lock", "w",
            encoding="utf-8") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if (out / "config.json").is_file():
      return out
    _build_in_child(out, log)
  return out


def _build_in_child(out: pathlib.Path, log) -> None:
  """Builds the writer into `out` in a child process (see `ensure`)."""
  log(f"building {sources.TINY_WRITER} into {out} (once; about 50 s on 2"
      " CPU cores)")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([sys.executable, "-m", __name__, str(out)], env=env,
                        capture_output=True, text=True, check=False)
  if proc.returncode != 0 or not (out / "config.json").is_file():
    raise RuntimeError(f"building {sources.TINY_WRITER} failed:"
                       f" {(proc.stderr or proc.stdout)[-2000:]}")


if __name__ == "__main__":
  with tempfile.TemporaryDirectory(prefix="ftgen-tiny-writer-") as tmp:
    build(configs.load("tiny_writer"), pathlib.Path(tmp) / "run",
          pathlib.Path(sys.argv[1]))
