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

* "xla": blockwise, the reference, runs everywhere. A block's softmax is
  merged across key sets (prefix, own keys, key blocks) by log-sum-exp, so
  no [T, S] score tensor and no concatenated key copy exists.

  With a static query offset and no fill level (training, scoring), queries
  go in blocks of `BLOCK_Q` and own keys in blocks of `BLOCK_Q` too; the
  (query block, key block) pairs a block can see (causal work, not T x S),
  after every block of a prefix, run in one loop with a static trip count
  (XLA's cost analysis counts it), updating each query's softmax state
  (max m, sum l, output) in place. That is a custom VJP (flash attention's
  backward): the forward saves only q, the keys, the output and m, l per
  row ([B,K,G,T] float32); the backward recomputes one pair's
  probabilities at a time from them (p = exp(s - m) / l) and accumulates
  dq, dk, dv in a scan over the same pairs. The forward's loop is a
  `lax.while_loop`: a remat policy that saves dots ("save_dots") would
  split a scan and save its products stacked over all pairs.
  Why: autodiff of blocks unrolled in Python (each under `jax.checkpoint`)
  kept a block's probabilities and merge residuals per block, and since the
  blocks' backward passes were independent, XLA scheduled them side by
  side, so a whole layer's score buffers were live at once (the training
  step at the Llama-3.2-1B shape, batch 8 x 2,048 tokens, remat "full",
  needed 19.2 GB of temporaries, 13.8 GB with the loop; a loop's
  iterations cannot overlap, whereas `lax.optimization_barrier` chains
  between unrolled blocks do not survive XLA's CPU pipeline). Masked logits get NEG added rather than
  selected (`_mask`), so JAX builds no [B,K,G,t,s] boolean that the
  rematerialization could stack per pair as a residual.

  A cache prefill (offset traced) visits only the filled key blocks of each
  query block in a dynamic loop (forward only).
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
import numpy as np

Array = jax.Array

IMPLEMENTATIONS = ("auto", "xla", "cudnn", "splash")
# Queries per block, and own keys per block in the pair loop: the causal
# overcount is about BLOCK_Q / T (6% at 2048 tokens); one pair's scores are
# BLOCK_Q x BLOCK_Q (with a cache: BLOCK_Q x BLOCK_K, or x S).
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


def _qk(x: Array, k: Array) -> Array:
  """x [B,K,G,t,H] . k [B|1,K,s,H] -> [B,K,G,t,s] float32."""
  if k.shape[0] == 1 and x.shape[0] != 1:
    return jnp.einsum("BKGTH,KSH->BKGTS", x, k[0],
                      preferred_element_type=jnp.float32)
  return jnp.einsum("BKGTH,BKSH->BKGTS", x, k,
                    preferred_element_type=jnp.float32)


def _pk(p: Array, k: Array) -> Array:
  """p [B,K,G,t,s] . k [B|1,K,s,H] -> [B,K,G,t,H] float32."""
  p = p.astype(k.dtype)
  if k.shape[0] == 1 and p.shape[0] != 1:
    return jnp.einsum("BKGTS,KSH->BKGTH", p, k[0],
                      preferred_element_type=jnp.float32)
  return jnp.einsum("BKGTS,BKSH->BKGTH", p, k,
                    preferred_element_type=jnp.float32)


def _pt(p: Array, x: Array, shared: bool) -> Array:
  """p [B,K,G,t,s]^T . x [B,K,G,t,H] -> [B|1,K,s,H] float32 (key grads)."""
  p = p.astype(x.dtype)
  if shared:  # A batch-1 key set: its gradient sums over the batch.
    return jnp.einsum("BKGTS,BKGTH->KSH", p, x,
                      preferred_element_type=jnp.float32)[None]
  return jnp.einsum("BKGTS,BKGTH->BKSH", p, x,
                    preferred_element_type=jnp.float32)


def _logits(q: Array, k: Array, visible: Array | None,
            scoring: Scoring) -> tuple[Array, Array | None]:
  """(logits [B,K,G,t,s] float32, masked unless visible is None; tanh of
  the soft-cap or None)."""
  s = _qk(q, k) * scoring.scale
  tanh = None
  if scoring.softcap is not None:
    tanh = jnp.tanh(s / scoring.softcap)
    s = scoring.softcap * tanh
  return (s if visible is None else _mask(s, visible)), tanh


def _block(qb: Array, keys: KeySet, visible: Array,
           scoring: Scoring) -> _Partial:
  """One query block [B,K,G,t,H] over one key block; visible [B|1,t,s]."""
  s, _ = _logits(qb, keys.k, None, scoring)
  # Selected (forward only): XLA fuses the select into the decode step's
  # score product, where an added mask costs a pass over the scores.
  s = jnp.where(visible[:, None, None], s, NEG)
  m = jnp.max(s, axis=-1)
  p = jnp.exp(s - m[..., None])
  return _Partial(m, jnp.sum(p, axis=-1), _pk(p, keys.v))


def _mask(s: Array, visible: Array) -> Array:
  """Logits s [B,K,G,t,s] with NEG where visible [B|1,t,s] is False.

  NEG is added rather than selected: the add broadcasts inside XLA, so JAX
  never builds a [B,K,G,t,s] mask that could become a residual of a
  rematerialized layer (a stack of one per block pair). Where not visible,
  s + NEG rounds to NEG for any |s| < 1e31.
  """
  return s + jnp.where(visible, 0.0, NEG)[:, None, None]


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
  if isinstance(q_offset, int) and filled is None:
    return _flash(scoring, q_offset, q, q_pos,
                  jnp.asarray(window, jnp.int32), own, prefix)
  return _ungrouped(_cache_attention(
      _grouped(q, own.k.shape[1]), q_pos, window, own, prefix, scoring,
      q_offset, filled))


def _grouped(x: Array, kh: int) -> Array:
  """[B,T,N,...] -> [B,K,G,T,...]: query heads grouped by kv head."""
  b, t, n = x.shape[:3]
  x = x.reshape((b, t, kh, n // kh) + x.shape[3:])
  return jnp.moveaxis(x, 1, 3)


def _ungrouped(x: Array) -> Array:
  """[B,K,G,T,...] -> [B,T,N,...]."""
  b, kh, g, t = x.shape[:4]
  return jnp.moveaxis(x, 3, 1).reshape((b, t, kh * g) + x.shape[4:])


def _cache_attention(qg, q_pos, window, own: KeySet, prefix: KeySet | None,
                     scoring: Scoring, q_offset, filled) -> Array:
  """Queries at own slots [q_offset, q_offset + T) of a cache (forward)."""
  t = qg.shape[3]
  outs = []
  for lo in range(0, t, BLOCK_Q):
    size = min(BLOCK_Q, t - lo)
    qb, qb_pos = qg[:, :, :, lo:lo + size], q_pos[:, lo:lo + size]
    q_slot = q_offset + lo + jnp.arange(size)[None, :]
    # Own slots a static-offset block can see end at its last query.
    hi = own.k.shape[2]
    if isinstance(q_offset, int):
      hi = min(hi, q_offset + lo + size)
    acc = _own_partial(qb, qb_pos, q_slot, own, window, scoring, hi, filled)
    if prefix is not None:
      acc = _merge(_prefix_partial(qb, qb_pos, prefix, window, scoring), acc)
    outs.append((acc.o / acc.l[..., None]).astype(qg.dtype))
  return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=3)


# --- training and scoring: flash attention over block pairs ------------------


class _Sweep(NamedTuple):
  """One loop over (query block, key block) pairs of one key set.

  The pairs run query-block-major, key blocks ascending, in one loop with a
  static trip count: the scores of one pair are all that exists at a time
  (forward and backward alike), and XLA's cost analysis counts the loop.
  """

  keys: KeySet  # padded with empty slots to whole key blocks
  bk: int  # keys per block
  qi: Any  # [pairs] query block of each pair (numpy int32)
  kj: Any  # [pairs] key block of each pair
  q_offset: int | None  # own keys: slot of query 0; None: a prefix


def _sweeps(t: int, bq: int, own: KeySet, prefix: KeySet | None,
            q_offset: int) -> list[_Sweep]:
  """The prefix's pairs (every block), then own keys' (causal) ones."""
  out = []
  if prefix is not None:
    p = prefix.k.shape[2]
    bk = _key_block(p)
    qi, kj = np.meshgrid(np.arange(-(-t // bq), dtype=np.int32),
                         np.arange(p // bk, dtype=np.int32), indexing="ij")
    out.append(_Sweep(prefix, bk, qi.ravel(), kj.ravel(), None))
  s = own.k.shape[2]
  bk = min(BLOCK_Q, s)
  nk = -(-s // bk)
  qi, kj = [], []
  for i in range(-(-t // bq)):
    # Query block i sees own key blocks up to its last query's slot.
    last_slot = q_offset + min(t, (i + 1) * bq) - 1
    for j in range(min(nk, last_slot // bk + 1)):
      qi.append(i)
      kj.append(j)
  keys = KeySet(_pad_axis(own.k, 2, nk * bk), _pad_axis(own.v, 2, nk * bk),
                _pad_axis(own.pos, 1, nk * bk, -1))
  out.append(_Sweep(keys, bk, np.asarray(qi, np.int32),
                    np.asarray(kj, np.int32), q_offset))
  return out


def _pair_keys(sw: _Sweep, q_pos, i, j, bq: int, window):
  """(key block j, its visibility [B|1,bq,bk] from query block i)."""
  kb = _slice_keys(sw.keys, j * sw.bk, sw.bk, dynamic=True)
  qb_pos = _cut(q_pos, 1, i, bq)
  if sw.q_offset is None:
    return kb, _visible(qb_pos, None, kb.pos, None, window)
  return kb, _visible(qb_pos, sw.q_offset + i * bq + jnp.arange(bq)[None, :],
                      kb.pos, j * sw.bk + jnp.arange(sw.bk), window)


def _pad_axis(x: Array, axis: int, size: int, value=0) -> Array:
  if x.shape[axis] == size:
    return x
  pad = [(0, 0)] * x.ndim
  pad[axis] = (0, size - x.shape[axis])
  return jnp.pad(x, pad, constant_values=value)


def _cut(x: Array, axis: int, i, size: int) -> Array:
  return jax.lax.dynamic_slice_in_dim(x, i * size, size, axis=axis)


def _put(x: Array, axis: int, i, size: int, value: Array) -> Array:
  return jax.lax.dynamic_update_slice_in_dim(x, value.astype(x.dtype),
                                             i * size, axis=axis)


def _add(x: Array, axis: int, i, size: int, value: Array) -> Array:
  return _put(x, axis, i, size, _cut(x, axis, i, size) + value)


def _flash_forward(scoring: Scoring, q_offset: int, qg, q_pos, window,
                   own: KeySet, prefix: KeySet | None):
  """(out [B,K,G,T,H] in q's dtype, softmax max m and sum l [B,K,G,T]).

  Online softmax: the state (m, l, o) of every query lives in [B,K,G,Tp]
  float32 arrays that each pair updates in place at its query block.
  """
  b, kh, g, t, h = qg.shape
  bq = min(BLOCK_Q, t)
  tp = -(-t // bq) * bq
  qg, q_pos = _pad_axis(qg, 3, tp), _pad_axis(q_pos, 1, tp)
  state = _empty(b, kh, g, tp, h)
  for sw in _sweeps(t, bq, own, prefix, q_offset):
    qi, kj = jnp.asarray(sw.qi), jnp.asarray(sw.kj)

    def body(carry, sw=sw, qi=qi, kj=kj):
      n, st = carry
      i, j = qi[n], kj[n]
      kb, vis = _pair_keys(sw, q_pos, i, j, bq, window)
      s, _ = _logits(_cut(qg, 3, i, bq), kb.k, vis, scoring)
      m, l, o = (_cut(a, 3, i, bq) for a in st)
      m_new = jnp.maximum(m, jnp.max(s, axis=-1))
      p = jnp.exp(s - m_new[..., None])
      alpha = jnp.exp(m - m_new)
      l = l * alpha + jnp.sum(p, axis=-1)
      o = o * alpha[..., None] + _pk(p, kb.v)
      return n + 1, _Partial(_put(st.m, 3, i, bq, m_new),
                             _put(st.l, 3, i, bq, l), _put(st.o, 3, i, bq, o))

    # A while loop, not a scan: a remat policy that saves dots would split a
    # scan and save its products stacked over all pairs (and any policy its
    # masks); a while loop is recomputed whole. XLA still knows its trips.
    pairs = len(sw.qi)
    state = jax.lax.while_loop(lambda c, pairs=pairs: c[0] < pairs, body,
                               (jnp.int32(0), state))[1]
  out = (state.o / state.l[..., None]).astype(qg.dtype)
  return out[:, :, :, :t], state.m[..., :t], state.l[..., :t]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _flash(scoring: Scoring, q_offset: int, q: Array, q_pos: Array,
           window: Array, own: KeySet, prefix: KeySet | None) -> Array:
  """Attention of q [B,T,N,H] -> [B,T,N,H] (the o projection's layout, so
  that the output saved for the backward pass is the one it saves)."""
  return _flash_fwd(scoring, q_offset, q, q_pos, window, own, prefix)[0]


def _flash_fwd(scoring, q_offset, q, q_pos, window, own, prefix):
  out, m, l = _flash_forward(scoring, q_offset, _grouped(q, own.k.shape[1]),
                             q_pos, window, own, prefix)
  out = _ungrouped(out)
  return out, (q, q_pos, window, own, prefix, out, m, l)


class _Rows(NamedTuple):
  """What the backward pass of a query block needs per row."""

  q: Array  # [B,K,G,t,H] queries
  do: Array  # [B,K,G,t,H] output cotangent
  m: Array  # [B,K,G,t] softmax max over every key the row was given
  inv_l: Array  # [B,K,G,t] 1 / softmax sum
  delta: Array  # [B,K,G,t] sum(do * out): the softmax's backward term


def _block_grads(rows: _Rows, keys: KeySet, visible: Array,
                 scoring: Scoring) -> tuple[Array, Array, Array]:
  """(dq [B,K,G,t,H], dk, dv [B|1,K,s,H]) of a query block over a key block."""
  c, tanh = _logits(rows.q, keys.k, visible, scoring)
  # The forward's probabilities, exact for rows that see no key as well
  # (there m = NEG and p = 1 / l, uniform).
  p = jnp.exp(c - rows.m[..., None]) * rows.inv_l[..., None]
  dp = _qk(rows.do, keys.v)
  # Masked logits are constants: no gradient reaches them.
  ds = p * (dp - rows.delta[..., None]) * visible[:, None, None].astype(
      jnp.float32)
  if tanh is not None:
    ds = ds * (1.0 - tanh * tanh)
  ds = ds * scoring.scale
  shared = keys.k.shape[0] == 1 and rows.q.shape[0] != 1
  return (_pk(ds, keys.k), _pt(ds, rows.q, shared),
          _pt(p, rows.do, shared))


def _flash_bwd(scoring, q_offset, res, dout):
  """Recomputes each pair's probabilities from the saved m and l."""
  q, q_pos, window, own, prefix, out, m, l = res
  f32 = jnp.float32
  kh = own.k.shape[1]
  t = q.shape[1]
  bq = min(BLOCK_Q, t)
  tp = -(-t // bq) * bq
  delta = _grouped(jnp.sum(dout.astype(f32) * out.astype(f32), axis=-1), kh)
  # Padded query rows have a zero cotangent: they add nothing.
  rows = _Rows(*(_pad_axis(x, 3, tp) for x in (
      _grouped(q, kh), _grouped(dout, kh), m, 1.0 / l, delta)))
  q_pos = _pad_axis(q_pos, 1, tp)
  dq = jnp.zeros(rows.q.shape, f32)
  dkeys = []
  for sw in _sweeps(t, bq, own, prefix, q_offset):

    def body(carry, x, sw=sw):
      dq, dk, dv = carry
      i, j = x
      kb, vis = _pair_keys(sw, q_pos, i, j, bq, window)
      dqb, dkb, dvb = _block_grads(
          _Rows(*(_cut(r, 3, i, bq) for r in rows)), kb, vis, scoring)
      return (_add(dq, 3, i, bq, dqb), _add(dk, 2, j, sw.bk, dkb),
              _add(dv, 2, j, sw.bk, dvb)), None

    dq, dk, dv = jax.lax.scan(
        body, (dq, jnp.zeros(sw.keys.k.shape, f32),
               jnp.zeros(sw.keys.v.shape, f32)), (sw.qi, sw.kj))[0]
    dkeys.append((dk, dv))

  def key_grads(keys: KeySet, grads) -> KeySet:
    s = keys.k.shape[2]
    return KeySet(grads[0][:, :, :s].astype(keys.k.dtype),
                  grads[1][:, :, :s].astype(keys.v.dtype), None)

  return (_ungrouped(dq[:, :, :, :t]).astype(q.dtype), None, None,
          key_grads(own, dkeys[-1]),
          None if prefix is None else key_grads(prefix, dkeys[0]))


_flash.defvjp(_flash_fwd, _flash_bwd)


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
