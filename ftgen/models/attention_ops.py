"""Attention kernels behind one interface: blockwise XLA, cuDNN, TPU splash.

`attend` is the one entry point; `Attention` (attention.py) calls it for
training, scoring, prefill and decode alike. Shape letters: B batch, T
queries, S own key slots, P shared-prefix slots, N query heads, K kv heads,
G = N/K, H head dim.

Visibility (the same for every implementation): key j is visible to query i
iff j holds a token (position >= 0), j comes no later than i in slot order
(own keys; prefix keys always come first), and pos_i - pos_j < window.
Query i sits at slot `q_offset + i` of the own keys: 0 without a cache,
the cache's fill level with one.

Implementations (`IMPLEMENTATIONS`):

* "xla": blockwise, the reference, runs everywhere. Queries go in blocks of
  `BLOCK_Q`; each block reads only the own keys it can see when the offset
  is static (training, scoring: causal work, not T x S), and a block's
  softmax is merged across key sets (prefix, own keys, blocks of a long
  prefix) by log-sum-exp, so no [T, S] score tensor and no concatenated key
  copy exists. Each query block is rematerialized in the backward pass
  (`jax.checkpoint`), so training keeps no [T, S] probabilities either. A
  cache prefill (offset traced) visits only the filled key blocks in a
  dynamic loop (forward only).
* "cudnn": `jax.nn.dot_product_attention(implementation="cudnn")` on GPU
  (bf16/fp16, no soft-cap, no prefix, no cache; visibility passed as a
  boolean mask, so padding and traced windows are exact).
* "splash": Pallas splash attention on TPU (static windows, soft-cap).
* "auto": the platform's kernel where the call qualifies, else "xla".

A call the chosen kernel cannot take falls back to "xla" with one log line
per reason.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp

Array = jax.Array

IMPLEMENTATIONS = ("auto", "xla", "cudnn", "splash")
# Queries per block: the causal overcount is about BLOCK_Q / T (6% at 2048
# tokens), the scores of one block are BLOCK_Q x S.
BLOCK_Q = 128
# Keys per block where keys are visited in a loop (long prefixes, prefill).
BLOCK_K = 512
# Large negative instead of -inf: a query that sees no key gets a uniform
# distribution over the keys it was given rather than NaNs.
NEG = -0.7 * float(jnp.finfo(jnp.float32).max)


class KeySet(NamedTuple):
  """Keys and values [B or 1, K, S, H] with positions [B or 1, S] (-1: none).

  A batch-1 set (a shared prefix) is read once for the whole batch: its
  rows are folded into the query axis of one product.
  """

  k: Array
  v: Array
  pos: Array


class Scoring(NamedTuple):
  """How raw q.k products become logits."""

  scale: float
  softcap: float | None


def check_impl(name: str) -> str:
  if name not in IMPLEMENTATIONS:
    raise ValueError(f"attention={name!r}; allowed: "
                     f"{', '.join(IMPLEMENTATIONS)}")
  return name


@functools.lru_cache(maxsize=None)
def _fallback_once(reason: str) -> None:
  logging.warning("attention: %s; using the blockwise XLA attention", reason)


def attend(q: Array, q_pos: Array, window: Array | int, own: KeySet,
           prefix: KeySet | None, scoring: Scoring, *,
           q_offset: Array | int = 0, filled: Array | None = None,
           impl: str = "auto") -> Array:
  """Attention of q [B,T,N,H] over a prefix then own keys -> [B,T,N,H].

  Args:
    q: rope-applied queries.
    q_pos: [B,T] query positions.
    window: the layer's window (an int, or a traced scalar in a layer scan).
    own: the row's own keys (its tokens, or its cache after the write).
    prefix: a shared batch-1 key set every row sees first, or None.
    scoring: scale and soft-cap.
    q_offset: the own-key slot of query 0 (static int: causal blocks skip
      keys they cannot see).
    filled: own slots [0, filled) hold keys (a cache's fill level after the
      write); lets a prefill skip empty slots. Forward only.
    impl: one of IMPLEMENTATIONS.
  """
  impl = _choose(check_impl(impl), q, prefix, scoring, q_offset, window)
  if impl == "cudnn":
    return _cudnn(q, q_pos, window, own, scoring)
  if impl == "splash":
    return _splash(q, int(window), own, scoring)
  return xla_attention(q, q_pos, window, own, prefix, scoring,
                       q_offset=q_offset, filled=filled)


def _choose(impl, q, prefix, scoring, q_offset, window) -> str:
  """The implementation this call runs with (see the module docstring)."""
  if impl == "xla":
    return impl
  backend = jax.default_backend()
  want = impl if impl != "auto" else {"gpu": "cudnn", "tpu": "splash"}.get(
      backend, "xla")
  if want == "xla":
    return want
  reasons = []
  if (want == "cudnn") != (backend == "gpu") or (
      want == "splash") != (backend == "tpu"):
    reasons.append(f"{want} needs a {'GPU' if want == 'cudnn' else 'TPU'}"
                   f" (backend is {backend})")
  if prefix is not None:
    reasons.append(f"{want} takes no shared prefix")
  if not isinstance(q_offset, int) or q_offset:
    reasons.append(f"{want} takes no KV cache")
  if want == "cudnn":
    if q.dtype not in (jnp.bfloat16, jnp.float16):
      reasons.append(f"cudnn needs bfloat16/float16 (got {q.dtype})")
    if scoring.softcap is not None:
      reasons.append("cudnn has no logit soft-cap")
  if want == "splash" and not isinstance(window, int):
    reasons.append("splash needs a static window")
  if not reasons:
    return want
  for r in reasons:
    _fallback_once(r)
  return "xla"


# --- the blockwise XLA reference ---------------------------------------------


class _Partial(NamedTuple):
  """Softmax state of a query block over some keys (float32)."""

  m: Array  # [B,K,G,t] running max
  l: Array  # [B,K,G,t] sum of exp(s - m)
  o: Array  # [B,K,G,t,H] sum of exp(s - m) v


def _empty(b, kh, g, t, h) -> _Partial:
  return _Partial(jnp.full((b, kh, g, t), NEG, jnp.float32),
                  jnp.zeros((b, kh, g, t), jnp.float32),
                  jnp.zeros((b, kh, g, t, h), jnp.float32))


def _merge(a: _Partial, b: _Partial) -> _Partial:
  m = jnp.maximum(a.m, b.m)
  ca, cb = jnp.exp(a.m - m), jnp.exp(b.m - m)
  return _Partial(m, a.l * ca + b.l * cb,
                  a.o * ca[..., None] + b.o * cb[..., None])


def _block(qb: Array, keys: KeySet, visible: Array,
           scoring: Scoring) -> _Partial:
  """One query block [B,K,G,t,H] over one key block; visible [B|1,t,s]."""
  shared = keys.k.shape[0] == 1 and qb.shape[0] != 1
  if shared:  # Rows folded into the query axis: one product for the batch.
    s = jnp.einsum("BKGTH,KSH->BKGTS", qb, keys.k[0],
                   preferred_element_type=jnp.float32)
  else:
    s = jnp.einsum("BKGTH,BKSH->BKGTS", qb, keys.k,
                   preferred_element_type=jnp.float32)
  s = s * scoring.scale
  if scoring.softcap is not None:
    s = scoring.softcap * jnp.tanh(s / scoring.softcap)
  s = jnp.where(visible[:, None, None], s, NEG)
  m = jnp.max(s, axis=-1)
  p = jnp.exp(s - m[..., None])
  l = jnp.sum(p, axis=-1)
  p = p.astype(keys.v.dtype)
  if shared:
    o = jnp.einsum("BKGTS,KSH->BKGTH", p, keys.v[0],
                   preferred_element_type=jnp.float32)
  else:
    o = jnp.einsum("BKGTS,BKSH->BKGTH", p, keys.v,
                   preferred_element_type=jnp.float32)
  return _Partial(m, l, o)


def _visible(q_pos, q_slot, k_pos, k_slot, window) -> Array:
  """[B|1,t,s] visibility; k_slot None = every key precedes every query."""
  ok = (k_pos[:, None, :] >= 0) & (
      q_pos[:, :, None] - k_pos[:, None, :] < window)
  if k_slot is not None:
    ok &= k_slot[None, None, :] <= q_slot[:, :, None]
  return ok


def _slice_keys(keys: KeySet, lo, size, dynamic: bool) -> KeySet:
  if dynamic:
    cut = functools.partial(jax.lax.dynamic_slice_in_dim, start_index=lo,
                            slice_size=size)
    return KeySet(cut(keys.k, axis=2), cut(keys.v, axis=2),
                  cut(keys.pos, axis=1))
  return KeySet(keys.k[:, :, lo:lo + size], keys.v[:, :, lo:lo + size],
                keys.pos[:, lo:lo + size])


def _key_block(s: int) -> int:
  """Keys per looped block: BLOCK_K halved until it divides S."""
  bk = BLOCK_K
  while s % bk:
    bk //= 2
  return bk if bk >= 16 else s


def _prefix_partial(qb, qb_pos, prefix: KeySet, window, scoring) -> _Partial:
  """A query block over the whole prefix, in key blocks when it is long."""
  p = prefix.k.shape[2]
  bk = _key_block(p)
  if bk == p:
    return _block(qb, prefix,
                  _visible(qb_pos, None, prefix.pos, None, window), scoring)

  def body(j, acc):
    kb = _slice_keys(prefix, j * bk, bk, dynamic=True)
    vis = _visible(qb_pos, None, kb.pos, None, window)
    return _merge(acc, _block(qb, kb, vis, scoring))

  b, kh, g, t, h = qb.shape
  return jax.lax.fori_loop(0, p // bk, body, _empty(b, kh, g, t, h))


def _own_partial(qb, qb_pos, q_slot, own: KeySet, window, scoring,
                 hi: int, filled) -> _Partial:
  """A query block over own key slots [0, hi), or the filled ones."""
  s = own.k.shape[2]
  bk = _key_block(s)
  if filled is None or bk == s or qb.shape[3] == 1:
    keys = own if hi == s else _slice_keys(own, 0, hi, dynamic=False)
    vis = _visible(qb_pos, q_slot, keys.pos, jnp.arange(hi), window)
    return _block(qb, keys, vis, scoring)

  def body(j, acc):
    kb = _slice_keys(own, j * bk, bk, dynamic=True)
    vis = _visible(qb_pos, q_slot, kb.pos, j * bk + jnp.arange(bk), window)
    return _merge(acc, _block(qb, kb, vis, scoring))

  b, kh, g, t, h = qb.shape
  return jax.lax.fori_loop(0, (filled + bk - 1) // bk, body,
                           _empty(b, kh, g, t, h))


def xla_attention(q: Array, q_pos: Array, window: Array | int, own: KeySet,
                  prefix: KeySet | None, scoring: Scoring, *,
                  q_offset: Array | int = 0,
                  filled: Array | None = None) -> Array:
  """The blockwise reference (see the module docstring); [B,T,N,H]."""
  b, t, n, h = q.shape
  kh = own.k.shape[1]
  s = own.k.shape[2]
  qg = q.reshape(b, t, kh, n // kh, h).transpose(0, 2, 3, 1, 4)
  static = isinstance(q_offset, int)
  outs = []
  for lo in range(0, t, BLOCK_Q):
    size = min(BLOCK_Q, t - lo)
    # Own slots a static-offset block can see end at its last query.
    hi = min(s, q_offset + lo + size) if static else s

    def one(qb, qb_pos, own, prefix, lo=lo, hi=hi):
      q_slot = q_offset + lo + jnp.arange(qb.shape[3])[None, :]
      acc = _own_partial(qb, qb_pos, q_slot, own, window, scoring, hi,
                         filled)
      if prefix is not None:
        acc = _merge(_prefix_partial(qb, qb_pos, prefix, window, scoring),
                     acc)
      return (acc.o / acc.l[..., None]).astype(q.dtype)

    if t > BLOCK_Q:  # Backward recomputes a block: no [T, S] residuals.
      one = jax.checkpoint(one, prevent_cse=False)
    outs.append(one(qg[:, :, :, lo:lo + size], q_pos[:, lo:lo + size], own,
                    prefix))
  out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=3)
  return out.transpose(0, 3, 1, 2, 4).reshape(b, t, n, h)


# --- platform kernels ------------------------------------------------------------


def _cudnn(q, q_pos, window, own: KeySet, scoring: Scoring) -> Array:
  """cuDNN flash attention; own keys only (no cache, no prefix)."""
  t = q.shape[1]
  s = own.k.shape[2]
  vis = _visible(q_pos, jnp.arange(t)[None, :], own.pos, jnp.arange(s),
                 window)
  k = own.k.transpose(0, 2, 1, 3)  # [B,S,K,H], the layout the kernel takes
  v = own.v.transpose(0, 2, 1, 3)
  return jax.nn.dot_product_attention(
      q, k, v, mask=vis[:, None], scale=scoring.scale,
      implementation="cudnn")


def _splash(q, window: int, own: KeySet, scoring: Scoring) -> Array:
  """TPU splash attention (causal + local mask, soft-cap, padding ids).

  Causality and windows follow slot index, which equals position distance
  for right-padded rows (training and scoring batches); padding keys are a
  segment of their own.
  """
  # Imported here: the Pallas TPU kernels load only on TPU hosts.
  from jax.experimental.pallas.ops.tpu.splash_attention import (  # pylint: disable=g-import-not-at-top
      splash_attention_kernel as sk, splash_attention_mask as sm)
  b, t, n, h = q.shape
  kh, s = own.k.shape[1], own.k.shape[2]
  if window >= t:
    mask = sm.CausalMask((t, s))
  else:
    mask = sm.LocalMask((t, s), window_size=(window - 1, 0), offset=0)
  g = n // kh
  kernel = sk.make_splash_mqa(
      sm.MultiHeadMask([mask] * g), head_shards=1, q_seq_shards=1,
      attn_logits_soft_cap=scoring.softcap)
  seg = sk.SegmentIds(q=jnp.ones((b, t), jnp.int32),
                      kv=(own.pos >= 0).astype(jnp.int32))
  # [B,K,G,T,H] queries against [B,K,S,H] keys: one MQA call per kv head.
  qg = (q * scoring.scale).reshape(b, t, kh, g, h).transpose(0, 2, 3, 1, 4)
  per_head = jax.vmap(kernel, in_axes=(0, 0, 0, None))
  out = jax.vmap(per_head, in_axes=(0, 0, 0, 0))(qg, own.k, own.v, seg)
  return out.transpose(0, 3, 1, 2, 4).reshape(b, t, n, h).astype(q.dtype)
