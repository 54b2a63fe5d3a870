r"""Export configs: `configs/export.py:gguf` (the one format for now).

Writes a model as a GGUF file for llama.cpp, Ollama and LM Studio
(ftgen/checkpoints/gguf_export.py; docs/launching.md#gguf-export):

  python launch/export.py --config=configs/export.py:gguf \
      --config.checkpoint=/tmp/ft --config.type=q8_0 --workdir=/tmp/gguf

`checkpoint` is a fine-tuning workdir, an HF export directory or a model
name (docs/design.md#model-names); the file is `out`, or
WORKDIR/model-TYPE.gguf when `out` is empty. `gguf,tiny` exports the tiny
random model (`checkpoint=tiny`, f16): a plumbing check that needs no
weights.
"""

import ml_collections

FORMATS = ("gguf",)
VARIANTS = ("tiny",)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the locked export config for `FORMAT[,tiny]` (default gguf)."""
  fmt, *variants = [p.strip() for p in (arg or "gguf").split(",")]
  if fmt not in FORMATS:
    raise ValueError(f"unknown export format {fmt!r} in configs/export.py:"
                     f"{arg}; allowed: {', '.join(FORMATS)}")
  for v in variants:
    if v not in VARIANTS:
      raise ValueError(f"unknown variant {v!r} in configs/export.py:{arg};"
                       f" allowed: {', '.join(VARIANTS)}")
  tiny = "tiny" in variants
  c = ml_collections.ConfigDict()
  c.format = fmt
  # Required: a fine-tuning workdir, an export directory or a model name.
  c.checkpoint = "tiny" if tiny else ""
  c.type = "f16" if tiny else "q8_0"  # f16 | q8_0 | f32 (norms stay f32)
  c.out = ""  # "" means WORKDIR/model-TYPE.gguf
  c.lock()
  return c
