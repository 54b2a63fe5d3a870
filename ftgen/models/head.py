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
row), so a batch sharded over devices stays sharded; the length is padded to
a multiple of the chunk (padded positions carry zero weight).

Sharded (FSDP) runs: the output matrix is cast to the compute dtype once, on
its shards, so it is gathered once per step in that dtype. Each device's
output-matrix gradient is a partial sum over its own rows of the batch; it
is accumulated over the chunks in a [P, V, D] carry whose leading axis is
split like the batch (P = the devices the batch is split over, so no
device-to-device traffic per chunk) and summed over P once, after the
chunk loop, into the output matrix's own sharding: one reduce-scatter per
step instead of an all-reduce of the whole matrix per chunk.
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


def head_matrix(config: ModelConfig, params: Any) -> Array:
  """The output projection [V, D] (tied embedding) or [D, V] (lm_head)."""
  w = (params["embedder"]["embedding"] if config.tie_embeddings
       else params["lm_head"]["kernel"])
  return w.unbox() if hasattr(w, "unbox") else w  # Boxed by flax metadata.


def _matrix_axes(config: ModelConfig) -> tuple[str, str]:
  """Logical axes of the output matrix (those of its param)."""
  return ("vocab", "embed") if config.tie_embeddings else ("embed", "vocab")


def _gathered_axes(config: ModelConfig) -> tuple[str | None, ...]:
  """The output matrix as the chunk loop uses it: vocabulary split as the
  logits are (`act_vocab`), model width whole."""
  return tuple("act_vocab" if a == "vocab" else None
               for a in _matrix_axes(config))


def _compute_matrix(config: ModelConfig, w: Array, dtype) -> Array:
  """The output matrix in the compute dtype, gathered once for all chunks.

  Cast on the param's own shards first, so a sharded run gathers it in the
  compute dtype (half the bytes of float32), before the chunk loop rather
  than in it.
  """
  w = constrain(w.astype(dtype), _matrix_axes(config))
  return constrain(w, _gathered_axes(config))


def _batch_shards(b: int) -> int:
  """How many devices split a batch of `b` rows: 1 without a mesh.

  The mesh axes are those of the logical 'batch' axis in the active rules
  (ftgen/parallel/rules.py); 1 when they do not divide `b` (the batch is
  then not split over all of them).
  """
  mesh = jax.sharding.get_abstract_mesh()
  axes = nn.logical_to_mesh_axes(("batch",))[0]  # None without rules.
  if mesh.empty or axes is None:
    return 1
  axes = (axes,) if isinstance(axes, str) else tuple(axes)
  p = math.prod(mesh.shape[a] for a in axes)
  return p if b % p == 0 else 1


def _logits(config: ModelConfig, x: Array, w: Array) -> Array:
  """[B, C, D] hidden -> [B, C, V] float32 logits (soft-capped if set)."""
  spec = "BCD,VD->BCV" if config.tie_embeddings else "BCD,DV->BCV"
  logits = jnp.einsum(spec, x, w.astype(x.dtype),
                      preferred_element_type=jnp.float32)
  if config.final_logit_softcap is not None:
    cap = config.final_logit_softcap
    logits = cap * jnp.tanh(logits / cap)
  return logits


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


def _picked_lse_argmax(logits: Array, targets: Array):
  lse = jax.nn.logsumexp(logits, axis=-1)
  picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return picked, lse, jnp.argmax(logits, axis=-1) == targets


def target_logprobs(config: ModelConfig, params: Any, hidden: Array,
                    targets: Array, chunk_tokens: int = CHUNK_TOKENS
                    ) -> tuple[Array, Array]:
  """Per-token log p(target) [B, T] float32 and target-is-argmax [B, T]."""
  w = _compute_matrix(config, head_matrix(config, params), hidden.dtype)
  xs, t = _chunked(hidden, chunk_tokens)
  ys, _ = _chunked(targets, chunk_tokens)

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
  xs, _ = _chunked(hidden, chunk_tokens)
  ys, _ = _chunked(targets, chunk_tokens)
  ws, _ = _chunked(weights, chunk_tokens)
  wc = _compute_matrix(config, w, hidden.dtype)

  def one(carry, xyw):
    x, y, wt = xyw
    picked, lse, top = _picked_lse_argmax(_logits(config, x, wc), y)
    return (carry[0] + jnp.sum(wt * (lse - picked)),
            carry[1] + jnp.sum(wt * top)), None

  (loss, correct), _ = jax.lax.scan(one, (jnp.float32(0), jnp.float32(0)),
                                    (xs, ys, ws))
  return loss, correct


def _xent_fwd(config, chunk_tokens, head_grad, hidden, w, targets, weights):
  xs, t = _chunked(hidden, chunk_tokens)
  ys, _ = _chunked(targets, chunk_tokens)
  ws, _ = _chunked(weights, chunk_tokens)
  tied = config.tie_embeddings
  cap = config.final_logit_softcap
  x_spec = "BCV,VD->BCD" if tied else "BCV,DV->BCD"
  # P: the devices the batch rows are split over (module docstring).
  w_spec = "PBCV,PBCD->PVD" if tied else "PBCV,PBCD->PDV"
  matrix_axes = _matrix_axes(config)
  b = hidden.shape[0]
  p = _batch_shards(b)
  dw_axes = ("batch" if p > 1 else None,) + _gathered_axes(config)
  wc = _compute_matrix(config, w, hidden.dtype)

  def one(carry, xyw):
    loss, correct, dw = carry
    x, y, wt = xyw
    z = _logits(config, x, wc)
    picked, lse, top = _picked_lse_argmax(z, y)
    # d loss / d z = w * (softmax(z) - onehot(y)); through the soft-cap,
    # d z / d logits = 1 - (z / cap)^2.
    g = jnp.exp(z - lse[..., None])
    g = g - jax.nn.one_hot(y, z.shape[-1], dtype=g.dtype)
    g = g * wt[..., None]
    if cap is not None:
      g = g * (1.0 - jnp.square(z / cap))
    g = g.astype(x.dtype)
    dx = jnp.einsum(x_spec, g, wc,
                    preferred_element_type=jnp.float32).astype(x.dtype)
    if head_grad:
      split = lambda a: a.reshape((p, b // p) + a.shape[1:])
      dw = constrain(dw + jnp.einsum(w_spec, split(g), split(x),
                                     preferred_element_type=jnp.float32),
                     dw_axes)
    return (loss + jnp.sum(wt * (lse - picked)),
            correct + jnp.sum(wt * top), dw), dx

  dw0 = (constrain(jnp.zeros((p,) + w.shape, jnp.float32), dw_axes)
         if head_grad else jnp.zeros((), jnp.float32))
  (loss, correct, dw), dxs = jax.lax.scan(
      one, (jnp.float32(0), jnp.float32(0), dw0), (xs, ys, ws))
  if head_grad:  # The one cross-device reduction, into the param's sharding.
    dw = constrain(jnp.sum(dw, axis=0), matrix_axes)
  dx = _unchunked(dxs, t)
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
