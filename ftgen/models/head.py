"""The output projection in token chunks: never a [B, T, V] logits array.

With Gemma's 262,144-token vocabulary, float32 logits for a batch of
8 x 288 tokens take 2.4 GB, and autodiff keeps the softmax for the backward
pass too. Scoring and the training loss only need, per token, the target's
log-probability (and whether it is the argmax), so the decoder returns its
final hidden states (`return_hidden=True`) and this module projects them
onto the vocabulary about `chunk_tokens` tokens at a time:

* `target_logprobs`: forward only (scoring).
* `weighted_xent`: the training loss sum(w * -log p(target)), with a custom
  VJP that forms the gradient for the hidden states (and, when asked, for
  the output matrix) chunk by chunk in the forward pass, from the chunk's
  softmax, so the backward pass neither stores nor recomputes logits. The
  FLOPs are those of the unchunked loss; peak memory is one chunk's logits.

Chunks run along the length axis (chunk_tokens // B positions of every
row); the length is padded to a multiple of the chunk (padded positions
carry zero weight).

Sharded runs are vocabulary-parallel over the devices that split the batch
(P of them: the mesh axes of the logical 'batch' axis). The output matrix,
cast to the compute dtype on its own shards, is split into P vocabulary
slices [P, V/P, D], one per device (an all-to-all, never a full copy); each
chunk's hidden states are gathered (a few MB), each device projects them
onto its own slice, and log-sum-exp, target logit and argmax combine the P
slices with reductions of one number per token. Each device's gradient for
its slice of the matrix is then complete, with no reduction at all; the
hidden-state gradient is kept as P per-slice partial sums and reduced once,
after the chunk loop. So no device holds the whole matrix or its float32
gradient, and nothing of the matrix's size crosses devices per chunk. With
no mesh, P = 1 and this is the plain computation.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ftgen.models.config import ModelConfig
from ftgen.models.layers import constrain

Array = jax.Array

# Float32 logits of one chunk: 1024 x 262,144 x 4 B = 1 GiB for Gemma,
# 0.2 GiB for SmolLM2; big enough that each chunk is one efficient matmul.
CHUNK_TOKENS = 1024

# Logical axes of the vocabulary-split matrix [P, V/P, D] and of the chunk
# logits [B, C, P, V/P] (ftgen/parallel/rules.py): the slices follow the
# devices of the batch, and within a slice the vocabulary is split like the
# logits of the full-logits path (tensor parallelism).
_SLICE_AXES = ("batch", "act_vocab", None)
_LOGIT_AXES = (None, None, "batch", "act_vocab")


def head_matrix(config: ModelConfig, params: Any) -> Array:
  """The output projection [V, D] (tied embedding) or [D, V] (lm_head)."""
  w = (params["embedder"]["embedding"] if config.tie_embeddings
       else params["lm_head"]["kernel"])
  return w.unbox() if hasattr(w, "unbox") else w  # Boxed by flax metadata.


def _matrix_axes(config: ModelConfig) -> tuple[str, str]:
  """Logical axes of the output matrix param."""
  return ("vocab", "embed") if config.tie_embeddings else ("embed", "vocab")


def _vocab_slices(vocab: int, rows: int) -> int:
  """P: how many devices split a batch of `rows` rows (1 without a mesh).

  The mesh axes are those of the logical 'batch' axis in the active rules
  (ftgen/parallel/rules.py); 1 when they do not divide the rows or the
  vocabulary (then the matrix is used whole, as on one device).
  """
  mesh = jax.sharding.get_abstract_mesh()
  axes = nn.logical_to_mesh_axes(("batch",))[0]  # None without rules.
  if mesh.empty or axes is None:
    return 1
  axes = (axes,) if isinstance(axes, str) else tuple(axes)
  p = math.prod(mesh.shape[a] for a in axes)
  return p if rows % p == 0 and vocab % p == 0 else 1


def _sliced_matrix(config: ModelConfig, w: Array, dtype, p: int) -> Array:
  """The output matrix as [P, V/P, D] in the compute dtype, one slice per
  device (cast on the param's own shards first: half the bytes move)."""
  w = constrain(w.astype(dtype), _matrix_axes(config))
  if not config.tie_embeddings:
    w = w.T
  v, d = w.shape
  return constrain(w.reshape(p, v // p, d), _SLICE_AXES)


def _unsliced_gradient(config: ModelConfig, dw: Array) -> Array:
  """[P, V/P, D] slice gradients -> the param's shape and sharding."""
  p, vp, d = dw.shape
  dw = dw.reshape(p * vp, d)
  if not config.tie_embeddings:
    dw = dw.T
  return constrain(dw, _matrix_axes(config))


def _logits(config: ModelConfig, x: Array, w: Array) -> Array:
  """[B, C, D] hidden x [P, V/P, D] slices -> [B, C, P, V/P] float32 logits
  (soft-capped if set); the chunk is gathered, the slices stay put."""
  x = constrain(x, (None, None, None))
  logits = jnp.einsum("BCD,PVD->BCPV", x, w,
                      preferred_element_type=jnp.float32)
  if config.final_logit_softcap is not None:
    cap = config.final_logit_softcap
    logits = cap * jnp.tanh(logits / cap)
  return constrain(logits, _LOGIT_AXES)


def _chunked(x: Array, chunk_tokens: int) -> tuple[Array, int]:
  """[B, T, ...] -> [N, B, C, ...]: C = T / N <= chunk_tokens / B (or 1)."""
  b, t = x.shape[:2]
  n = max(1, -(-t // max(chunk_tokens // b, 1)))
  c = -(-t // n)  # Even chunks: pad at most n - 1 positions.
  pad = n * c - t
  if pad:
    x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
  x = x.reshape((b, n, c) + x.shape[2:])
  return jnp.moveaxis(x, 1, 0), t


def _unchunked(x: Array, t: int) -> Array:
  """Inverse of `_chunked`: [N, B, C, ...] -> [B, T, ...]."""
  x = jnp.moveaxis(x, 0, 1)
  x = x.reshape((x.shape[0], -1) + x.shape[3:])
  return x[:, :t]


def _gathered(x: Array) -> Array:
  """Chunked per-token ids or weights [N, B, C], on every device: each
  vocabulary slice needs every row's (a few KB, gathered once, not per
  chunk)."""
  return constrain(x, (None, None, None))


def _token_ids(logits: Array) -> Array:
  """[P, V/P] vocabulary ids of the slices of [B, C, P, V/P] logits."""
  p, vp = logits.shape[-2:]
  return (jnp.arange(p)[:, None] * vp + jnp.arange(vp)[None, :]).astype(
      jnp.int32)


def _picked_lse_argmax(logits: Array, targets: Array):
  """Target logit, log-sum-exp and target-is-argmax of [B, C, P, V/P]
  logits: each a reduction over both vocabulary axes, so a sliced
  vocabulary exchanges one number per token and slice (no gather).
  `argmax` semantics: the first index of the maximum."""
  ids = _token_ids(logits)
  is_target = ids == targets[..., None, None]
  vocab = (-2, -1)
  lse = jax.nn.logsumexp(logits, axis=vocab)
  picked = jnp.sum(jnp.where(is_target, logits, 0.0), axis=vocab)
  top = jnp.max(logits, axis=vocab, keepdims=True)
  first_top = jnp.min(jnp.where(logits == top, ids, ids.size), axis=vocab)
  return picked, lse, first_top == targets


def target_logprobs(config: ModelConfig, params: Any, hidden: Array,
                    targets: Array, chunk_tokens: int = CHUNK_TOKENS
                    ) -> tuple[Array, Array]:
  """Per-token log p(target) [B, T] float32 and target-is-argmax [B, T]."""
  w = head_matrix(config, params)
  p = _vocab_slices(w.size // config.embed_dim, hidden.shape[0])
  w = _sliced_matrix(config, w, hidden.dtype, p)
  xs, t = _chunked(hidden, chunk_tokens)
  ys = _gathered(_chunked(targets, chunk_tokens)[0])

  def one(_, xy):
    picked, lse, top = _picked_lse_argmax(_logits(config, xy[0], w), xy[1])
    return None, (picked - lse, top)

  _, (logp, top) = jax.lax.scan(one, None, (xs, ys))
  return _unchunked(logp, t), _unchunked(top, t)


def weighted_xent(config: ModelConfig, params: Any, hidden: Array,
                  targets: Array, weights: Array,
                  chunk_tokens: int = CHUNK_TOKENS,
                  head_grad: bool = True) -> tuple[Array, Array]:
  """(sum of w * -log p(target), sum of w * [target is argmax]).

  Args:
    config: the architecture (tied or not, logit soft-cap).
    params: the decoder params (only the output matrix is read).
    hidden: final hidden states [B, T, D] (`Decoder(..., return_hidden=True)`).
    targets: [B, T] int target ids.
    weights: [B, T] float loss weights (0 for unscored positions).
    chunk_tokens: tokens (rows x positions) projected at a time.
    head_grad: form the output matrix's gradient (False when it is frozen,
      as under LoRA: saves a [V, D] accumulation per chunk).
  """
  w = head_matrix(config, params)
  return _xent(config, chunk_tokens, head_grad, hidden, w, targets,
               weights.astype(jnp.float32))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _xent(config, chunk_tokens, head_grad, hidden, w, targets, weights):
  del head_grad
  p = _vocab_slices(w.size // config.embed_dim, hidden.shape[0])
  wp = _sliced_matrix(config, w, hidden.dtype, p)
  xs, _ = _chunked(hidden, chunk_tokens)
  ys = _gathered(_chunked(targets, chunk_tokens)[0])
  ws = _gathered(_chunked(weights, chunk_tokens)[0])

  def one(carry, xyw):
    x, y, wt = xyw
    picked, lse, top = _picked_lse_argmax(_logits(config, x, wp), y)
    return (carry[0] + jnp.sum(wt * (lse - picked)),
            carry[1] + jnp.sum(wt * top)), None

  (loss, correct), _ = jax.lax.scan(one, (jnp.float32(0), jnp.float32(0)),
                                    (xs, ys, ws))
  return loss, correct


def _xent_fwd(config, chunk_tokens, head_grad, hidden, w, targets, weights):
  p = _vocab_slices(w.size // config.embed_dim, hidden.shape[0])
  wp = _sliced_matrix(config, w, hidden.dtype, p)
  xs, t = _chunked(hidden, chunk_tokens)
  ys = _gathered(_chunked(targets, chunk_tokens)[0])
  ws = _gathered(_chunked(weights, chunk_tokens)[0])
  cap = config.final_logit_softcap

  def one(carry, xyw):
    loss, correct, dw = carry
    x, y, wt = xyw
    z = _logits(config, x, wp)
    picked, lse, top = _picked_lse_argmax(z, y)
    # d loss / d z = w * (softmax(z) - onehot(y)); through the soft-cap,
    # d z / d logits = 1 - (z / cap)^2.
    g = jnp.exp(z - lse[..., None, None])
    g = g - (_token_ids(z) == y[..., None, None]).astype(g.dtype)
    g = g * wt[..., None, None]
    if cap is not None:
      g = g * (1.0 - jnp.square(z / cap))
    g = g.astype(x.dtype)
    # Per-slice partial sums of the hidden-state gradient: summed over the
    # slices once, after the loop.
    dx = constrain(jnp.einsum("BCPV,PVD->PBCD", g, wp,
                              preferred_element_type=jnp.float32),
                   ("batch", None, None, None))
    if head_grad:  # Each slice's gradient is whole on its own device.
      x = constrain(x, (None, None, None))
      dw = constrain(dw + jnp.einsum("BCPV,BCD->PVD", g, x,
                                     preferred_element_type=jnp.float32),
                     _SLICE_AXES)
    return (loss + jnp.sum(wt * (lse - picked)),
            correct + jnp.sum(wt * top), dw), dx

  dw0 = (constrain(jnp.zeros(wp.shape, jnp.float32), _SLICE_AXES)
         if head_grad else jnp.zeros((), jnp.float32))
  (loss, correct, dw), dxs = jax.lax.scan(
      one, (jnp.float32(0), jnp.float32(0), dw0), (xs, ys, ws))
  # [N, P, B, C, D] -> [B, T, D]: the one reduction of the hidden gradient.
  dx = _unchunked(jnp.sum(dxs, axis=1), t)
  dx = constrain(dx, ("batch", "length", "act_embed")).astype(hidden.dtype)
  if head_grad:
    dw = _unsliced_gradient(config, dw)
  return (loss, correct), (dx, dw, w, targets, weights)


def _xent_bwd(config, chunk_tokens, head_grad, res, cts):
  del config, chunk_tokens
  dx, dw, w, targets, weights = res
  ct = cts[0]  # The argmax count has no gradient.
  dx = (dx * ct.astype(dx.dtype)).astype(dx.dtype)
  if head_grad:
    dw = (dw * ct).astype(w.dtype)
  else:
    dw = jnp.zeros_like(w)
  # Integer targets take a float0 cotangent; weights are data, not trained.
  return (dx, dw, jnp.zeros(targets.shape, jax.dtypes.float0),
          jnp.zeros_like(weights))


_xent.defvjp(_xent_fwd, _xent_bwd)
