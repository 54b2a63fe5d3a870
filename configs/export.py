r"""Export configs: `configs/export.py:gguf` (the one format for now).

Writes a model as a GGUF file for llama.cpp, Ollama and LM Studio
(ftgen/checkpoints/gguf_export.py; docs/launching.md#gguf-export):

  python launch/export.py --config=configs/export.py:gguf \
      --config.checkpoint=/tmp/ft --config.type=q8_0 --workdir=/tmp/gguf

`checkpoint` is a fine-tuning workdir, an HF export directory or a model
name (docs/design.md#model-names); the file is `out`, or
WORKDIR/model-TYPE.gguf when `out` is empty.
"""

import ml_collections

FORMATS = ("gguf",)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the locked export config for `FORMAT` (default gguf)."""
  fmt = arg or "gguf"
  if fmt not in FORMATS:
    raise ValueError(f"unknown export format {fmt!r} in configs/export.py:"
                     f"{arg}; allowed: {', '.join(FORMATS)}")
  c = ml_collections.ConfigDict()
  c.format = fmt
  c.checkpoint = ""  # required: workdir, export directory or model name
  c.type = "q8_0"  # f16 | q8_0 | f32 (the matrices; norms stay f32)
  c.out = ""  # "" means WORKDIR/model-TYPE.gguf
  c.lock()
  return c
