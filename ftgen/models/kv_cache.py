"""The KV cache: a plain pytree, and helpers to fill it.

Layout (L layers, B rows, S slots, K kv heads, H head dim):

  k, v  [L,B,S,K,H]  keys (rope applied) and values, in the cache dtype
  pos   [B,S] int32  the position of the token in each slot; -1 = empty or
                     padding (never attended)
  end   [B]   int32  slots written per row; the next call writes row b at
                     slots end[b] .. end[b]+T-1

Slots are filled in order, so causality is slot order; sliding windows use
position distance (pos_q - pos_k < window). Padding tokens (attention_mask
False) occupy slots but get pos -1, so left- and right-padded rows both work
and rows may hold different numbers of valid tokens. When a call gives no
positions, each row continues from its largest cached position + 1.

A *prefix cache* is a cache with B = 1 holding a shared context (e.g. an ICL
prompt): pass it as `prefix=` and every row of a batch attends to all of it
(respecting sliding windows) and causally to its own tokens.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ftgen.models.config import ModelConfig
from ftgen.models.layers import dtype_of

Cache = dict


def init_cache(config: ModelConfig, batch: int, max_len: int,
               dtype=None) -> Cache:
  """An empty cache of `max_len` slots per row (dtype: config.dtype)."""
  if dtype is None:
    dtype = dtype_of(config.dtype)
  elif isinstance(dtype, str):
    dtype = dtype_of(dtype)
  shape = (config.num_layers, batch, max_len, config.num_kv_heads,
           config.head_dim)
  return {
      "k": jnp.zeros(shape, dtype),
      "v": jnp.zeros(shape, dtype),
      "pos": jnp.full((batch, max_len), -1, jnp.int32),
      "end": jnp.zeros((batch,), jnp.int32),
  }


def cache_length(cache: Cache) -> int:
  """S: slots per row."""
  return int(cache["k"].shape[2])


def cache_end(cache: Cache) -> np.ndarray:
  """[B] slots written per row."""
  return np.asarray(cache["end"])


def next_positions(cache: Cache) -> jax.Array:
  """[B] the position the next valid token of each row gets by default."""
  return jnp.max(cache["pos"], axis=1) + 1


@functools.partial(jax.jit, static_argnums=0)
def _apply_cached(model, params, tokens, positions, mask, cache, prefix):
  return model.apply({"params": params}, tokens, positions, mask,
                     cache=cache, prefix=prefix)


def apply_with_cache(model, params, tokens, cache, positions=None,
                     attention_mask=None, prefix=None):
  """`model.apply(..., cache=cache)` under jit -> (logits, new_cache)."""
  return prefill(model, params, tokens, cache, None, attention_mask,
                 positions, prefix)


def prefill(model, params, tokens, cache: Cache, chunk: int | None = None,
            attention_mask=None, positions=None, prefix=None):
  """Writes `tokens` [B,T] into the cache in chunks of `chunk` tokens.

  Returns (logits [B,T,V] float32, new cache). Chunked and one-shot prefill
  give the same logits and cache; chunks bound the [T,S] score memory. The
  last chunk may be shorter (one extra compile).
  """
  tokens = jnp.asarray(tokens, jnp.int32)
  b, t = tokens.shape
  _check_room(cache, t)
  if attention_mask is None:
    attention_mask = jnp.ones((b, t), bool)
  attention_mask = jnp.asarray(attention_mask, bool)
  if positions is None:
    base = next_positions(cache)
    if prefix is not None:
      ppos = jnp.where(jnp.arange(prefix["pos"].shape[1]) < prefix["end"][0],
                       prefix["pos"][0], -1)
      base = jnp.maximum(base, jnp.max(ppos) + 1)
    positions = base[:, None] + jnp.maximum(
        jnp.cumsum(attention_mask, axis=1) - 1, 0)
  positions = jnp.asarray(positions, jnp.int32)
  chunk = chunk or t
  outs = []
  for lo in range(0, t, chunk):
    hi = min(lo + chunk, t)
    logits, cache = _apply_cached(model, params, tokens[:, lo:hi],
                                  positions[:, lo:hi], attention_mask[:, lo:hi],
                                  cache, prefix)
    outs.append(logits)
  return jnp.concatenate(outs, axis=1), cache


def make_prefix(model, params, tokens, max_len: int | None = None,
                chunk: int | None = None, dtype=None):
  """Prefills a batch-1 prefix cache from tokens [P] or [1,P].

  Returns (logits [1,P,V], prefix cache with end=[P]).
  """
  tokens = jnp.asarray(tokens, jnp.int32)
  if tokens.ndim == 1:
    tokens = tokens[None]
  if tokens.shape[0] != 1:
    raise ValueError(f"a prefix has batch 1; got tokens shape {tokens.shape}")
  cache = init_cache(model.config, 1, max_len or tokens.shape[1], dtype)
  return prefill(model, params, tokens, cache, chunk)


def _check_room(cache: Cache, t: int) -> None:
  s = cache_length(cache)
  worst = int(np.max(cache_end(cache))) + t
  if worst > s:
    raise ValueError(
        f"KV cache overflow: {t} new tokens after {worst - t} written need "
        f"{worst} slots; the cache holds {s}. Allocate a longer cache.")
