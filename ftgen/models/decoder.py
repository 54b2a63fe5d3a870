"""The decoder: one linen module for the Llama, Gemma 3 and Gemma 2 families.

Layers are stacked with `nn.scan` (params under 'layers' with a leading
layer axis L); per-layer differences (rope base, sliding window) travel as
scanned per-layer arrays, so 30 layers compile like one.

Calls (logits are float32 [B,T,V]):

  model.apply({'params': p}, tokens, positions=None, attention_mask=None)
  model.apply({'params': p}, tokens, positions,
              cache=cache)  # -> (logits, cache)
  model.apply({'params': p}, tokens, positions,
              prefix=prefix_cache[, cache=...])
  model.apply({'params': p}, tokens, ...,
              return_hidden=True)  # final-normed [B,T,D] instead of logits

The last form leaves the vocabulary projection to `ftgen.models.head`, which
applies it in chunks (scoring and the training loss never hold [B,T,V]).

Positions default to the count of valid tokens before each token (so a
left-padded row gets the same positions as the unpadded one), offset by the
prefix length and by what the cache already holds. See kv_cache.py for the
cache layout.

Params tree:
  embedder/embedding [V,D]
  layers/attn_norm/scale [L,D]
  layers/attn/{q,k,v}/kernel [L,D,N|K,H]  (+ bias [L,N|K,H] with qkv_bias)
  layers/attn/o/kernel [L,N,H,D]
  layers/attn/{q_norm,k_norm}/scale [L,H]          (gemma3)
  layers/post_attn_norm/scale, layers/post_mlp_norm/scale [L,D]   (gemma)
  layers/mlp_norm/scale [L,D]                       (the pre-MLP norm)
  layers/mlp/{gate,up}/kernel [L,D,F], layers/mlp/down/kernel [L,F,D]
  final_norm/scale [D]
  lm_head/kernel [D,V]                              (untied only)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ftgen.models import kv_cache
from ftgen.models.attention import Attention, write_rows
from ftgen.models.config import ModelConfig
from ftgen.models.layers import MLP, Embedder, RMSNorm, _Dense, constrain

Array = jax.Array


class Block(nn.Module):
  """One pre-norm transformer block (Gemma adds post norms)."""

  config: ModelConfig

  @nn.compact
  def __call__(self, x: Array, xs: dict[str, Any], ctx: dict[str, Any]):
    cfg = self.config
    h = RMSNorm(cfg, name="attn_norm")(x)
    a, new_kv = Attention(cfg, name="attn")(
        h, xs["inv_freq"], xs["window"], ctx, xs.get("cache"), xs.get("prefix"))
    if cfg.is_gemma:
      a = RMSNorm(cfg, name="post_attn_norm")(a)
    x = x + a
    h = RMSNorm(cfg, name="mlp_norm")(x)
    m = MLP(cfg, name="mlp")(h)
    if cfg.is_gemma:
      m = RMSNorm(cfg, name="post_mlp_norm")(m)
    x = constrain(x + m, ("batch", "length", "act_embed"))
    return x, new_kv


# Rematerialization of the blocks in the backward pass: what each keeps
# from the forward pass instead of recomputing it (`jax.checkpoint_policies`).
# "full" keeps only each block's input (least memory, one more forward);
# "save_dots" keeps matmul outputs, recomputing only the cheap elementwise
# work; "save_dots_no_batch" keeps those without a batch dimension (the
# weight-only products).
REMAT_POLICIES = {
    "none": None,
    "full": None,
    "save_dots": jax.checkpoint_policies.dots_saveable,
    "save_dots_no_batch":
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def remat_mode(remat: bool | str) -> str:
  """A `REMAT_POLICIES` name; True and False mean "full" and "none"."""
  if isinstance(remat, bool):
    return "full" if remat else "none"
  if remat not in REMAT_POLICIES:
    raise ValueError(f"remat={remat!r}; allowed: {', '.join(REMAT_POLICIES)}"
                     " (or True / False)")
  return remat


class Decoder(nn.Module):
  """Decoder-only transformer; see the module docstring for the calls.

  Attributes:
    config: the architecture.
    remat: how each block is rematerialized in the backward pass (training
      memory): a `REMAT_POLICIES` name, or True ("full") / False ("none").
  """

  config: ModelConfig
  remat: bool | str = False

  @nn.compact
  def __call__(self, tokens: Array, positions: Array | None = None,
               attention_mask: Array | None = None,
               cache: dict[str, Array] | None = None,
               prefix: dict[str, Array] | None = None,
               return_hidden: bool = False):
    cfg = self.config
    tokens = jnp.asarray(tokens, jnp.int32)
    b, t = tokens.shape
    mask = (jnp.ones((b, t), bool) if attention_mask is None
            else jnp.asarray(attention_mask, bool))

    ctx: dict[str, Any] = {}
    if prefix is not None:
      _check_prefix(prefix)
      ctx["prefix_pos"] = prefix["pos"][0]
      ctx["prefix_valid"] = kv_cache.prefix_valid(prefix)
    if cache is not None:
      kv_cache.check_room(cache, t)
    if positions is None:
      positions = kv_cache.token_positions(
          mask, kv_cache.next_positions(b, cache, prefix))
    positions = jnp.asarray(positions, jnp.int32)
    ctx["q_pos"] = positions

    if cache is None:
      idx = jnp.arange(t)
      ctx["k_pos"] = positions
      ctx["self_mask"] = (mask[:, None, :] &
                          (idx[None, :, None] >= idx[None, None, :]))
    else:
      s = cache["k"].shape[2]
      start = cache["end"].astype(jnp.int32)
      k_pos = write_rows(cache["pos"], jnp.where(mask, positions, -1), start)
      q_slot = start[:, None] + jnp.arange(t)[None, :]
      ctx["write_start"] = start
      ctx["k_pos"] = k_pos
      ctx["self_mask"] = (k_pos[:, None, :] >= 0) & (
          jnp.arange(s)[None, None, :] <= q_slot[:, :, None])

    xs: dict[str, Any] = {
        "inv_freq": jnp.asarray(cfg.layer_inv_freq()),
        "window": jnp.asarray(cfg.layer_windows()),
    }
    if cache is not None:
      xs["cache"] = {"k": cache["k"], "v": cache["v"]}
    if prefix is not None:
      xs["prefix"] = {"k": prefix["k"], "v": prefix["v"]}

    embedder = Embedder(cfg, name="embedder")
    x = embedder.encode(tokens)
    x = constrain(x, ("batch", "length", "act_embed"))

    mode = remat_mode(self.remat)
    block = (Block if mode == "none" else
             nn.remat(Block, prevent_cse=False, policy=REMAT_POLICIES[mode]))
    stack = nn.scan(
        block,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast),
        length=cfg.num_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )
    x, new_kv = stack(cfg, name="layers")(x, xs, ctx)

    x = RMSNorm(cfg, name="final_norm")(x)
    if return_hidden:
      # The caller projects onto the vocabulary itself (ftgen.models.head).
      if cache is None:
        return x
      return x, _new_cache(cache, new_kv, ctx, t)
    if cfg.tie_embeddings:
      logits = embedder.decode(x)
    else:
      kernel = _Dense(cfg, (cfg.embed_dim, cfg.vocab_size), ("embed", "vocab"),
                      name="lm_head")()
      logits = jnp.einsum("BTD,DV->BTV", x, kernel.astype(x.dtype),
                          preferred_element_type=jnp.float32)
    if cfg.final_logit_softcap is not None:
      cap = cfg.final_logit_softcap
      logits = cap * jnp.tanh(logits / cap)
    logits = constrain(logits, ("batch", "length", "act_vocab"))
    if cache is None:
      return logits
    return logits, _new_cache(cache, new_kv, ctx, t)


def _new_cache(cache, new_kv, ctx, t):
  return {"k": new_kv["k"], "v": new_kv["v"], "pos": ctx["k_pos"],
          "end": cache["end"] + t}


def _check_prefix(prefix: dict[str, Array]) -> None:
  if prefix["k"].shape[1] != 1:
    raise ValueError(
        f"prefix cache must have batch 1 (shared by all rows); got k shape "
        f"{tuple(prefix['k'].shape)}")
