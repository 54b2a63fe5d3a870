"""GGUF import: a llama.cpp file -> a Hugging Face style checkpoint directory.

ftgen has one weight loader (`ftgen.checkpoints.hf`). A GGUF file is converted
once into what that loader reads: `config.json` (the transformers
architecture, with the constants the file lacks), `model.safetensors` (HF
tensor names and layouts, dequantized to float32 or bfloat16), and the
tokenizer files (`tokenizer.json`, `tokenizer_config.json` with the chat
template and special tokens). `ftgen.checkpoints.cache` keeps the result.

What the conversion undoes, as transformers' GGUF loader does:
* Llama family: llama.cpp permutes the rows of `attn_q`/`attn_k` (and their
  biases) from HF's half-split rotary layout to interleaved pairs.
* Gemma 3: llama.cpp stores every RMSNorm weight as `1 + w`; HF stores `w`.

The file is validated before anything is trusted: magic and version, every
length and count against the bytes left, each tensor's type, shape and byte
range against the file size. A malformed file raises `GGUFError` naming the
file and the problem, before any large allocation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
import struct
from typing import Any, Iterator

import gguf
import numpy as np

from ftgen.checkpoints import tokenizer as tokenizer_lib

IMPORTER_VERSION = "1"
SUPPORTED_ARCHITECTURES = ("llama", "gemma3", "qwen2")
_MAGIC = b"GGUF"
_VERSIONS = (2, 3)
_MAX_DIMS = 4
# Scalar metadata types: struct format per GGUFValueType id.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
            7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4",
          7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
  """A malformed or unsupported GGUF file; the message names the file."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  name: str
  shape: tuple[int, ...]  # numpy order (slowest first), i.e. HF's layout
  ggml_type: int
  offset: int  # absolute, from the start of the file
  nbytes: int


@dataclasses.dataclass(frozen=True)
class GGUFFile:
  """A validated GGUF header: metadata and the tensor table."""
  path: pathlib.Path
  version: int
  metadata: dict[str, Any]
  tensors: tuple[TensorInfo, ...]

  @property
  def architecture(self) -> str:
    return self.metadata["general.architecture"]

  def arch_key(self, key: str, default: Any = None) -> Any:
    return self.metadata.get(f"{self.architecture}.{key}", default)

  def tensor_names(self) -> set[str]:
    return {t.name for t in self.tensors}


class _Cursor:
  """Bounds-checked little-endian reads from a read-only byte buffer."""

  def __init__(self, buf: np.ndarray, path: pathlib.Path):
    self.buf, self.pos, self.path = buf, 0, path
    self.size = len(buf)

  def fail(self, what: str) -> GGUFError:
    return GGUFError(f"{self.path}: {what} (at byte {self.pos} of {self.size})")

  def need(self, n: int, what: str):
    if n < 0 or self.pos + n > self.size:
      raise self.fail(f"truncated or corrupt: {what} needs {n} bytes")

  def unpack(self, fmt: str, what: str):
    n = struct.calcsize(fmt)
    self.need(n, what)
    values = struct.unpack_from(fmt, self.buf, self.pos)
    self.pos += n
    return values[0] if len(values) == 1 else values

  def string(self, what: str) -> str:
    n = self.unpack("<Q", f"length of {what}")
    self.need(n, what)
    raw = bytes(self.buf[self.pos:self.pos + n])
    self.pos += n
    try:
      return raw.decode("utf-8")
    except UnicodeDecodeError:
      raise self.fail(f"{what} is not valid UTF-8") from None

  def value(self, vtype: int, key: str) -> Any:
    if vtype in _SCALARS:
      return self.unpack(_SCALARS[vtype], f"value of {key!r}")
    if vtype == _STRING:
      return self.string(f"value of {key!r}")
    if vtype == _ARRAY:
      etype, count = self.unpack("<IQ", f"array header of {key!r}")
      if etype in _SCALARS:
        width = struct.calcsize(_SCALARS[etype])
        self.need(count * width, f"array {key!r} of {count} items")
        out = np.frombuffer(self.buf, _NUMPY[etype], count, self.pos).copy()
        self.pos += count * width
        return out.astype(bool) if etype == 7 else out
      if etype == _STRING:
        # Each string takes at least its 8-byte length: reject absurd counts
        # before looping.
        self.need(count * 8, f"array {key!r} of {count} strings")
        return [self.string(f"item of {key!r}") for _ in range(count)]
      raise self.fail(f"array {key!r} has unsupported element type {etype}")
    raise self.fail(f"metadata {key!r} has unknown value type {vtype}")


def read_gguf(path: os.PathLike[str] | str) -> GGUFFile:
  """Parses and validates a GGUF file's header without reading tensor data."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"GGUF file not found: {path}")
  buf = (np.memmap(path, mode="r", dtype=np.uint8) if path.stat().st_size
         else np.zeros(0, np.uint8))
  cur = _Cursor(buf, path)
  cur.need(4, "the GGUF magic")
  if bytes(buf[:4]) != _MAGIC:
    raise GGUFError(f"{path}: not a GGUF file (magic {bytes(buf[:4])!r},"
                    f" expected {_MAGIC!r})")
  cur.pos = 4
  version = cur.unpack("<I", "version")
  if version not in _VERSIONS:
    raise GGUFError(f"{path}: GGUF version {version} is not supported"
                    f" (supported: {_VERSIONS})")
  n_tensors, n_kv = cur.unpack("<QQ", "tensor and metadata counts")
  # The smallest metadata entry and tensor entry are 13 and 28 bytes.
  if n_kv * 13 + n_tensors * 28 > cur.size:
    raise GGUFError(f"{path}: header claims {n_kv} metadata entries and"
                    f" {n_tensors} tensors, more than a {cur.size}-byte file"
                    " can hold (truncated or corrupt)")
  metadata: dict[str, Any] = {}
  for _ in range(n_kv):
    key = cur.string("metadata key")
    vtype = cur.unpack("<I", f"type of {key!r}")
    metadata[key] = cur.value(vtype, key)
  alignment = int(metadata.get("general.alignment", 32))
  if alignment <= 0 or alignment & (alignment - 1):
    raise GGUFError(
        f"{path}: general.alignment={alignment} is not a power of two")

  raw = []
  for _ in range(n_tensors):
    name = cur.string("tensor name")
    n_dims = cur.unpack("<I", f"rank of tensor {name!r}")
    if not 1 <= n_dims <= _MAX_DIMS:
      raise cur.fail(
          f"tensor {name!r} has rank {n_dims} (allowed 1..{_MAX_DIMS})")
    dims = cur.unpack(f"<{n_dims}Q", f"shape of {name!r}")
    dims = (dims,) if n_dims == 1 else tuple(dims)
    ggml_type, offset = cur.unpack("<IQ", f"type and offset of {name!r}")
    raw.append((name, dims, ggml_type, offset))
  data_start = -(-cur.pos // alignment) * alignment

  tensors = []
  for name, dims, ggml_type, offset in raw:
    try:
      qtype = gguf.GGMLQuantizationType(ggml_type)
      block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
      raise GGUFError(f"{path}: tensor {name!r} has unknown ggml type"
                      f" {ggml_type}") from None
    if any(d <= 0 for d in dims) or dims[0] % block:
      raise GGUFError(f"{path}: tensor {name!r} has invalid shape {dims[::-1]}"
                      f" for {qtype.name} (row length must be a multiple of"
                      f" {block})")
    nbytes = math.prod(dims) // block * type_size
    start = data_start + offset
    if offset % alignment or start + nbytes > cur.size:
      raise GGUFError(
          f"{path}: tensor {name!r} ({qtype.name}, {nbytes} bytes at offset"
          f" {offset}) lies outside the {cur.size}-byte file or is misaligned"
          " (truncated or corrupt)")
    tensors.append(
        TensorInfo(name, tuple(reversed(dims)), ggml_type, start, nbytes))
  if "general.architecture" not in metadata:
    raise GGUFError(f"{path}: metadata has no general.architecture")
  return GGUFFile(path, version, metadata, tuple(tensors))


def dequantized(gf: GGUFFile) -> Iterator[tuple[str, np.ndarray]]:
  """Yields (GGUF name, float32 array in numpy/HF layout) for every tensor."""
  buf = np.memmap(gf.path, mode="r", dtype=np.uint8)
  for t in gf.tensors:
    qtype = gguf.GGMLQuantizationType(t.ggml_type)
    rows = math.prod(t.shape[:-1])
    data = np.asarray(buf[t.offset:t.offset + t.nbytes]).reshape(
        rows, t.nbytes // rows)
    try:
      w = gguf.quants.dequantize(data, qtype)
    except NotImplementedError:
      raise GGUFError(f"{gf.path}: tensor {t.name!r} uses {qtype.name},"
                      " which gguf cannot dequantize") from None
    yield t.name, np.asarray(w, np.float32).reshape(t.shape)


# ----------------------------------------------------------------------------
# Config: GGUF metadata -> transformers config.json.

def _float(x) -> float:
  # GGUF stores float32: 1e-5 arrives as 9.99999974e-06. Keep the short form.
  return float(str(np.float32(x)))


def _token_ids(gf: GGUFFile) -> dict[str, Any]:
  m = gf.metadata
  return {
      "bos_token_id": m.get("tokenizer.ggml.bos_token_id"),
      "eos_token_id": m.get("tokenizer.ggml.eos_token_id"),
      "pad_token_id": m.get("tokenizer.ggml.padding_token_id"),
  }


def _count(gf: GGUFFile, key: str, default: Any = None) -> int:
  """`{arch}.{key}` as a positive integer (`default` when absent).

  A zero, negative or non-integer count would divide by zero or build a
  model with no layers later; it is refused here, before any allocation
  (docs/design.md#reliability).
  """
  value = gf.arch_key(key)
  if value is None:
    if default is None:
      raise GGUFError(f"{gf.path}: metadata lacks {gf.architecture}.{key}")
    return default
  if (isinstance(value, (bool, np.bool_))
      or not isinstance(value, (int, np.integer)) or value < 1):
    raise GGUFError(f"{gf.path}: metadata {gf.architecture}.{key}={value!r}"
                    " must be a positive integer")
  return int(value)


def _vocab_size(gf: GGUFFile, hidden: int) -> int:
  """The vocabulary size, checked against the token list and embedding."""
  tokens = gf.metadata.get("tokenizer.ggml.tokens")
  embd = next((t for t in gf.tensors if t.name == "token_embd.weight"), None)
  if embd is not None and (len(embd.shape) != 2 or embd.shape[1] != hidden):
    raise GGUFError(f"{gf.path}: tensor token_embd.weight has shape"
                    f" {list(embd.shape)}; expected [vocab, {hidden}]"
                    f" ({gf.architecture}.embedding_length={hidden})")
  sizes = {}
  if gf.arch_key("vocab_size") is not None:
    sizes[f"{gf.architecture}.vocab_size"] = _count(gf, "vocab_size")
  if tokens is not None:
    sizes["tokenizer.ggml.tokens (count)"] = len(tokens)
  if embd is not None:
    sizes["token_embd.weight rows"] = embd.shape[0]
  if not sizes:
    raise GGUFError(f"{gf.path}: no vocabulary size (no vocab_size, no"
                    " tokenizer.ggml.tokens, no token_embd.weight)")
  if len(set(sizes.values())) > 1 or min(sizes.values()) < 1:
    raise GGUFError(f"{gf.path}: vocabulary sizes disagree: " + ", ".join(
        f"{k}={v}" for k, v in sizes.items()))
  return next(iter(sizes.values()))


def _common(gf: GGUFFile) -> dict[str, Any]:
  def need(key):
    value = gf.arch_key(key)
    if value is None:
      raise GGUFError(f"{gf.path}: metadata lacks {gf.architecture}.{key}")
    return value
  heads = _count(gf, "attention.head_count")
  hidden = _count(gf, "embedding_length")
  kv_heads = _count(gf, "attention.head_count_kv", heads)
  if heads % kv_heads:
    raise GGUFError(
        f"{gf.path}: metadata {gf.architecture}.attention.head_count_kv="
        f"{kv_heads} must divide {gf.architecture}.attention.head_count="
        f"{heads}")
  head_dim = (_count(gf, "attention.key_length", 0) or
              _count(gf, "rope.dimension_count", 0) or hidden // heads)
  if head_dim < 1:
    raise GGUFError(
        f"{gf.path}: metadata {gf.architecture}.attention.head_count={heads}"
        f" exceeds {gf.architecture}.embedding_length={hidden} (head size 0)")
  shapes = {t.name: t.shape for t in gf.tensors}
  for name, n, key in (("attn_q", heads, "head_count"),
                       ("attn_k", kv_heads, "head_count_kv")):
    shape = shapes.get(f"blk.0.{name}.weight")
    if shape is not None and shape[0] != n * head_dim:
      raise GGUFError(
          f"{gf.path}: tensor blk.0.{name}.weight has {shape[0]} rows but"
          f" {gf.architecture}.attention.{key}={n} x head size {head_dim}"
          f" = {n * head_dim}")
  return {
      "vocab_size": _vocab_size(gf, hidden),
      "hidden_size": hidden,
      "intermediate_size": _count(gf, "feed_forward_length"),
      "num_hidden_layers": _count(gf, "block_count"),
      "num_attention_heads": heads,
      "num_key_value_heads": kv_heads,
      "head_dim": head_dim,
      "max_position_embeddings": _count(gf, "context_length", 2048),
      "rms_norm_eps": _float(need("attention.layer_norm_rms_epsilon")),
      "tie_word_embeddings": "output.weight" not in gf.tensor_names(),
      **_token_ids(gf),
  }


def _rope_scaling(gf: GGUFFile) -> dict[str, Any] | None:
  kind = gf.arch_key("rope.scaling.type")
  if kind in (None, "none"):
    if "rope_freqs.weight" in gf.tensor_names():
      # Llama 3.1-style scaling is baked into a frequency tensor whose
      # parameters the file does not state.
      raise GGUFError(f"{gf.path}: Llama 3.x rope scaling (rope_freqs) is not"
                      " supported from GGUF; load the Hugging Face directory"
                      " with hf:PATH")
    return None
  if kind == "linear":
    return {"rope_type": "linear",
            "factor": _float(gf.arch_key("rope.scaling.factor"))}
  raise GGUFError(f"{gf.path}: rope scaling type {kind!r} is not supported"
                  " (allowed: linear)")


def _llama_config(gf: GGUFFile) -> dict[str, Any]:
  cfg = _common(gf)
  cfg.update({
      "architectures": ["LlamaForCausalLM"],
      "model_type": "llama",
      "hidden_act": "silu",
      "rope_theta": _float(gf.arch_key("rope.freq_base", 10000.0)),
      "rope_scaling": _rope_scaling(gf),
      "attention_bias": "blk.0.attn_q.bias" in gf.tensor_names(),
      "mlp_bias": False,
  })
  return cfg


def _qwen2_config(gf: GGUFFile) -> dict[str, Any]:
  cfg = _common(gf)
  cfg.update({
      "architectures": ["Qwen2ForCausalLM"],
      "model_type": "qwen2",
      "hidden_act": "silu",
      "rope_theta": _float(gf.arch_key("rope.freq_base", 1000000.0)),
      "rope_scaling": _rope_scaling(gf),
      "use_sliding_window": False,
  })
  return cfg


# Constants of Gemma 3 that llama.cpp hard-codes instead of writing to the file.
GEMMA3_ROPE_LOCAL_BASE = 10000.0
GEMMA3_SLIDING_WINDOW_PATTERN = 6  # every 6th layer is global


def _gemma3_config(gf: GGUFFile) -> dict[str, Any]:
  cfg = _common(gf)
  n_layers = cfg["num_hidden_layers"]
  pattern = gf.arch_key("attention.sliding_window_pattern")
  if pattern is not None and np.ndim(pattern) == 1 and len(pattern) == n_layers:
    # Newer llama.cpp writes one flag per layer (True = sliding).
    layer_types = ["sliding_attention" if s else "full_attention"
                   for s in pattern]
  else:
    layer_types = ["full_attention"
                   if (i + 1) % GEMMA3_SLIDING_WINDOW_PATTERN == 0
                   else "sliding_attention" for i in range(n_layers)]
  # llama.cpp scales queries by hidden/heads for the 27B model (62 layers),
  # by 1/sqrt(head_dim) otherwise; transformers calls that
  # query_pre_attn_scalar.
  scalar = (cfg["hidden_size"] // cfg["num_attention_heads"] if n_layers == 62
            else cfg["head_dim"])
  cfg.update({
      "architectures": ["Gemma3ForCausalLM"],
      "model_type": "gemma3_text",
      "hidden_activation": "gelu_pytorch_tanh",
      "rope_theta": _float(gf.arch_key("rope.freq_base", 1000000.0)),
      "rope_local_base_freq": GEMMA3_ROPE_LOCAL_BASE,
      "rope_scaling": _rope_scaling(gf),
      "sliding_window": int(gf.arch_key("attention.sliding_window", 4096)),
      "sliding_window_pattern": GEMMA3_SLIDING_WINDOW_PATTERN,
      "layer_types": layer_types,
      "query_pre_attn_scalar": scalar,
      "attention_bias": False,
      "attn_logit_softcapping": None,
      "final_logit_softcapping": None,
  })
  return cfg


_CONFIGS = {"llama": _llama_config, "gemma3": _gemma3_config,
            "qwen2": _qwen2_config}


def hf_config(gf: GGUFFile) -> dict[str, Any]:
  """The transformers `config.json` dict for a supported GGUF file."""
  arch = gf.architecture
  if arch not in _CONFIGS:
    raise GGUFError(f"{gf.path}: GGUF architecture {arch!r} is not supported"
                    f" (supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
  return _CONFIGS[arch](gf)


# ----------------------------------------------------------------------------
# Tensors: GGUF names and layouts -> HF names and layouts (a table per family).

_TOP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LLAMA_BLOCK = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GEMMA3_BLOCK = dict(_LLAMA_BLOCK) | {
    "ffn_norm.weight": "pre_feedforward_layernorm.weight",
    "post_attention_norm.weight": "post_attention_layernorm.weight",
    "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
}
_BLOCKS = {"llama": _LLAMA_BLOCK, "qwen2": _LLAMA_BLOCK,
           "gemma3": _GEMMA3_BLOCK}
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")


def hf_name(arch: str, name: str) -> str | None:
  """The HF tensor name of GGUF tensor `name`, None for tensors to skip."""
  if name in _TOP:
    return _TOP[name]
  if name == "rope_freqs.weight":
    return None  # rejected by _rope_scaling when it matters
  m = _BLOCK_RE.match(name)
  if m and m.group(2) in _BLOCKS[arch]:
    return f"model.layers.{m.group(1)}.{_BLOCKS[arch][m.group(2)]}"
  raise KeyError(name)


def gguf_name(arch: str, name: str) -> str:
  """The GGUF tensor name of HF tensor `name`: `hf_name`'s tables, inverted.

  One table serves import and export (ftgen.checkpoints.gguf_export).
  """
  top = {h: g for g, h in _TOP.items()}
  if name in top:
    return top[name]
  m = re.match(r"^model\.layers\.(\d+)\.(.+)$", name)
  block = {h: g for g, h in _BLOCKS[arch].items()}
  if m and m.group(2) in block:
    return f"blk.{m.group(1)}.{block[m.group(2)]}"
  raise KeyError(name)


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
  """Undoes llama.cpp's rotary row permutation of a q/k weight or bias.

  llama.cpp reorders each head's rows from HF's [first half | second half]
  to interleaved pairs: reshape (n_head, 2, H/2) -> swap -> (n_head, H/2, 2).
  """
  rows = w.shape[0]
  h2 = rows // n_head // 2
  return w.reshape(n_head, h2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
  """llama.cpp's permutation (the inverse of `unpermute_rows`); for export."""
  h2 = w.shape[0] // n_head // 2
  return w.reshape(n_head, 2, h2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_tensors(gf: GGUFFile,
               config: dict[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
  """Yields (HF name, float32 array) with llama.cpp's transforms undone."""
  arch = gf.architecture
  for name, w in dequantized(gf):
    try:
      target = hf_name(arch, name)
    except KeyError:
      raise GGUFError(f"{gf.path}: unexpected tensor {name!r} for"
                      f" architecture {arch!r}") from None
    if target is None:
      continue
    if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
      heads = config["num_attention_heads" if ".attn_q." in name
                     else "num_key_value_heads"]
      w = unpermute_rows(w, heads)
    elif arch == "gemma3" and name.endswith("norm.weight"):
      w = w - np.float32(1.0)
    yield target, w


# ----------------------------------------------------------------------------
# Tokenizer: GGUF metadata -> ftgen Tokenizer.

# Gemma 3's chat template (strings only), for GGUF files that carry none.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate"
    " user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant'"
    " else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n'"
    " + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}"
    "{%- endif -%}"
)


def tokenizer_from_gguf(
    gf: GGUFFile | os.PathLike[str] | str) -> tokenizer_lib.Tokenizer:
  """Builds the tokenizer a GGUF file describes (no torch needed).

  Cache it with `Tokenizer.save`: `import_gguf` does.

  Args:
    gf: a `GGUFFile`, or the path of a GGUF file.
  """
  # transformers and tokenizers load in about a second: imported here so
  # that reading a GGUF header (ftgen.data.vocab does) stays cheap.
  from tokenizers import Tokenizer as Backend  # pylint: disable=g-import-not-at-top
  from tokenizers import processors  # pylint: disable=g-import-not-at-top
  from transformers import PreTrainedTokenizerFast  # pylint: disable=g-import-not-at-top
  from transformers.integrations.gguf import gguf_tokenizer_mapping as mapping  # pylint: disable=g-import-not-at-top

  if not isinstance(gf, GGUFFile):
    gf = read_gguf(gf)
  meta = gf.metadata
  spec = {name: meta[f"tokenizer.{key}"]
          for key, name in mapping.GGUF_TOKENIZER_MAPPING["tokenizer"].items()
          if f"tokenizer.{key}" in meta}
  if "tokens" not in spec:
    raise GGUFError(f"{gf.path}: no tokenizer.ggml.tokens metadata;"
                    " cannot build a tokenizer")
  for key in ("scores", "token_type"):
    if key in spec:
      spec[key] = spec[key].tolist()
  try:
    backend, _ = mapping.convert_gguf_tokenizer(gf.architecture, spec)
  except ValueError as e:
    raise GGUFError(f"{gf.path}: {e}") from None
  tokens = spec["tokens"]
  if backend.get_vocab_size(with_added_tokens=True) > len(tokens):
    # transformers' builders add their class defaults (GPT-2's
    # <|endoftext|>) when the file lacks them: ids the model has no
    # embedding for. Drop them.
    state = json.loads(backend.to_str())
    state["added_tokens"] = [t for t in state.get("added_tokens", [])
                             if t["id"] < len(tokens)]
    backend = Backend.from_str(json.dumps(state))

  def special(key):
    i = spec.get(key)
    return tokens[i] if i is not None and 0 <= i < len(tokens) else None

  bos, eos = special("bos_token_id"), special("eos_token_id")
  add_bos = meta.get("tokenizer.ggml.add_bos_token")
  if add_bos is None:  # llama.cpp's default for sentencepiece vocabularies
    add_bos = spec.get("tokenizer_type") == "llama"
  add_bos = bool(add_bos) and bos is not None
  if add_bos:
    # Make tokenizer.json self-describing for other tools (AutoTokenizer).
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
        special_tokens=[(bos, spec["bos_token_id"])])
  template = meta.get("tokenizer.chat_template")
  if (template is None and "<start_of_turn>" in tokens[:1024] and
      gf.architecture.startswith("gemma")):
    template = GEMMA_CHAT_TEMPLATE
  hf = PreTrainedTokenizerFast(
      tokenizer_object=backend, bos_token=bos, eos_token=eos,
      unk_token=special("unk_token_id"), pad_token=special("pad_token_id"),
      chat_template=template)
  return tokenizer_lib.Tokenizer(hf, add_bos=add_bos)


# ----------------------------------------------------------------------------
# The whole import.

_DTYPES = ("float32", "bfloat16")


def _np_dtype(dtype: str):
  if dtype == "float32":
    return np.float32
  if dtype == "bfloat16":
    import ml_dtypes  # pylint: disable=g-import-not-at-top
    return ml_dtypes.bfloat16
  raise ValueError(
      f"dtype {dtype!r} not supported for import; allowed: {_DTYPES}")


def import_gguf(path: os.PathLike[str] | str, out_dir: os.PathLike[str] | str,
                *, dtype: str = "float32") -> dict[str, Any]:
  """Converts a GGUF file into an HF directory `out_dir`; returns the config."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top

  np_dtype = _np_dtype(dtype)
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  gf = read_gguf(path)
  config = hf_config(gf)
  config["torch_dtype"] = dtype
  config["ftgen_source"] = {"gguf": str(gf.path),
                            "importer_version": IMPORTER_VERSION}

  tensors = {}
  for name, w in hf_tensors(gf, config):
    tensors[name] = np.ascontiguousarray(w.astype(np_dtype, copy=False))
  missing = {"model.embed_tokens.weight", "model.norm.weight"} - set(tensors)
  if missing:
    raise GGUFError(f"{gf.path}: missing tensors {sorted(missing)}")
  save_file(tensors, str(out_dir / "model.safetensors"),
            metadata={"format": "pt"})
  del tensors

  tok = tokenizer_from_gguf(gf)
  tok.save(out_dir)
  config["eos_token_id"] = (list(tok.eos_ids) if len(tok.eos_ids) > 1
                            else config["eos_token_id"])
  with open(out_dir / "config.json", "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
  with open(out_dir / "generation_config.json", "w", encoding="utf-8") as f:
    json.dump({"bos_token_id": config["bos_token_id"],
               "eos_token_id": list(tok.eos_ids),
               "pad_token_id": config["pad_token_id"]}, f, indent=2)
  return config
