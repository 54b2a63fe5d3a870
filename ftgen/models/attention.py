"""Grouped-query attention with rope, KV cache writes and a shared prefix.

Shape letters: B batch, T query length, S key length (own tokens or cache
slots), P shared-prefix length, D width, N query heads, K kv heads, G = N/K
query heads per kv head, H head dim.

The attention itself (visibility rules, kernels) is attention_ops.py. A
layer's cache is [B,K,S,H]: a decode step writes one slot in place and the
q.k and p.v products read it without a transpose.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ftgen.models import attention_ops
from ftgen.models.config import ModelConfig
from ftgen.models.layers import RMSNorm, _Dense, constrain, dtype_of

Array = jax.Array


def apply_rope(x: Array, positions: Array, inv_freq: Array) -> Array:
  """Rotary embedding, rotate-half layout (as transformers). x: [B,T,N,H]."""
  freqs = positions[..., None].astype(jnp.float32) * inv_freq  # [B,T,H/2]
  cos = jnp.cos(freqs)[:, :, None, :].astype(x.dtype)
  sin = jnp.sin(freqs)[:, :, None, :].astype(x.dtype)
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def write_slots(cache: Array, new: Array, start: Array) -> Array:
  """Writes new [B,...,T,H] into cache [B,...,S,H] at slot `start` (scalar).

  One in-place `dynamic_update_slice` on the slot axis (-2): every row of a
  cache is filled to the same level (rows are padded to a common length).
  """
  idx = (0,) * (cache.ndim - 2) + (start, 0)
  return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), idx)


class Attention(nn.Module):
  """Projections, q/k norms (Gemma 3), rope, cache write and attention."""

  config: ModelConfig
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: Array, inv_freq: Array, window: Array | int,
               ctx: dict[str, Any], layer_cache: dict[str, Array] | None,
               layer_prefix: dict[str, Array] | None):
    cfg = self.config
    d, n, kh, h = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    dt = dtype_of(cfg.dtype)

    def project(name, heads, heads_axis):
      bias_axes = (heads_axis, "head_dim") if cfg.qkv_bias else None
      return _Dense(cfg, (d, heads, h), ("embed", heads_axis, "head_dim"),
                    bias_axes, name=name)(x, "BTD,DNH->BTNH")

    q = project("q", n, "q_heads")
    k = project("k", kh, "kv_heads")
    v = project("v", kh, "kv_heads")
    if cfg.family == "gemma3":
      q = RMSNorm(cfg, h, name="q_norm")(q)
      k = RMSNorm(cfg, h, name="k_norm")(k)
    positions = ctx["q_pos"]
    q = apply_rope(q, positions, inv_freq)
    k = apply_rope(k, positions, inv_freq)
    q = constrain(q, ("batch", "length", "act_heads", "head_dim"))
    k = constrain(k, ("batch", "length", "act_kv_heads", "head_dim"))
    v = constrain(v, ("batch", "length", "act_kv_heads", "head_dim"))

    own_k = k.transpose(0, 2, 1, 3)  # [B,K,T,H]
    own_v = v.transpose(0, 2, 1, 3)
    new_cache = None
    q_offset, filled = 0, None
    if layer_cache is not None:
      q_offset = ctx["write_start"]
      own_k = write_slots(layer_cache["k"], own_k, q_offset)
      own_v = write_slots(layer_cache["v"], own_v, q_offset)
      new_cache = {"k": own_k, "v": own_v}
      filled = q_offset + x.shape[1]
      own_k, own_v = own_k.astype(dt), own_v.astype(dt)
    own = attention_ops.KeySet(own_k, own_v, ctx["k_pos"])
    prefix = None
    if layer_prefix is not None:
      prefix = attention_ops.KeySet(layer_prefix["k"].astype(dt),
                                    layer_prefix["v"].astype(dt),
                                    ctx["prefix_pos"])
    scoring = attention_ops.Scoring(cfg.attn_scale, cfg.attn_logit_softcap)
    out = attention_ops.attend(q, positions, window, own, prefix, scoring,
                               q_offset=q_offset, filled=filled,
                               impl=self.impl)
    y = _Dense(cfg, (n, h, d), ("q_heads", "head_dim", "embed"),
               name="o")(out, "BTNH,NHD->BTD")
    return y, new_cache
