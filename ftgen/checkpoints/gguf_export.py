"""GGUF export: an ftgen model -> a llama.cpp file (f32, f16 or Q8_0).

The inverse of `ftgen.checkpoints.gguf` (the import), written the way
llama.cpp's `convert_hf_to_gguf.py` writes Llama and Gemma 3 files, so that
llama.cpp, Ollama, LM Studio and transformers' GGUF loader read it:

* tensors: the params tree as HF tensors (`hf.hf_state_dict`), renamed by the
  importer's tables read backwards (`gguf.gguf_name`); Llama q/k rows get
  llama.cpp's rotary permutation (`gguf.permute_rows`), Gemma 3 norms are
  stored as `1 + w`; 1-D tensors stay float32, matrices become f16 or Q8_0
  (a matrix whose rows are not a multiple of 32 falls back to f16, as in
  llama.cpp);
* metadata: llama.cpp's keys for the architecture, and the tokenizer
  (vocabulary, merges or scores, token types, special ids, BOS rule, chat
  template) from the model's `tokenizer.json`.

A model the file format cannot describe (what llama.cpp hard-codes for
Gemma 3, Llama 3.x rope scaling, Mistral windows, qkv biases) is refused
with a one-line error before anything is written. The file is written
atomically (docs/design.md#reliability).

  export_gguf("smollm2-135m", "/tmp/smollm2-q8_0.gguf", ggml_type="q8_0")
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Mapping

import gguf
import numpy as np

from ftgen.checkpoints import gguf as gguf_lib
from ftgen.checkpoints import hf
from ftgen.checkpoints import registry
from ftgen.data import io as data_io
from ftgen.data import workdir as workdir_lib
from ftgen.models.config import ModelConfig

TYPES = ("f16", "q8_0", "f32")
ARCHITECTURES = ("llama", "gemma3")
_FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32,
               "f16": gguf.LlamaFileType.MOSTLY_F16,
               "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
_F16_MAX = float(np.finfo(np.float16).max)
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-F]{2}>$")


class GGUFExportError(ValueError):
  """A model or tokenizer the GGUF export cannot write; one-line message."""


# ----------------------------------------------------------------------------
# Architecture: ModelConfig -> llama.cpp's metadata.


def gguf_architecture(config: ModelConfig) -> str:
  """The GGUF architecture of `config`, or GGUFExportError if unwritable."""
  def refuse(what: str) -> GGUFExportError:
    return GGUFExportError(f"GGUF export: {what}; exportable: Llama-family"
                           " and Gemma 3 models as llama.cpp describes them")
  if config.family == "llama":
    if config.qkv_bias:
      raise refuse("qkv biases (Qwen2-style) are not supported")
    if config.sliding_window is not None:
      raise refuse(f"sliding_window={config.sliding_window} (Mistral-style)"
                   " is not supported")
    scaling = config.rope_scaling_dict()
    if scaling is not None and scaling["rope_type"] != "linear":
      raise refuse(f"rope scaling {scaling['rope_type']!r} is not supported"
                   " (llama.cpp stores it as a rope_freqs tensor that the"
                   " importers cannot read back); allowed: linear")
    return "llama"
  if config.family == "gemma3":
    # llama.cpp (and both importers) hard-code these for Gemma 3
    # (ftgen/checkpoints/gguf.py: _gemma3_config); other values would load
    # as a different model.
    scalar = (config.embed_dim // config.num_heads if config.num_layers == 62
              else config.head_dim)
    fixed = {
        "sliding_window_pattern": (config.sliding_window_pattern,
                                   gguf_lib.GEMMA3_SLIDING_WINDOW_PATTERN),
        "rope_local_theta": (config.rope_local_theta or
                             gguf_lib.GEMMA3_ROPE_LOCAL_BASE,
                             gguf_lib.GEMMA3_ROPE_LOCAL_BASE),
        "query_pre_attn_scalar": (config.query_pre_attn_scalar or
                                  config.head_dim, scalar),
        "attn_logit_softcap": (config.attn_logit_softcap, None),
        "final_logit_softcap": (config.final_logit_softcap, None),
    }
    for field, (got, want) in fixed.items():
      if got != want:
        raise refuse(f"Gemma 3 {field}={got!r}, but llama.cpp fixes it to"
                     f" {want!r}")
    if config.sliding_window is None:
      raise refuse("Gemma 3 without sliding_window")
    return "gemma3"
  raise refuse(f"family {config.family!r} is not supported")


def _add_architecture(w: gguf.GGUFWriter, arch: str,
                      config: ModelConfig) -> None:
  w.add_context_length(config.max_seq_len)
  w.add_embedding_length(config.embed_dim)
  w.add_block_count(config.num_layers)
  w.add_feed_forward_length(config.mlp_dim)
  w.add_head_count(config.num_heads)
  w.add_head_count_kv(config.num_kv_heads)
  if (arch == "gemma3"
      or config.head_dim != config.embed_dim // config.num_heads):
    # Llama files state the head size only when it is not D / N (SmolLM2's
    # does not); readers fall back to rope.dimension_count.
    w.add_key_length(config.head_dim)
    w.add_value_length(config.head_dim)
  w.add_layer_norm_rms_eps(config.norm_eps)
  w.add_rope_freq_base(config.rope_theta)
  scaling = config.rope_scaling_dict()
  if scaling is not None:  # linear: gguf_architecture refused the others
    w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    w.add_rope_scaling_factor(float(scaling["factor"]))
  if arch == "llama":
    w.add_rope_dimension_count(config.head_dim)
    w.add_vocab_size(config.vocab_size)
  else:
    w.add_sliding_window(config.sliding_window)


# ----------------------------------------------------------------------------
# Tokenizer: tokenizer.json -> llama.cpp's tokenizer metadata.


def _pre_tokenizer_name(state: dict[str, Any]) -> str:
  """llama.cpp's `tokenizer.ggml.pre` for a byte-level BPE tokenizer.json."""
  # transformers' GGUF loader maps these names back to its split regexes;
  # imported here to keep `import ftgen.train.loop` light.
  from transformers.integrations.gguf import gguf_tokenizer_mapping  # pylint: disable=g-import-not-at-top

  pre = state.get("pre_tokenizer") or {}
  items = (pre.get("pretokenizers", []) if pre.get("type") == "Sequence"
           else [pre])
  kinds = [p.get("type") for p in items]
  if kinds == ["ByteLevel"] and items[0].get("use_regex", True):
    return "gpt-2"  # llama.cpp's name for GPT-2's regex (ByteLevel's)
  if (kinds == ["Digits", "ByteLevel"]
      and items[0].get("individual_digits")):
    return "smollm"  # GPT-2's regex after splitting every digit
  splits = [p.get("pattern", {}).get("Regex") for p in items
            if p.get("type") == "Split"]
  for name, regex in gguf_tokenizer_mapping.GGUF_PRE_TOKENIZER_SPLITS.items():
    if kinds == ["Split", "ByteLevel"] and splits == [regex]:
      return name
  raise GGUFExportError(
      f"GGUF export: pre-tokenizer {json.dumps(pre)[:200]} has no llama.cpp"
      " name; supported: GPT-2 ByteLevel, SmolLM digits + ByteLevel, and"
      " the split regexes of transformers' GGUF loader")


def _add_tokenizer(w: gguf.GGUFWriter, arch: str, tokenizer,
                   vocab_size: int) -> None:
  """Writes `tokenizer` (ftgen.checkpoints.tokenizer.Tokenizer) as llama.cpp
  does: byte-level BPE as `gpt2` (tokens + merges), sentencepiece-style BPE
  (byte fallback) as `llama` (tokens + scores)."""
  state = json.loads(tokenizer.hf.backend_tokenizer.to_str())
  model = state["model"]
  if model.get("type") != "BPE":
    raise GGUFExportError(f"GGUF export: tokenizer model {model.get('type')!r}"
                          " is not supported; allowed: BPE")
  by_id = {int(i): t for t, i in model["vocab"].items()}
  added = {int(a["id"]): a for a in state.get("added_tokens", [])}
  by_id.update({i: a["content"] for i, a in added.items()})
  n = len(by_id)
  if sorted(by_id) != list(range(n)):
    raise GGUFExportError("GGUF export: the tokenizer's ids are not"
                          f" contiguous 0..{n - 1}")
  if n > vocab_size:
    raise GGUFExportError(f"GGUF export: tokenizer has {n} tokens, the model"
                          f" only {vocab_size} embeddings")
  tokens = [by_id[i] for i in range(n)]
  types = [gguf.TokenType.NORMAL] * n
  for i, a in added.items():
    types[i] = (gguf.TokenType.CONTROL if a.get("special")
                else gguf.TokenType.USER_DEFINED)
  decoder = json.dumps(state.get("decoder"))
  byte_level = "ByteLevel" in json.dumps(state.get("pre_tokenizer"))
  if byte_level:
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(_pre_tokenizer_name(state))
  elif model.get("byte_fallback") or "ByteFallback" in decoder:
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    scores = []
    for i, t in enumerate(tokens):
      if types[i] == gguf.TokenType.NORMAL and _BYTE_TOKEN.match(t):
        types[i] = gguf.TokenType.BYTE
      if (arch == "gemma3" and types[i] == gguf.TokenType.NORMAL
          and len(t) > 1 and set(t) == {"\u2581"}):
        # Gemma's files keep runs of spaces as user-defined tokens spelled
        # with real spaces (transformers' gemma_tokenizer respells them).
        tokens[i] = " " * len(t)
        types[i] = gguf.TokenType.USER_DEFINED
      # Sentencepiece lists pieces best first: -id orders them as the
      # original scores do (what llama.cpp's merges and transformers'
      # rebuilt merges follow); special pieces score -1000 as in llama.cpp.
      scores.append(-float(i) if types[i] == gguf.TokenType.NORMAL
                    else 0.0 if types[i] == gguf.TokenType.BYTE else -1000.0)
  else:
    raise GGUFExportError("GGUF export: tokenizer is neither byte-level BPE"
                          " nor sentencepiece-style BPE with byte fallback")
  # llama.cpp wants one token per embedding row.
  tokens += [f"[PAD{i}]" for i in range(n, vocab_size)]
  types += [gguf.TokenType.UNUSED] * (vocab_size - n)
  w.add_token_list(tokens)
  w.add_token_types(types)
  if byte_level:
    w.add_token_merges([m if isinstance(m, str) else " ".join(m)
                        for m in model.get("merges", [])])
  else:
    w.add_token_scores(scores + [-1000.0] * (vocab_size - n))
  hf_tok = tokenizer.hf
  if tokenizer.bos_id is not None:
    w.add_bos_token_id(tokenizer.bos_id)
  eos = hf_tok.eos_token_id
  w.add_eos_token_id(tokenizer.eos_ids[0] if eos is None else eos)
  if hf_tok.unk_token_id is not None:
    w.add_unk_token_id(hf_tok.unk_token_id)
  w.add_pad_token_id(tokenizer.pad_id)
  w.add_add_bos_token(tokenizer.add_bos)
  w.add_add_eos_token(False)
  w.add_add_space_prefix(False)
  if tokenizer.chat_template:
    w.add_chat_template(tokenizer.chat_template)


# ----------------------------------------------------------------------------
# Writing.


def new_writer(path: os.PathLike[str] | str, config: ModelConfig, tokenizer,
               *, ggml_type: str = "f16", name: str = "ftgen"
               ) -> gguf.GGUFWriter:
  """A `gguf.GGUFWriter` for `path` holding every metadata key (no tensors).

  Add the tensors with `add_tensors`, then `finish`. `write_gguf` does all
  three; ftgen/testing/gguf_writer.py uses the steps to write test files.
  """
  if ggml_type not in TYPES:
    raise GGUFExportError(f"GGUF export: type {ggml_type!r}; allowed:"
                          f" {', '.join(TYPES)}")
  arch = gguf_architecture(config)
  w = gguf.GGUFWriter(str(path), arch)
  w.add_name(name)
  w.add_file_type(_FILE_TYPES[ggml_type])
  w.add_quantization_version(gguf.GGML_QUANT_VERSION)
  _add_architecture(w, arch, config)
  _add_tokenizer(w, arch, tokenizer, config.vocab_size)
  return w


def gguf_tensor(arch: str, config: ModelConfig, hf_name: str,
                w: np.ndarray) -> tuple[str, np.ndarray]:
  """(GGUF name, float32 array in llama.cpp's layout) of one HF tensor."""
  name = gguf_lib.gguf_name(arch, hf_name)
  w = np.asarray(w, np.float32)
  if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
    w = gguf_lib.permute_rows(w, config.num_heads if ".attn_q." in name
                              else config.num_kv_heads)
  elif arch == "gemma3" and name.endswith("norm.weight"):
    w = w + np.float32(1.0)
  return name, w


def add_tensors(w: gguf.GGUFWriter, config: ModelConfig,
                tensors: Mapping[str, np.ndarray], *,
                ggml_type: str = "f16") -> None:
  """Adds HF-named float tensors to `w` in llama.cpp's names and layouts."""
  arch = gguf_architecture(config)
  for hf_name, x in tensors.items():
    name, x = gguf_tensor(arch, config, hf_name, x)
    if not np.isfinite(x).all():
      raise GGUFExportError(f"GGUF export: tensor {hf_name} has non-finite"
                            " values")
    if x.ndim == 1 or ggml_type == "f32":
      w.add_tensor(name, np.ascontiguousarray(x))
    elif ggml_type == "q8_0" and x.shape[-1] % 32 == 0:
      qtype = gguf.GGMLQuantizationType.Q8_0
      q = gguf.quants.quantize(x, qtype)
      w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
    else:
      if np.abs(x).max() > _F16_MAX:
        raise GGUFExportError(f"GGUF export: tensor {hf_name} exceeds the"
                              f" float16 range ({_F16_MAX}); use type f32")
      w.add_tensor(name, x.astype(np.float16))


def finish(w: gguf.GGUFWriter) -> None:
  """Writes the header, metadata and tensors, and closes the file."""
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()


def write_gguf(path: os.PathLike[str] | str, config: ModelConfig,
               params: Any, tokenizer, *, ggml_type: str = "f16",
               name: str = "ftgen") -> workdir_lib.AnyPath:
  """Writes `params` (the ftgen params tree) and `tokenizer` as a GGUF file.

  Args:
    path: the file to write (atomically; its directory is created).
    config: the model's `ModelConfig`.
    params: the params tree (numpy or jax arrays).
    tokenizer: its `ftgen.checkpoints.tokenizer.Tokenizer`.
    ggml_type: 'f16' | 'q8_0' | 'f32': the type of the matrices.
    name: `general.name` in the file.

  Returns:
    The path written.
  """
  path = workdir_lib.as_path(path)  # Local or gs://.
  gguf_architecture(config)  # refuse before building any tensor
  tensors = hf.hf_state_dict(config, params)
  with data_io.atomic_path(path) as tmp:
    w = new_writer(tmp, config, tokenizer, ggml_type=ggml_type, name=name)
    add_tensors(w, config, tensors, ggml_type=ggml_type)
    finish(w)
  return path


def _model_name(checkpoint: str) -> tuple[str, str]:
  """(registry model name, general.name) of a directory or a model name."""
  path = pathlib.Path(checkpoint).expanduser()
  if path.is_dir():
    for candidate in (path, path / "export"):
      if (candidate / "config.json").is_file():
        return f"hf:{candidate}", path.resolve().name
    raise GGUFExportError(
        f"checkpoint {path}: no config.json there or in {path / 'export'};"
        " give an HF export directory, a fine-tuning workdir or a model name")
  return checkpoint, checkpoint.split(":", 1)[-1].split("/")[-1]


def export_gguf(checkpoint: str, out: os.PathLike[str] | str, *,
                ggml_type: str = "f16") -> dict[str, Any]:
  """Exports a model to a GGUF file (what `launch/export.py` calls).

  Args:
    checkpoint: an HF-style directory (a fine-tuning run's WORKDIR/export,
      or the WORKDIR itself), or a model name
      (docs/design.md#model-names).
    out: the GGUF file to write.
    ggml_type: 'f16' | 'q8_0' | 'f32'.

  Returns:
    {"path", "type", "architecture", "bytes", "source"}.
  """
  if ggml_type not in TYPES:
    raise GGUFExportError(f"GGUF export: type {ggml_type!r}; allowed:"
                          f" {', '.join(TYPES)}")
  model_name, label = _model_name(checkpoint)
  loaded = registry.load_model(model_name, dtype="float32")
  path = write_gguf(out, loaded.config, loaded.params, loaded.tokenizer,
                    ggml_type=ggml_type, name=label)
  return {"path": str(path), "type": ggml_type,
          "architecture": gguf_architecture(loaded.config),
          "bytes": path.stat().st_size, "source": loaded.source}
