"""Attention kernels against a dense reference written from the rules.

The reference materializes every [T, S] score and applies the visibility
rule of ftgen/models/attention_ops.py literally; the blockwise kernel must
agree with it (values and gradients) with blocks small enough that every
path runs: several query blocks, causal key spans, a long prefix in a key
loop, a cache prefill that visits only filled blocks, and one-token decode.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.models import attention_ops as ops

TOL = 1e-5


def _reference(q, q_pos, window, own, prefix, scoring, q_offset=0):
  """Dense attention: one softmax over [prefix keys, own keys]."""
  b, t, n, h = q.shape
  kh = own.k.shape[1]
  qg = q.reshape(b, t, kh, n // kh, h)
  q_slot = q_offset + np.arange(t)

  def scores(k, k_pos, causal):
    kk = jnp.broadcast_to(k, (b,) + k.shape[1:])
    s = jnp.einsum("BTKGH,BKSH->BKGTS", qg, kk) * scoring.scale
    if scoring.softcap is not None:
      s = scoring.softcap * jnp.tanh(s / scoring.softcap)
    kp = jnp.broadcast_to(k_pos, (b, k_pos.shape[-1]))
    ok = (kp[:, None, :] >= 0) & (q_pos[:, :, None] - kp[:, None, :] < window)
    if causal:
      ok &= np.arange(kp.shape[1])[None, None, :] <= q_slot[None, :, None]
    return jnp.where(ok[:, None, None], s, ops.NEG)

  parts = [scores(own.k, own.pos, True)]
  values = [jnp.broadcast_to(own.v, (b,) + own.v.shape[1:])]
  if prefix is not None:
    parts.insert(0, scores(prefix.k, prefix.pos, False))
    values.insert(0, jnp.broadcast_to(prefix.v, (b,) + prefix.v.shape[1:]))
  p = jax.nn.softmax(jnp.concatenate(parts, -1), -1)
  out = jnp.einsum("BKGTS,BKSH->BTKGH", p, jnp.concatenate(values, 2))
  return out.reshape(b, t, n, h)


def _keys(rng, b, kh, s, h, pos):
  k = jnp.asarray(rng.normal(size=(b, kh, s, h)), jnp.float32)
  v = jnp.asarray(rng.normal(size=(b, kh, s, h)), jnp.float32)
  return ops.KeySet(k, v, jnp.asarray(pos, jnp.int32))


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
  monkeypatch.setattr(ops, "BLOCK_Q", 8)
  monkeypatch.setattr(ops, "BLOCK_K", 16)


def _case(seed, t=37, s_extra=0, pad=True, prefix_len=0, n=4, kh=2, h=8):
  rng = np.random.default_rng(seed)
  b = 2
  q = jnp.asarray(rng.normal(size=(b, t, n, h)), jnp.float32)
  pos = np.tile(np.arange(t), (b, 1)) + prefix_len
  own_pos = pos.copy()
  if pad:  # Row 1: 5 left-padding tokens, positions count valid tokens.
    own_pos[1, :5] = -1
    pos[1] = np.maximum(np.arange(t) - 5, 0) + prefix_len
    own_pos[1, 5:] = pos[1, 5:]
  own = _keys(rng, b, kh, t + s_extra, h,
              np.pad(own_pos, ((0, 0), (0, s_extra)), constant_values=-1))
  prefix = None
  if prefix_len:
    ppos = np.arange(prefix_len)
    ppos[-3:] = -1  # Padding slots at the end of a prefill.
    prefix = _keys(rng, 1, kh, prefix_len, h, ppos[None])
  return q, jnp.asarray(pos, jnp.int32), own, prefix


@pytest.mark.parametrize("window", [1 << 30, 6])
@pytest.mark.parametrize("softcap", [None, 5.0])
@pytest.mark.parametrize("prefix_len", [0, 64])
def test_blockwise_matches_dense_reference(window, softcap, prefix_len):
  q, q_pos, own, prefix = _case(0, prefix_len=prefix_len)
  scoring = ops.Scoring(0.3, softcap)
  want = _reference(q, q_pos, window, own, prefix, scoring)
  got = ops.xla_attention(q, q_pos, window, own, prefix, scoring)
  np.testing.assert_allclose(got[0], want[0], atol=TOL)
  np.testing.assert_allclose(got[1, 5:], want[1, 5:], atol=TOL)  # Valid.
  # A traced window (a layer scan) gives the same result.
  traced = jax.jit(lambda w: ops.xla_attention(q, q_pos, w, own, prefix,
                                               scoring))(window)
  np.testing.assert_allclose(traced, got, atol=TOL)


def test_blockwise_gradients_match_dense_reference():
  q, q_pos, own, prefix = _case(1, prefix_len=32)
  scoring = ops.Scoring(0.3, 5.0)
  w = jnp.asarray(np.random.default_rng(2).normal(size=q.shape), jnp.float32)

  def loss(fn, q, k, v):
    keys = ops.KeySet(k, v, own.pos)
    return jnp.sum(fn(q, q_pos, 6, keys, prefix, scoring)[0] * w[0])

  want = jax.grad(lambda *a: loss(_reference, *a), (0, 1, 2))(
      q, own.k, own.v)
  got = jax.grad(lambda *a: loss(ops.xla_attention, *a), (0, 1, 2))(
      q, own.k, own.v)
  for g, r in zip(got, want):
    assert np.abs(np.asarray(r)).max() > 1e-3
    np.testing.assert_allclose(g, r, atol=TOL)


def _valid_rows_loss(fn, q, q_pos, window, own, prefix, scoring, w):
  """Weighted sum of the outputs of every query that sees a key."""
  out = fn(q, q_pos, window, own, prefix, scoring)
  return jnp.sum(out[0] * w[0]) + jnp.sum(out[1, 5:] * w[1, 5:])


@pytest.mark.parametrize("window", [1 << 30, 6])
@pytest.mark.parametrize("softcap", [None, 5.0])
@pytest.mark.parametrize("prefix_len", [0, 12, 64])
def test_gradients_of_every_input_match_dense_reference(window, softcap,
                                                        prefix_len):
  """dq, own dk/dv and prefix dk/dv of the custom VJP, both rows.

  A 12-key prefix is one key block, a 64-key one a loop of 4; the window
  is traced (a layer scan's), as in training.
  """
  q, q_pos, own, prefix = _case(6, prefix_len=prefix_len)
  scoring = ops.Scoring(0.3, softcap)
  w = jnp.asarray(np.random.default_rng(7).normal(size=q.shape), jnp.float32)

  def grads(fn):
    def loss(q, k, v, pk, pv, window):
      pre = None if prefix is None else ops.KeySet(pk, pv, prefix.pos)
      return _valid_rows_loss(fn, q, q_pos, window, ops.KeySet(k, v, own.pos),
                              pre, scoring, w)
    pk, pv = (None, None) if prefix is None else (prefix.k, prefix.v)
    argnums = (0, 1, 2) if prefix is None else (0, 1, 2, 3, 4)
    return jax.jit(jax.grad(loss, argnums))(q, own.k, own.v, pk, pv, window)

  want, got = grads(_reference), grads(ops.xla_attention)
  for g, r in zip(got, want):
    assert np.abs(np.asarray(r)).max() > 1e-3
    np.testing.assert_allclose(g, r, atol=TOL)


@pytest.mark.parametrize("t,s_extra,n,kh,prefix_len", [
    (37, 0, 4, 2, 0),  # Query and key blocks padded to the block size.
    (37, 5, 4, 1, 64),  # Own slots after the last query, one kv head.
    (5, 0, 4, 4, 12),  # One block shorter than BLOCK_Q, no grouping.
    (16, 0, 4, 2, 0),  # Whole blocks, nothing padded.
])
def test_custom_vjp_is_the_derivative_of_its_forward(t, s_extra, n, kh,
                                                     prefix_len, monkeypatch):
  """On every row, those that see no key included (their softmax is the
  uniform one the forward computes): the custom VJP against the Jacobian
  of the same blockwise forward (forward-mode: its pair loop is a while
  loop, which reverse-mode autodiff cannot take)."""
  # Masked logits are constants (NEG): differentiating the additive mask
  # would pass derivatives through them, the same values selected pass none.
  monkeypatch.setattr(ops, "_mask", lambda s, vis: jnp.where(
      vis[:, None, None], s, ops.NEG))
  q, q_pos, own, prefix = _case(8, t=t, s_extra=s_extra, n=n, kh=kh,
                                prefix_len=prefix_len)
  scoring = ops.Scoring(0.3, 5.0)
  cot = jnp.asarray(np.random.default_rng(9).normal(size=q.shape),
                    jnp.float32)
  args = (q, own.k, own.v) + (() if prefix is None else (prefix.k, prefix.v))

  def attention(forward_only, q, k, v, pk=None, pv=None):
    own_ = ops.KeySet(k, v, own.pos)
    pre = None if prefix is None else ops.KeySet(pk, pv, prefix.pos)
    if not forward_only:
      return ops.xla_attention(q, q_pos, 6, own_, pre, scoring)
    out = ops._flash_forward(scoring, 0, ops._grouped(q, kh), q_pos,
                             jnp.int32(6), own_, pre)[0]
    return ops._ungrouped(out)

  out, back = jax.vjp(functools.partial(attention, False), *args)
  got = back(cot)
  jacobians = jax.jacfwd(functools.partial(attention, True),
                         argnums=tuple(range(len(args))))(*args)
  want = [jnp.tensordot(cot, j, axes=cot.ndim) for j in jacobians]
  np.testing.assert_allclose(out, attention(True, *args), atol=TOL)
  assert len(got) == len(want) == len(args)
  for g, r in zip(got, want):
    np.testing.assert_allclose(g, r, atol=TOL)


@pytest.mark.parametrize("t", [1, 12])
def test_cache_offsets_and_filled_blocks(t):
  """Queries at cache slots [10, 10+t) over a 64-slot cache, 10+t filled."""
  start = 10
  rng = np.random.default_rng(3)
  b, n, kh, h, s = 2, 4, 2, 8, 64
  q = jnp.asarray(rng.normal(size=(b, t, n, h)), jnp.float32)
  kpos = np.full((b, s), -1)
  kpos[:, :start + t] = np.arange(start + t)
  kpos[1, :2] = -1  # Padding slots at the start of row 1.
  own = _keys(rng, b, kh, s, h, kpos)
  q_pos = jnp.asarray(np.tile(np.arange(start, start + t), (b, 1)))
  scoring = ops.Scoring(0.3, None)
  want = _reference(q, q_pos, 7, own, None, scoring, q_offset=start)
  run = jax.jit(lambda off, f: ops.xla_attention(
      q, q_pos, 7, own, None, scoring, q_offset=off, filled=f))
  got = run(jnp.int32(start), jnp.int32(start + t))
  np.testing.assert_allclose(got, want, atol=TOL)


def test_decode_reads_each_cache_once_without_copies():
  """One-token decode: the score dot takes the [B,K,S,H] cache as is."""
  b, n, kh, h, s = 4, 8, 2, 16, 256
  sd = jax.ShapeDtypeStruct
  own = ops.KeySet(sd((b, kh, s, h), jnp.float32),
                   sd((b, kh, s, h), jnp.float32), sd((b, s), jnp.int32))
  fn = lambda q, pos, own, off: ops.xla_attention(
      q, pos, 1 << 30, own, None, ops.Scoring(1.0, None), q_offset=off,
      filled=off + 1)
  hlo = jax.jit(fn).lower(sd((b, 1, n, h), jnp.float32),
                          sd((b, 1), jnp.int32), own,
                          sd((), jnp.int32)).compile().as_text()
  # Nothing but the inputs has the cache's shape: no copy, transpose,
  # broadcast or slice of it.
  whole = f"f32[{b},{kh},{s},{h}]"
  made = [line.strip() for line in hlo.splitlines()
          if f"= {whole}" in line and " parameter(" not in line]
  assert not made, made


def test_platform_kernels_fall_back_on_cpu(caplog):
  if jax.default_backend() != "cpu":
    pytest.skip("checks the fallback on a CPU backend")
  q, q_pos, own, _ = _case(4, pad=False)
  scoring = ops.Scoring(0.3, None)
  want = ops.xla_attention(q, q_pos, 6, own, None, scoring)
  for impl in ("auto", "cudnn", "splash"):
    got = ops.attend(q, q_pos, 6, own, None, scoring, impl=impl)
    np.testing.assert_array_equal(got, want)
  with pytest.raises(ValueError, match="allowed: auto, xla, cudnn, splash"):
    ops.attend(q, q_pos, 6, own, None, scoring, impl="flash")


@pytest.mark.parametrize("impl,backend", [("cudnn", "gpu"),
                                          ("splash", "tpu")])
def test_platform_kernel_matches_reference(impl, backend):
  if jax.default_backend() != backend:
    pytest.skip(f"{impl} needs a {backend.upper()}; this run has "
                f"{jax.default_backend()} (benchmarks/gpu.sh runs it)")
  q, q_pos, own, _ = _case(5, t=256, pad=False, n=8, kh=2, h=64)
  dt = jnp.bfloat16
  q = q.astype(dt)
  own = ops.KeySet(own.k.astype(dt), own.v.astype(dt), own.pos)
  scoring = ops.Scoring(64 ** -0.5, None if impl == "cudnn" else 20.0)
  for window in (1 << 30, 32):
    want = ops.xla_attention(q, q_pos, window, own, None, scoring)
    got = ops.attend(q, q_pos, window, own, None, scoring, impl=impl)
    np.testing.assert_allclose(np.float32(got), np.float32(want), atol=2e-2)
