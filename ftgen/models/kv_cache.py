"""The KV cache: a plain pytree, and helpers to fill it.

Layout (L layers, B rows, S slots, K kv heads, H head dim):

  k, v  L-tuples of [B,K,S,H]  keys (rope applied) and values per layer, in
                     the cache dtype: one array per layer, so a decode step
                     updates each in place (donated), and slots are the
                     second-minor axis, so q.k and p.v read them without a
                     transpose
  pos   [B,S] int32  the position of the token in each slot; -1 = empty or
                     padding (never attended)
  end   []    int32  slots written (the same for every row: rows are padded
                     to a common length); the next call writes slots
                     end .. end+T-1

Slots are filled in order, so causality is slot order; sliding windows use
position distance (pos_q - pos_k < window). Padding tokens (attention_mask
False) occupy slots but get pos -1, so left- and right-padded rows both work
and rows may hold different numbers of valid tokens. When a call gives no
positions, each row continues from its largest cached position + 1.

A *prefix cache* is a cache with B = 1 holding a shared context (an ICL
prompt, an augmentation prompt): `prefill_prefix` fills one in chunks and
returns a `Prefix`; pass its `cache` as `prefix=` and every row of a batch
attends to all of it (respecting sliding windows) and causally to its own
tokens.

Bucketing: callers pad lengths (and batch sizes) up to a few bucket sizes so
that jitted programs compile once per bucket; `bucket_length` is the one
rounding rule, each caller passes its own list of buckets.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ftgen.models.config import ModelConfig
from ftgen.models.layers import dtype_of

Array = jax.Array
Cache = dict


def init_cache(config: ModelConfig, batch: int, max_len: int,
               dtype=None) -> Cache:
  """An empty cache of `max_len` slots per row (dtype: config.dtype)."""
  if dtype is None:
    dtype = dtype_of(config.dtype)
  elif isinstance(dtype, str):
    dtype = dtype_of(dtype)
  shape = (batch, config.num_kv_heads, max_len, config.head_dim)
  layers = range(config.num_layers)
  return {
      "k": tuple(jnp.zeros(shape, dtype) for _ in layers),
      "v": tuple(jnp.zeros(shape, dtype) for _ in layers),
      "pos": jnp.full((batch, max_len), -1, jnp.int32),
      "end": jnp.zeros((), jnp.int32),
  }


def slots(cache: Cache) -> int:
  """S, the slots per row."""
  return cache["pos"].shape[1]


def reset(cache: Cache) -> Cache:
  """The cache emptied for reuse: stale K/V stay, but pos -1 hides them."""
  return dict(cache, pos=jnp.full_like(cache["pos"], -1),
              end=jnp.zeros_like(cache["end"]))


def check_room(cache: Cache, t: int) -> None:
  """Context overflow is an error, never a silent clamp (when checkable).

  Under jit the written count is a tracer and cannot be read, so jitted
  callers (the sampler, `prefill_prefix`) size their caches on the host.
  """
  end = cache["end"]
  if isinstance(end, jax.core.Tracer):
    return
  s = slots(cache)
  worst = int(np.asarray(end)) + t
  if worst > s:
    raise ValueError(
        f"KV cache overflow: writing {t} tokens after {worst - t} would need "
        f"{worst} slots; the cache holds {s}. Allocate a longer cache.")


# --- positions --------------------------------------------------------------


def token_positions(mask, start=0):
  """[B,T] int32: `start` [B] (or scalar) + valid tokens before each token.

  A left-padded row gets the positions of the unpadded one; padding takes
  the position of the last valid token before it, or `start` (it is never
  attended). Host (numpy) masks give numpy positions, others jax arrays.
  """
  xp = np if isinstance(mask, np.ndarray) else jnp
  start = xp.asarray(start, xp.int32)
  if start.ndim:
    start = start[:, None]
  steps = xp.maximum(xp.cumsum(mask, axis=1) - 1, 0)
  return (start + steps).astype(xp.int32)


def prefix_valid(prefix: Cache) -> Array:
  """[P] bool: the slots of a prefix cache that hold context tokens."""
  ppos = prefix["pos"][0]
  return (ppos >= 0) & (jnp.arange(ppos.shape[0]) < prefix["end"])


def next_positions(batch: int, cache: Cache | None = None,
                   prefix: Cache | None = None) -> Array:
  """[B] where each row's next valid token counts from by default.

  After the shared prefix's tokens and after the row's own cached tokens.
  """
  start = jnp.zeros((batch,), jnp.int32)
  if prefix is not None:
    last = jnp.max(jnp.where(prefix_valid(prefix), prefix["pos"][0], -1))
    start = jnp.maximum(start, last + 1)
  if cache is not None:
    start = jnp.maximum(start, jnp.max(cache["pos"], axis=1) + 1)
  return start


# --- prefill ----------------------------------------------------------------


def split_layers(params: Any) -> Any:
  """Params with 'layers' as an L-tuple of per-layer trees (same values).

  The cache path slices the stacked layers one layer at a time;
  XLA materializes each slice, and inside a decode loop it would do so every
  step. A loop over steps splits once before it (`prefill_prefix`, the
  `ftgen.sample.sampler.Sampler`, which keeps its params split). Params
  already split are returned as they are.
  """
  layers = params["layers"]
  if isinstance(layers, tuple):
    return params
  n = jax.tree.leaves(layers)[0].shape[0]
  return {**params,
          "layers": tuple(jax.tree.map(lambda a, i=i: a[i], layers)
                          for i in range(n))}


split_layers_jit = jax.jit(split_layers)


@dataclasses.dataclass
class Prefix:
  """A prefilled batch-1 cache (pass as `prefix=`) and its valid tokens."""

  cache: Cache
  length: int


def fill(model: Any, params: Any, cache: Cache, tokens, positions, mask,
         prefix: Cache | None = None) -> Cache:
  """Writes tokens [B,T] into the cache; traceable (call it under jit).

  Only the cache is returned: XLA drops the unused vocabulary projection,
  so a prefill pays for no [B,T,V] logits.
  """
  _, cache = model.apply({"params": params}, tokens, positions, mask,
                         cache=cache, prefix=prefix)
  return cache


_fill_jit = jax.jit(fill, static_argnums=0, donate_argnums=2)


def prefill_prefix(model: Any, params: Any, tokens: Sequence[int], *,
                   chunk: int = 512, buckets: Sequence[int] | None = None,
                   multiple: int | None = None, dtype=None,
                   pad_id: int = 0) -> Prefix:
  """Prefills `tokens` into a fresh batch-1 cache, `chunk` tokens at a time.

  The last chunk is padded (padding slots are never attended), so a prefill
  of any length compiles once per chunk size. A prefix shorter than `chunk`
  is one chunk of its own length, or, with `buckets` (and `multiple`, see
  `bucket_length`), of its bucket length, so that many prefixes of varied
  lengths share a few compiled shapes.

  Args:
    model, params: the decoder and its params.
    tokens: the context's token ids (at least one).
    chunk: the longest chunk; it bounds the [chunk, slots] attention scores.
    buckets, multiple: round a short prefix's length with `bucket_length`.
    dtype: cache dtype (default: the model's compute dtype).
    pad_id: the token fed into padding slots.

  Returns:
    The prefix cache (end = the padded length) and its valid length.
  """
  tokens = [int(t) for t in tokens]
  n = len(tokens)
  if not n:
    raise ValueError("a prefix needs at least one token")
  short = bucket_length(n, buckets, multiple) if buckets else n
  chunk = max(1, min(chunk, short))
  slots = -(-n // chunk) * chunk
  ids = np.full((1, slots), pad_id, np.int32)
  ids[0, :n] = tokens
  valid = np.arange(slots)[None, :] < n
  pos = token_positions(valid)
  cache = init_cache(model.config, 1, slots, dtype)
  if slots > chunk:
    params = split_layers_jit(params)
  for lo in range(0, slots, chunk):
    sl = slice(lo, lo + chunk)
    cache = _fill_jit(model, params, cache, ids[:, sl], pos[:, sl],
                      valid[:, sl], None)
  return Prefix(cache, n)


# --- bucketing --------------------------------------------------------------


def bucket_length(n: int, buckets: Sequence[int],
                  multiple: int | None = None) -> int:
  """The smallest bucket >= n; past the largest, a multiple of `multiple`.

  `multiple` defaults to the largest bucket.
  """
  buckets = sorted(buckets)
  for b in buckets:
    if n <= b:
      return b
  step = multiple or buckets[-1]
  return -(-n // step) * step


def halving_buckets(longest: int, count: int, multiple: int = 16
                    ) -> tuple[int, ...]:
  """Up to `count` lengths, halving from the top, multiples of `multiple`.

  The largest is `longest` rounded up to a multiple, so it holds every row.
  """
  top = -(-longest // multiple) * multiple
  lengths = [top]
  while len(lengths) < count and lengths[-1] // 2 >= multiple:
    lengths.append(-(-(lengths[-1] // 2) // multiple) * multiple)
  return tuple(sorted(set(lengths)))
