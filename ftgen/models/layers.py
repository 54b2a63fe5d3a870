"""Small linen building blocks: RMSNorm, gated MLP, embedder, helpers.

Shape letters: B batch, T length, D model width, F mlp width, V vocab.
Every parameter carries logical axis names from ftgen/parallel/rules.py.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ftgen.models.config import ModelConfig

Array = jax.Array


def dtype_of(name: str):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def param(module: nn.Module, name: str, init: Callable, shape, axes,
          dtype) -> Array:
  """A parameter with logical axis names (boxed at init, plain at apply)."""
  return module.param(name, nn.with_logical_partitioning(init, axes), shape,
                      dtype)


def constrain(x: Array, axes: tuple[str | None, ...]) -> Array:
  """Logical sharding constraint; a no-op without a mesh and rules."""
  return nn.with_logical_constraint(x, axes)


class RMSNorm(nn.Module):
  """RMSNorm in float32; Gemma multiplies by (1 + w), Llama by w."""

  config: ModelConfig
  dim: int | None = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    dim = self.dim or x.shape[-1]
    init = nn.initializers.zeros if cfg.is_gemma else nn.initializers.ones
    scale = param(self, "scale", init, (dim,), ("norm",),
                  dtype_of(cfg.param_dtype))
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    normed = x32 * jax.lax.rsqrt(var + cfg.norm_eps)
    scale32 = scale.astype(jnp.float32)
    if cfg.is_gemma:
      return (normed * (1.0 + scale32)).astype(x.dtype)
    # Llama casts back to the input dtype before the weight multiply.
    return scale32.astype(x.dtype) * normed.astype(x.dtype)


class MLP(nn.Module):
  """Gated MLP: down(act(gate(x)) * up(x)); SiLU (Llama) or tanh-GELU (Gemma).
  """

  config: ModelConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    d, f = cfg.embed_dim, cfg.mlp_dim
    dt = dtype_of(cfg.dtype)
    gate = _Dense(cfg, (d, f), ("embed", "mlp"), name="gate")
    up = _Dense(cfg, (d, f), ("embed", "mlp"), name="up")
    down = _Dense(cfg, (f, d), ("mlp", "embed"), name="down")
    g = jnp.einsum("BTD,DF->BTF", x, gate().astype(dt))
    u = jnp.einsum("BTD,DF->BTF", x, up().astype(dt))
    if cfg.is_gemma:
      h = jax.nn.gelu(g, approximate=True) * u
    else:
      h = jax.nn.silu(g) * u
    h = constrain(h, ("batch", "length", "act_mlp"))
    return jnp.einsum("BTF,FD->BTD", h, down().astype(dt))


class _Dense(nn.Module):
  """Holds one `kernel` (and optional `bias`) parameter; returns them."""

  config: ModelConfig
  shape: tuple[int, ...]
  axes: tuple[str, ...]
  bias_axes: tuple[str, ...] | None = None

  @nn.compact
  def __call__(self):
    pdt = dtype_of(self.config.param_dtype)
    kernel = param(self, "kernel", nn.initializers.normal(0.02), self.shape,
                   self.axes, pdt)
    if self.bias_axes is None:
      return kernel
    n_bias = len(self.bias_axes)
    bias = param(self, "bias", nn.initializers.normal(0.02),
                 self.shape[-n_bias:], self.bias_axes, pdt)
    return kernel, bias


class Embedder(nn.Module):
  """Token embedding; `decode` is the tied output projection."""

  config: ModelConfig

  def setup(self):
    cfg = self.config
    # std 0.02 (as Llama and SmolLM2 train from): with a tied output, larger
    # embeddings make a random model's initial loss hundreds of nats.
    self.embedding = param(self, "embedding", nn.initializers.normal(0.02),
                           (cfg.vocab_size, cfg.embed_dim), ("vocab", "embed"),
                           dtype_of(cfg.param_dtype))

  def encode(self, tokens: Array) -> Array:
    cfg = self.config
    dt = dtype_of(cfg.dtype)
    x = jnp.take(self.embedding, tokens, axis=0).astype(dt)
    if cfg.is_gemma:
      # Gemma scales embeddings by sqrt(D), rounded to the compute dtype.
      x = x * jnp.asarray(cfg.embed_dim**0.5, dt)
    return x

  def decode(self, x: Array) -> Array:
    return jnp.einsum("BTD,VD->BTV", x, self.embedding.astype(x.dtype),
                      preferred_element_type=jnp.float32)
