r"""The `tiny-writer` model's training: `configs/tiny_writer.py`.

Full fine-tuning of the tiny llama on the tiny tokenizer's English corpus
(ftgen/train/tiny_writer.py), exported to the
cache (ftgen.checkpoints.sources.tiny_writer_dir); the augmentation library
builds it on first use, or ahead of time:

  python launch/build_tiny_writer.py --config=configs/tiny_writer.py \
      --workdir=/tmp/tiny_writer

`tiny` is a shorter run for tests.
"""

import pathlib

import ml_collections

from ftgen import configs

_HERE = pathlib.Path(__file__).resolve().parent


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The fine-tuning config of the writer (`tiny`: a few steps)."""
  variants = [p.strip() for p in (arg or "").split(",") if p.strip()]
  for v in variants:
    if v != "tiny":
      raise ValueError(f"unknown variant {v!r} in configs/tiny_writer.py:"
                       f"{arg}; allowed: tiny")
  c = configs.load("finetune:user,tiny", _HERE)
  # The documents file is written by the build (ftgen/train/tiny_writer.py).
  c.data.split_mode = "none"
  c.data.max_len = 96
  c.data.num_buckets = 2
  c.model = "tiny"
  c.batch_size = 16
  c.steps = 4 if variants else 600
  c.lr = 3e-3
  c.warmup_steps = 2 if variants else 30
  c.checkpoint_every = 200
  c.lora.rank = 0  # Full fine-tuning: every weight learns the corpus.
  c.eval.every = -1  # The corpus has no questions.
  c.export_hf = True
  c.num_devices = 1
  c.progress = not variants
  c.lock()
  return c
