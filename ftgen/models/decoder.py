"""The decoder: one linen module for the Llama, Gemma 3 and Gemma 2 families.

Layers are stacked with `nn.scan` (params under 'layers' with a leading
layer axis L); per-layer differences (rope base, sliding window) travel as
scanned per-layer arrays, so 30 layers compile like one. Calls with a KV
cache (forward only: prefill, decode) run the same blocks in a Python loop
over layers instead: each layer's cache is its own array, written in place
and read without a copy (a scan would slice it out and stack it back every
step), and each layer's window is a static int. Such a loop slices the
stacked params per layer, and XLA materializes those slices; a caller that
loops over steps passes `kv_cache.split_layers(params)` so that happens
once.

Calls (logits are float32 [B,T,V]):

  model.apply({'params': p}, tokens, positions=None, attention_mask=None)
  model.apply({'params': p}, tokens, positions,
              cache=cache)  # -> (logits, cache)
  model.apply({'params': p}, tokens, positions,
              prefix=prefix_cache[, cache=...])
  model.apply({'params': p, 'lora': adapters},
              ...)  # LoRA applied unmerged (layers._Dense), any form
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

from ftgen.models import attention_ops
from ftgen.models import kv_cache
from ftgen.models.attention import Attention
from ftgen.models.config import ModelConfig
from ftgen.models.layers import (LORA, MLP, Embedder, RMSNorm, _Dense,
                                  constrain)

Array = jax.Array


class Block(nn.Module):
  """One pre-norm transformer block (Gemma adds post norms)."""

  config: ModelConfig
  attention: str = "auto"
  # The window of every layer when they share one: static, so kernels that
  # need a static window (splash) run inside the layer scan too.
  window: int | None = None

  @nn.compact
  def __call__(self, x: Array, xs: dict[str, Any], ctx: dict[str, Any]):
    cfg = self.config
    h = RMSNorm(cfg, name="attn_norm")(x)
    window = self.window if self.window is not None else xs["window"]
    a, new_kv = Attention(cfg, self.attention, name="attn")(
        h, xs["inv_freq"], window, ctx, xs.get("cache"), xs.get("prefix"))
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
    attention: the attention kernel, one of
      `attention_ops.IMPLEMENTATIONS` ("auto": the platform's).
    unroll_layers: run the scanned layers as straight-line code: for
      compile-only FLOP counts (XLA's cost analysis counts a loop body once).
  """

  config: ModelConfig
  remat: bool | str = False
  attention: str = "auto"
  unroll_layers: bool = False

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

    attention_ops.check_impl(self.attention)
    ctx: dict[str, Any] = {}
    if prefix is not None:
      _check_prefix(prefix)
      ctx["prefix_pos"] = jnp.where(kv_cache.prefix_valid(prefix),
                                    prefix["pos"][0], -1)[None]
    if cache is not None:
      kv_cache.check_room(cache, t)
    if positions is None:
      positions = kv_cache.token_positions(
          mask, kv_cache.next_positions(b, cache, prefix))
    positions = jnp.asarray(positions, jnp.int32)
    ctx["q_pos"] = positions
    own_pos = jnp.where(mask, positions, -1)
    if cache is None:
      ctx["k_pos"] = own_pos
    else:
      start = jnp.asarray(cache["end"], jnp.int32)
      ctx["write_start"] = start
      ctx["k_pos"] = jax.lax.dynamic_update_slice(cache["pos"], own_pos,
                                                  (0, start))

    embedder = Embedder(cfg, name="embedder")
    x = embedder.encode(tokens)
    x = constrain(x, ("batch", "length", "act_embed"))

    new_kv = None
    if cache is None or self.is_initializing():
      x = self._scanned(x, ctx, prefix)
    else:
      x, new_kv = self._unrolled(x, ctx, cache, prefix)

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

  def _scanned(self, x: Array, ctx: dict[str, Any], prefix) -> Array:
    """The layers as one `nn.scan` (training and scoring)."""
    cfg = self.config
    windows = cfg.layer_windows()
    xs = {"inv_freq": jnp.asarray(cfg.layer_inv_freq()),
          "window": jnp.asarray(windows)}
    shared = int(windows[0]) if len(set(windows.tolist())) == 1 else None
    if prefix is not None:
      # One stacked copy of the prefix per call (cheap next to scoring the
      # rows against it), sliced a layer at a time by the scan.
      xs["prefix"] = {"k": jnp.stack(prefix["k"]),
                      "v": jnp.stack(prefix["v"])}
    mode = remat_mode(self.remat)
    block = (Block if mode == "none" else
             nn.remat(Block, prevent_cse=False, policy=REMAT_POLICIES[mode]))
    stack = nn.scan(
        block,
        variable_axes={"params": 0, LORA: 0},
        split_rngs={"params": True},
        in_axes=(0, nn.broadcast),
        length=cfg.num_layers,
        unroll=cfg.num_layers if self.unroll_layers else 1,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )
    x, _ = stack(cfg, self.attention, shared, name="layers")(x, xs, ctx)
    return x

  def _unrolled(self, x: Array, ctx: dict[str, Any], cache, prefix):
    """The layers in a Python loop over the stacked params (forward only)."""
    cfg = self.config
    windows, inv_freq = cfg.layer_windows(), cfg.layer_inv_freq()
    stacked = {col: tree["layers"] for col, tree in self.variables.items()
               if "layers" in tree}
    new_kv = []
    for i in range(cfg.num_layers):
      xs: dict[str, Any] = {"inv_freq": jnp.asarray(inv_freq[i]),
                            "window": int(windows[i])}
      if cache is not None:
        xs["cache"] = {"k": cache["k"][i], "v": cache["v"][i]}
      if prefix is not None:
        xs["prefix"] = {"k": prefix["k"][i], "v": prefix["v"][i]}
      layer = {col: _layer(tree, i) for col, tree in stacked.items()}
      x, kv = Block(cfg, self.attention).apply(layer, x, xs, ctx)
      new_kv.append(kv)
    return x, new_kv

def _layer(layers: Any, i: int) -> Any:
  if isinstance(layers, tuple):  # Already split (`kv_cache.split_layers`).
    return layers[i]
  return jax.tree.map(lambda a: a[i], layers)


def _new_cache(cache, new_kv, ctx, t):
  return {"k": tuple(kv["k"] for kv in new_kv),
          "v": tuple(kv["v"] for kv in new_kv), "pos": ctx["k_pos"],
          "end": cache["end"] + t}


def _check_prefix(prefix: dict[str, Array]) -> None:
  if prefix["k"][0].shape[0] != 1:
    raise ValueError(
        f"prefix cache must have batch 1 (shared by all rows); got k shape "
        f"{tuple(prefix['k'][0].shape)}")
