"""Grouped-query attention with rope, KV cache writes and a shared prefix.

Shape letters: B batch, T query length, S key length (own tokens or cache
slots), P shared-prefix length, D width, N query heads, K kv heads, G = N/K
query heads per kv head, H head dim.

Masks are built explicitly from positions (never `is_causal`, which aligns
top-left when queries are fewer than keys). Causality follows token order
(index in the sequence or cache slot); sliding windows follow position
distance: key j is visible to query i iff pos_i - pos_j < window.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ftgen.models.config import ModelConfig
from ftgen.models.layers import RMSNorm, _Dense, constrain, dtype_of

Array = jax.Array
# Large negative instead of -inf: a fully masked (padding) query row gets a
# uniform distribution rather than NaNs.
_NEG = -0.7 * float(jnp.finfo(jnp.float32).max)


def apply_rope(x: Array, positions: Array, inv_freq: Array) -> Array:
  """Rotary embedding, rotate-half layout (as transformers). x: [B,T,N,H]."""
  freqs = positions[..., None].astype(jnp.float32) * inv_freq  # [B,T,H/2]
  cos = jnp.cos(freqs)[:, :, None, :].astype(x.dtype)
  sin = jnp.sin(freqs)[:, :, None, :].astype(x.dtype)
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _scores(config: ModelConfig, q: Array, k: Array, spec: str) -> Array:
  s = jnp.einsum(spec, q, k, preferred_element_type=jnp.float32)
  s = s * config.attn_scale
  if config.attn_logit_softcap is not None:
    cap = config.attn_logit_softcap
    s = cap * jnp.tanh(s / cap)
  return s


def attend(config: ModelConfig, q: Array, q_pos: Array, window: Array,
           k: Array, v: Array, k_pos: Array, base_mask: Array,
           prefix: dict[str, Array] | None = None) -> Array:
  """Softmax attention over own keys and (optionally) a shared prefix.

  Args:
    config: model config (scale, softcap).
    q: [B,T,N,H] (rope applied).
    q_pos: [B,T] query positions.
    window: scalar int, the layer's window (huge for global layers).
    k, v: [B,S,K,H] own keys/values (the new tokens or the cache).
    k_pos: [B,S] key positions.
    base_mask: [B,T,S] validity and causality (without the window).
    prefix: None or {'k','v': [P,K,H], 'pos': [P], 'valid': [P]}: keys every
      row sees before its own tokens; merged with own keys in ONE softmax.

  Returns:
    [B,T,N,H] attention output in q's dtype.
  """
  b, t, n, h = q.shape
  kh = k.shape[2]
  qg = q.reshape(b, t, kh, n // kh, h)
  s_self = _scores(config, qg, k, "BTKGH,BSKH->BKGTS")
  mask = base_mask & (q_pos[:, :, None] - k_pos[:, None, :] < window)
  s_self = jnp.where(mask[:, None, None], s_self, _NEG)
  if prefix is None:
    p = jax.nn.softmax(s_self, axis=-1).astype(v.dtype)
    out = jnp.einsum("BKGTS,BSKH->BTKGH", p, v)
    return out.reshape(b, t, n, h)
  # Prefix keys are read once for the whole batch (batch-1 einsum).
  s_pre = _scores(config, qg, prefix["k"], "BTKGH,PKH->BKGTP")
  pmask = prefix["valid"][None, None, :] & (
      q_pos[:, :, None] - prefix["pos"][None, None, :] < window)
  s_pre = jnp.where(pmask[:, None, None], s_pre, _NEG)
  plen = s_pre.shape[-1]
  p = jax.nn.softmax(jnp.concatenate([s_pre, s_self], axis=-1), axis=-1)
  p = p.astype(v.dtype)
  out = (jnp.einsum("BKGTP,PKH->BTKGH", p[..., :plen], prefix["v"]) +
         jnp.einsum("BKGTS,BSKH->BTKGH", p[..., plen:], v))
  return out.reshape(b, t, n, h)


def write_rows(cache: Array, new: Array, start: Array) -> Array:
  """Writes new [B,T,...] into cache [B,S,...] at per-row slot `start` [B]."""
  def one(c, x, s):
    idx = (s,) + (0,) * (c.ndim - 1)
    return jax.lax.dynamic_update_slice(c, x.astype(c.dtype), idx)
  return jax.vmap(one)(cache, new, start)


class Attention(nn.Module):
  """Projections, q/k norms (Gemma 3), rope, cache write and attention."""

  config: ModelConfig

  @nn.compact
  def __call__(self, x: Array, inv_freq: Array, window: Array,
               ctx: dict[str, Any], layer_cache: dict[str, Array] | None,
               layer_prefix: dict[str, Array] | None):
    cfg = self.config
    d, n, kh, h = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    dt = dtype_of(cfg.dtype)

    def project(name, heads, heads_axis):
      bias_axes = (heads_axis, "head_dim") if cfg.qkv_bias else None
      out = _Dense(cfg, (d, heads, h), ("embed", heads_axis, "head_dim"),
                   bias_axes, name=name)()
      kernel, bias = out if cfg.qkv_bias else (out, None)
      y = jnp.einsum("BTD,DNH->BTNH", x, kernel.astype(dt))
      return y if bias is None else y + bias.astype(dt)

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

    new_cache = None
    if layer_cache is not None:
      start = ctx["write_start"]
      k_all = write_rows(layer_cache["k"], k, start)
      v_all = write_rows(layer_cache["v"], v, start)
      new_cache = {"k": k_all, "v": v_all}
      k_all, v_all = k_all.astype(dt), v_all.astype(dt)
    else:
      k_all, v_all = k, v
    prefix = None
    if layer_prefix is not None:
      prefix = {"k": layer_prefix["k"][0].astype(dt),
                "v": layer_prefix["v"][0].astype(dt),
                "pos": ctx["prefix_pos"], "valid": ctx["prefix_valid"]}
    out = attend(cfg, q, positions, window, k_all, v_all, ctx["k_pos"],
                 ctx["self_mask"], prefix)
    o = _Dense(cfg, (n, h, d), ("q_heads", "head_dim", "embed"), name="o")()
    y = jnp.einsum("BTNH,NHD->BTD", out, o.astype(dt))
    return y, new_cache
