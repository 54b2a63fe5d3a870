r"""Exports a fine-tuned or named model as a GGUF file.

  python launch/export.py --config=configs/export.py:gguf \
      --config.checkpoint=/tmp/ft --config.type=q8_0 --workdir=/tmp/gguf

Writes WORKDIR/model-TYPE.gguf (or `--config.out`) and prints
{"path", "type", "architecture", "bytes", "source"}; llama.cpp, Ollama and
LM Studio run the file (docs/launching.md#gguf-export).
"""

import json

import _common  # launch/_common.py (this script's directory is on sys.path)
from ftgen.checkpoints import gguf_export
from ftgen.data import workdir as workdir_lib

_common.define_flags("Export config (configs/export.py:gguf).",
                     "Output directory (the GGUF file lands there).")


def main(config, workdir: str):
  if not config.checkpoint:
    raise _common.Error("--config.checkpoint is required: a fine-tuning"
                        " workdir, an HF export directory or a model name")
  out = config.out or (workdir_lib.as_path(workdir)
                       / f"model-{config.type}.gguf")
  print(json.dumps(gguf_export.export_gguf(config.checkpoint, out,
                                           ggml_type=config.type)))


if __name__ == "__main__":
  _common.run(main, (ValueError, KeyError, FileNotFoundError))
