"""Model configuration: one frozen dataclass for every decoder family.

`ModelConfig` describes the Llama family (Llama 2/3.x, SmolLM2, Mistral,
Qwen2 with qkv bias), Gemma 3 (text) and Gemma 2. It reads and writes
Hugging Face `config.json` dicts (transformers 4 and 5 spellings of the rope
parameters), counts parameters analytically and derives the per-layer
constants (rope frequencies, attention windows) that the scanned decoder
consumes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

FAMILIES = ("llama", "gemma3", "gemma2")
DTYPES = ("float32", "bfloat16")
ROPE_SCALING_TYPES = ("llama3", "linear")
# HF `model_type` -> our family.
_MODEL_TYPES = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "gemma3_text": "gemma3",
    "gemma3": "gemma3",
    "gemma2": "gemma2",
}
SUPPORTED_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Gemma3ForCausalLM",
    "Gemma3ForConditionalGeneration (text part only)",
    "Gemma2ForCausalLM",
)
# A window wider than any sequence: what global layers use.
GLOBAL_WINDOW = 2**30


def _freeze(
    mapping: Mapping[str, Any] | None) -> tuple[tuple[str, Any], ...] | None:
  """A hashable, order-independent form of a small mapping."""
  if mapping is None:
    return None
  return tuple(sorted((str(k), v) for k, v in dict(mapping).items()))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of a decoder-only transformer.

  Attributes:
    family: 'llama' | 'gemma3' | 'gemma2'.
    vocab_size: V.
    embed_dim: model width D.
    num_layers: L.
    num_heads: query heads N.
    num_kv_heads: key/value heads K (N % K == 0).
    head_dim: H.
    mlp_dim: MLP hidden width F.
    rope_theta: rope base of global layers (all layers for Llama).
    rope_local_theta: rope base of Gemma 3 local (sliding) layers.
    rope_scaling: None or frozen ((key, value), ...) with 'rope_type' in
      ('llama3', 'linear') and the type's parameters; applies to global
      layers only (Gemma 3 local layers never scale).
    norm_eps: RMSNorm epsilon.
    tie_embeddings: output projection is the transposed embedding.
    qkv_bias: q/k/v projections carry biases (Qwen2).
    sliding_window: None or the window of local layers (a query attends to
      keys whose position distance is < sliding_window).
    sliding_window_pattern: None (every layer local when sliding_window is
      set, as Mistral) or p: layer i is global iff (i + 1) % p == 0 (Gemma 3:
      6, Gemma 2: 2).
    query_pre_attn_scalar: attention scores scale as its -1/2 power (None:
      head_dim).
    attn_logit_softcap: None or c: scores -> c * tanh(scores / c) (Gemma 2).
    final_logit_softcap: None or c, applied to the output logits (Gemma 2).
    max_seq_len: the model's trained context (HF max_position_embeddings).
    bos_token_id, eos_token_ids, pad_token_id: special token ids.
    param_dtype: dtype params are stored in.
    dtype: compute dtype of activations (logits are always float32).
  """

  family: str = "llama"
  vocab_size: int = 256
  embed_dim: int = 64
  num_layers: int = 2
  num_heads: int = 4
  num_kv_heads: int = 2
  head_dim: int = 16
  mlp_dim: int = 128
  rope_theta: float = 10_000.0
  rope_local_theta: float | None = None
  rope_scaling: tuple[tuple[str, Any], ...] | None = None
  norm_eps: float = 1e-5
  tie_embeddings: bool = True
  qkv_bias: bool = False
  sliding_window: int | None = None
  sliding_window_pattern: int | None = None
  query_pre_attn_scalar: float | None = None
  attn_logit_softcap: float | None = None
  final_logit_softcap: float | None = None
  max_seq_len: int = 2048
  bos_token_id: int | None = None
  eos_token_ids: tuple[int, ...] = ()
  pad_token_id: int | None = None
  param_dtype: str = "float32"
  dtype: str = "float32"

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(
          f"ModelConfig.family={self.family!r}; allowed: {FAMILIES}")
    for name in ("param_dtype", "dtype"):
      if getattr(self, name) not in DTYPES:
        raise ValueError(
            f"ModelConfig.{name}={getattr(self, name)!r}; allowed: {DTYPES}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f"ModelConfig.num_heads={self.num_heads} is not a multiple of "
          f"num_kv_heads={self.num_kv_heads}")
    if self.head_dim % 2:
      raise ValueError(
          f"ModelConfig.head_dim={self.head_dim} must be even (rope)")
    if isinstance(self.rope_scaling, Mapping):
      object.__setattr__(self, "rope_scaling", _freeze(self.rope_scaling))
    if self.rope_scaling is not None:
      rope_type = self.rope_scaling_dict()["rope_type"]
      if rope_type not in ROPE_SCALING_TYPES:
        raise ValueError(
            f"ModelConfig.rope_scaling rope_type={rope_type!r}; allowed: "
            f"{ROPE_SCALING_TYPES} (or None)")
    if isinstance(self.eos_token_ids, int):
      object.__setattr__(self, "eos_token_ids", (self.eos_token_ids,))
    else:
      object.__setattr__(self, "eos_token_ids", tuple(self.eos_token_ids))

  # ---------------------------------------------------------------- helpers

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)

  def rope_scaling_dict(self) -> dict[str, Any] | None:
    return None if self.rope_scaling is None else dict(self.rope_scaling)

  @property
  def is_gemma(self) -> bool:
    return self.family in ("gemma2", "gemma3")

  @property
  def attn_scale(self) -> float:
    scalar = self.query_pre_attn_scalar or self.head_dim
    return float(scalar) ** -0.5

  def layer_is_global(self) -> np.ndarray:
    """[L] bool: which layers attend without a sliding window."""
    idx = np.arange(self.num_layers)
    if self.sliding_window is None:
      return np.ones(self.num_layers, bool)
    if self.sliding_window_pattern is None:
      return np.zeros(self.num_layers, bool)
    return (idx + 1) % self.sliding_window_pattern == 0

  def layer_windows(self) -> np.ndarray:
    """[L] int32 attention window per layer (GLOBAL_WINDOW for global)."""
    glob = self.layer_is_global()
    window = self.sliding_window or GLOBAL_WINDOW
    return np.where(glob, GLOBAL_WINDOW, window).astype(np.int32)

  def layer_inv_freq(self) -> np.ndarray:
    """[L, H/2] float32 rope inverse frequencies per layer."""
    glob = rope_inv_freq(self.head_dim, self.rope_theta,
                         self.rope_scaling_dict())
    if self.family == "gemma3":
      local_theta = self.rope_local_theta or 10_000.0
      loc = rope_inv_freq(self.head_dim, local_theta, None)
      return np.where(self.layer_is_global()[:, None], glob[None], loc[None])
    return np.tile(glob[None], (self.num_layers, 1))

  def num_params(self) -> int:
    """Analytic parameter count (matches the params tree)."""
    d, n, k, h, f = (self.embed_dim, self.num_heads, self.num_kv_heads,
                     self.head_dim, self.mlp_dim)
    per_layer = d * n * h + 2 * d * k * h + n * h * d + 3 * d * f
    if self.qkv_bias:
      per_layer += n * h + 2 * k * h
    per_layer += (4 if self.is_gemma else 2) * d
    if self.family == "gemma3":
      per_layer += 2 * h
    total = self.vocab_size * d + self.num_layers * per_layer + d
    if not self.tie_embeddings:
      total += d * self.vocab_size
    return total

  # ----------------------------------------------------------- HF configs

  @classmethod
  def from_hf_config(cls, hf: Mapping[str, Any], **overrides) -> "ModelConfig":
    """Builds a config from a Hugging Face `config.json` dict."""
    hf = dict(hf)
    model_type = hf.get("model_type")
    archs = hf.get("architectures") or []
    if model_type == "gemma3" or "Gemma3ForConditionalGeneration" in archs:
      # Multimodal Gemma 3: the text decoder's config is nested.
      text = dict(hf.get("text_config") or {})
      text.setdefault("model_type", "gemma3_text")
      hf = text
      model_type = "gemma3_text"
    if model_type not in _MODEL_TYPES:
      raise ValueError(
          f"Unsupported model: model_type={model_type!r}, architectures="
          f"{archs}; supported architectures: "
          f"{', '.join(SUPPORTED_ARCHITECTURES)}")
    family = _MODEL_TYPES[model_type]
    if family == "gemma3":
      hf = {**_GEMMA3_TEXT_DEFAULTS, **hf}
    if hf.get("mlp_bias"):
      raise ValueError(f"{model_type}: mlp_bias=True is not supported")
    if model_type != "qwen2" and hf.get("attention_bias") and family == "llama":
      raise ValueError(
          f"{model_type}: attention_bias=True (bias on q/k/v/o) is not "
          "supported; Qwen2-style qkv bias is (model_type 'qwen2')")

    d = int(hf["hidden_size"])
    n = int(hf["num_attention_heads"])
    head_dim = int(hf.get("head_dim") or d // n)
    theta, local_theta, scaling = _read_rope(hf, family)

    sliding_window = hf.get("sliding_window")
    pattern = None
    num_layers = int(hf["num_hidden_layers"])
    if model_type == "qwen2" and not hf.get("use_sliding_window", False):
      sliding_window = None
    if family in ("gemma2", "gemma3"):
      default = 6 if family == "gemma3" else 2
      pattern = int(hf.get("sliding_window_pattern")
                    or hf.get("_sliding_window_pattern") or default)
      layer_types = hf.get("layer_types")
      if layer_types is not None:
        pattern = _pattern_from_layer_types(layer_types, pattern)
    if sliding_window is not None:
      sliding_window = int(sliding_window)

    eos = hf.get("eos_token_id")
    eos = (() if eos is None else
           (eos,) if isinstance(eos, int) else tuple(eos))
    defaults = {
        "family": family,
        "vocab_size": int(hf["vocab_size"]),
        "embed_dim": d,
        "num_layers": num_layers,
        "num_heads": n,
        "num_kv_heads": int(hf.get("num_key_value_heads") or n),
        "head_dim": head_dim,
        "mlp_dim": int(hf["intermediate_size"]),
        "rope_theta": float(theta),
        "rope_local_theta": None if local_theta is None else float(local_theta),
        "rope_scaling": scaling,
        "norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
        "tie_embeddings": bool(hf.get(
            "tie_word_embeddings", family != "llama")),
        "qkv_bias": model_type == "qwen2",
        "sliding_window": sliding_window,
        "sliding_window_pattern": pattern,
        "query_pre_attn_scalar": (float(hf["query_pre_attn_scalar"])
                                  if family != "llama" else None),
        "attn_logit_softcap": hf.get("attn_logit_softcapping"),
        "final_logit_softcap": hf.get("final_logit_softcapping"),
        "max_seq_len": int(hf.get("max_position_embeddings") or 2048),
        "bos_token_id": hf.get("bos_token_id"),
        "eos_token_ids": eos,
        "pad_token_id": hf.get("pad_token_id"),
    }
    defaults.update(overrides)
    return cls(**defaults)

  def to_hf_config(self) -> dict[str, Any]:
    """A transformers 5 `config.json` dict (for export)."""
    model_type, arch = {
        "llama": (("qwen2", "Qwen2ForCausalLM") if self.qkv_bias else
                  ("mistral", "MistralForCausalLM") if self.sliding_window
                  else ("llama", "LlamaForCausalLM")),
        "gemma3": ("gemma3_text", "Gemma3ForCausalLM"),
        "gemma2": ("gemma2", "Gemma2ForCausalLM"),
    }[self.family]
    global_rope = {"rope_type": "default", "rope_theta": self.rope_theta}
    if self.rope_scaling is not None:
      global_rope.update(self.rope_scaling_dict())
    eos = list(self.eos_token_ids)
    out: dict[str, Any] = {
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": self.vocab_size,
        "hidden_size": self.embed_dim,
        "intermediate_size": self.mlp_dim,
        "num_hidden_layers": self.num_layers,
        "num_attention_heads": self.num_heads,
        "num_key_value_heads": self.num_kv_heads,
        "head_dim": self.head_dim,
        "rms_norm_eps": self.norm_eps,
        "tie_word_embeddings": self.tie_embeddings,
        "max_position_embeddings": self.max_seq_len,
        "bos_token_id": self.bos_token_id,
        "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
        "pad_token_id": self.pad_token_id,
        "torch_dtype": self.param_dtype,
    }
    if self.family == "llama":
      if self.sliding_window is not None and self.sliding_window_pattern:
        raise ValueError(
            "Llama-family configs support a sliding window on every layer "
            "(Mistral) only; got sliding_window_pattern="
            f"{self.sliding_window_pattern}")
      out["hidden_act"] = "silu"
      out["rope_parameters"] = global_rope
      if model_type == "qwen2":
        out["use_sliding_window"] = self.sliding_window is not None
      out["sliding_window"] = self.sliding_window
    else:
      out["hidden_activation"] = "gelu_pytorch_tanh"
      scalar = self.query_pre_attn_scalar or self.head_dim
      out["query_pre_attn_scalar"] = (int(scalar) if float(scalar).is_integer()
                                       else scalar)
      out["sliding_window"] = self.sliding_window
      out["sliding_window_pattern"] = self.sliding_window_pattern
      out["layer_types"] = [
          "full_attention" if g else "sliding_attention"
          for g in self.layer_is_global()]
      out["attn_logit_softcapping"] = self.attn_logit_softcap
      out["final_logit_softcapping"] = self.final_logit_softcap
      if self.family == "gemma3":
        out["rope_parameters"] = {
            "full_attention": global_rope,
            "sliding_attention": {
                "rope_type": "default",
                "rope_theta": self.rope_local_theta or 10_000.0},
        }
      else:
        out["rope_parameters"] = global_rope
    return out


_GEMMA3_TEXT_DEFAULTS = {
    "vocab_size": 262_208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "rms_norm_eps": 1e-6,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "max_position_embeddings": 131_072,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
}


def _read_rope(hf: Mapping[str, Any], family: str):
  """(global theta, local theta, frozen scaling) from either HF spelling."""
  params = hf.get("rope_parameters")
  local_theta = None
  if params is not None and family == "gemma3" and "full_attention" in params:
    glob = dict(params["full_attention"])
    local_theta = params.get("sliding_attention", {}).get(
        "rope_theta", 10_000.0)
  elif params is not None:
    glob = dict(params)
  else:  # transformers 4: rope_theta + rope_scaling (+ rope_local_base_freq).
    glob = dict(hf.get("rope_scaling") or {})
    glob["rope_theta"] = hf.get("rope_theta", 10_000.0)
    if family == "gemma3":
      local_theta = hf.get("rope_local_base_freq", 10_000.0)
  if family == "gemma3" and local_theta is None:
    local_theta = 10_000.0
  theta = glob.pop("rope_theta", None) or (
      1_000_000.0 if family == "gemma3" else 10_000.0)
  rope_type = glob.pop("rope_type", None) or glob.pop("type", None) or "default"
  if rope_type == "default":
    return theta, local_theta, None
  if rope_type == "llama3":
    keys = ("factor", "low_freq_factor", "high_freq_factor",
            "original_max_position_embeddings")
  elif rope_type == "linear":
    keys = ("factor",)
  else:
    raise ValueError(
        f"Unsupported rope type {rope_type!r}; supported: default, "
        f"{', '.join(ROPE_SCALING_TYPES)}")
  missing = [k for k in keys if k not in glob]
  if missing:
    raise ValueError(f"rope scaling {rope_type!r} lacks {missing}")
  scaling = {"rope_type": rope_type, **{k: float(glob[k]) for k in keys}}
  return theta, local_theta, _freeze(scaling)


def _pattern_from_layer_types(layer_types, default: int) -> int | None:
  """The p with layer i global iff (i + 1) % p == 0, checked against HF."""
  glob = [t == "full_attention" for t in layer_types]
  for t in layer_types:
    if t not in ("full_attention", "sliding_attention"):
      raise ValueError(f"Unsupported layer type {t!r}; allowed: "
                       "'full_attention', 'sliding_attention'")
  if all(glob):
    # No local layer: a pattern of 1 makes every layer global.
    return 1
  candidates = [default] + list(range(2, len(glob) + 2))
  for p in candidates:
    if glob == [(i + 1) % p == 0 for i in range(len(glob))]:
      return p
  raise ValueError(
      f"layer_types {layer_types} do not follow a 'global every p-th layer' "
      "pattern; only periodic patterns are supported")


def rope_inv_freq(head_dim: int, theta: float,
                  scaling: Mapping[str, Any] | None) -> np.ndarray:
  """[H/2] float32 inverse frequencies, as transformers computes them."""
  exponent = (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) /
              np.float32(head_dim))
  inv_freq = (np.float32(1.0) /
              (np.float32(theta) ** exponent)).astype(np.float32)
  if scaling is None:
    return inv_freq
  rope_type = scaling["rope_type"]
  factor = np.float32(scaling["factor"])
  if rope_type == "linear":
    return (inv_freq / factor).astype(np.float32)
  # Llama 3.x: scale low frequencies, keep high ones, blend in between.
  low = np.float32(scaling["low_freq_factor"])
  high = np.float32(scaling["high_freq_factor"])
  old_len = np.float32(scaling["original_max_position_embeddings"])
  low_wavelen = old_len / low
  high_wavelen = old_len / high
  wavelen = np.float32(2 * math.pi) / inv_freq
  scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
  smooth = (old_len / wavelen - low) / (high - low)
  smoothed = (1 - smooth) * scaled / factor + smooth * scaled
  medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
  return np.where(medium, smoothed, scaled).astype(np.float32)
