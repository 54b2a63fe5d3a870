r"""Builds the `tiny-writer` model into ftgen's cache.

  python launch/build_tiny_writer.py --config=configs/tiny_writer.py \
      --workdir=/tmp/tiny_writer

Trains the tiny llama on the tiny tokenizer's English corpus with ftgen's
own fine-tuning loop (ftgen/train/tiny_writer.py) and replaces
its cache entry (ftgen.checkpoints.sources.tiny_writer_dir) with the export;
the augmentation library builds it on first use anyway.
"""

import json

import _common  # launch/_common.py (this script's directory is on sys.path)
from ftgen.train import tiny_writer

_common.define_flags("Writer training config (configs/tiny_writer.py).",
                     "Run directory (corpus, checkpoints).")


def main(config, workdir: str):
  summary = tiny_writer.build(config, workdir)
  print(json.dumps({k: summary[k] for k in ("steps", "final_loss",
                                            "params_digest")}))


if __name__ == "__main__":
  _common.run(main)
