"""Loading a fine-tuned model for the `finetuned` condition.

The fine-tuning run exports an HF-style directory (config.json, safetensors,
tokenizer files; `WORKDIR/export` of `launch/finetune.py`). It is evaluated
only if its architecture matches the named base model: evaluating a
checkpoint of another model under this model's name would mislabel results.
"""

from __future__ import annotations

import pathlib
from typing import Any

from ftgen.checkpoints import hf
from ftgen.checkpoints import registry
from ftgen.data import io as data_io
from ftgen.data import workdir as workdir_lib

# Fields of ModelConfig that define the architecture (a mismatch is an error).
ARCH_FIELDS = ("family", "vocab_size", "embed_dim", "num_layers", "num_heads",
               "num_kv_heads", "head_dim", "mlp_dim", "tie_embeddings",
               "qkv_bias", "sliding_window", "sliding_window_pattern")


class CheckpointMismatchError(ValueError):
  """The checkpoint is not of the named model (or not a checkpoint at all)."""


def base_config(model_name: str):
  """The ModelConfig of a registry name, without loading its params."""
  return registry.model_config(model_name)


def check_matches(model_name: str, base: Any, found: Any, where: str):
  diffs = [f"{f}: {getattr(found, f)!r} (model {model_name!r} has"
           f" {getattr(base, f)!r})"
           for f in ARCH_FIELDS if getattr(found, f) != getattr(base, f)]
  if diffs:
    raise CheckpointMismatchError(
        f"checkpoint {where} does not match model {model_name!r}: "
        + "; ".join(diffs))


def load_finetuned(model_name: str, checkpoint: str, *,
                   dtype: str = "float32"):
  """Loads the HF export at `checkpoint` after checking it is `model_name`.

  Returns:
    A `ftgen.checkpoints.registry.LoadedModel`. Its tokenizer comes from the
    export when it has one, else from the base model.
  """
  if workdir_lib.is_remote(checkpoint):  # A gs:// experiment's export.
    if not workdir_lib.as_path(checkpoint).is_dir():
      raise CheckpointMismatchError(
          f"checkpoint {checkpoint}: directory not found")
    checkpoint = data_io.local_copy(checkpoint)
  path = pathlib.Path(checkpoint).expanduser()
  if not path.is_dir():
    raise CheckpointMismatchError(f"checkpoint {path}: directory not found")
  if not (path / "config.json").is_file():
    sub = [p for p in (path / "export", path / "hf")
           if (p / "config.json").is_file()]
    if not sub:
      raise CheckpointMismatchError(
          f"checkpoint {path}: no config.json; give the HF-style export"
          " directory of the fine-tuning run (WORKDIR/export)")
    path = sub[0]
  found = hf.load_hf_config(path, param_dtype=dtype, dtype=dtype)
  check_matches(model_name, base_config(model_name), found, str(path))
  if (path / "tokenizer.json").is_file():
    loaded = registry.load_model(f"hf:{path}", dtype=dtype)
    return loaded
  params = hf.load_hf_params(path, found, dtype)
  tok = registry.load_tokenizer(model_name)
  return registry.LoadedModel(found, params, tok, f"hf:{path}", str(path))
