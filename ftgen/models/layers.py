"""Small linen building blocks: RMSNorm, gated MLP, embedder, helpers.

Shape letters: B batch, T length, D model width, F mlp width, V vocab.
Every parameter carries logical axis names from ftgen/parallel/rules.py.
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ftgen.models.config import ModelConfig

Array = jax.Array
# The variable collection holding LoRA adapters (see `_Dense`); scanned over
# layers like 'params' (ftgen/models/decoder.py).
LORA = "lora"


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
    gate = _Dense(cfg, (d, f), ("embed", "mlp"), name="gate")
    up = _Dense(cfg, (d, f), ("embed", "mlp"), name="up")
    down = _Dense(cfg, (f, d), ("mlp", "embed"), name="down")
    g = gate(x, "BTD,DF->BTF")
    u = up(x, "BTD,DF->BTF")
    if cfg.is_gemma:
      h = jax.nn.gelu(g, approximate=True) * u
    else:
      h = jax.nn.silu(g) * u
    h = constrain(h, ("batch", "length", "act_mlp"))
    return down(h, "BTF,FD->BTD")


class _Dense(nn.Module):
  """One `kernel` (and optional `bias`) parameter, and its LoRA adapter.

  `dense()` returns the parameter(s). `dense(x, spec)` applies them in the
  compute dtype: einsum(spec, x, kernel) (+ bias), plus the low-rank term
  s · ((x · A) · B) when the LORA collection holds an adapter for this
  kernel: {'a': [in, R], 'b': [R, out], 'scale': s} with `in` / `out` the
  kernel's contracted / output axes flattened (ftgen/train/lora.py builds
  it from the trained adapters). The frozen kernel then only meets
  activations, so autodiff forms no [in, out] gradient for it.
  """

  config: ModelConfig
  shape: tuple[int, ...]
  axes: tuple[str, ...]
  bias_axes: tuple[str, ...] | None = None

  @nn.compact
  def __call__(self, x: Array | None = None, spec: str | None = None):
    pdt = dtype_of(self.config.param_dtype)
    kernel = param(self, "kernel", nn.initializers.normal(0.02), self.shape,
                   self.axes, pdt)
    bias = None
    if self.bias_axes is not None:
      n_bias = len(self.bias_axes)
      bias = param(self, "bias", nn.initializers.normal(0.02),
                   self.shape[-n_bias:], self.bias_axes, pdt)
    if x is None:
      if self.has_variable(LORA, "a"):  # It would be silently dropped.
        raise ValueError(f"LoRA adapter for {'/'.join(self.path)}, whose"
                         " kernel is read, not applied with dense(x, spec)")
      return kernel if bias is None else (kernel, bias)
    dt = dtype_of(self.config.dtype)
    y = jnp.einsum(spec, x, kernel.astype(dt))
    if self.has_variable(LORA, "a"):
      y = y + self._low_rank(x, spec, dt)
    return y if bias is None else y + bias.astype(dt)

  def _low_rank(self, x: Array, spec: str, dt) -> Array:
    """s · ((x · A) · B): two skinny einsums, never the [in, out] A · B."""
    x_axes, rest = spec.split(",")
    w_axes, y_axes = rest.split("->")
    n_in = sum(c in x_axes for c in w_axes)
    w_in, w_out = w_axes[:n_in], w_axes[n_in:]
    batch = "".join(c for c in x_axes if c not in w_in)
    if any(c in x_axes for c in w_out) or "R" in spec:
      raise ValueError(f"LoRA needs a spec 'X,IO->Y' with the kernel's"
                       f" contracted axes first and no axis R; got {spec!r}")
    a = self.get_variable(LORA, "a")
    b = self.get_variable(LORA, "b")
    rank = a.shape[-1]
    if a.shape[0] != math.prod(self.shape[:n_in]):
      raise ValueError(f"LoRA adapter A {a.shape} does not fit the inputs"
                       f" {self.shape[:n_in]} of {'/'.join(self.path)}")
    a = a.reshape(self.shape[:n_in] + (rank,)).astype(dt)
    b = b.reshape((rank,) + self.shape[n_in:]).astype(dt)
    xa = jnp.einsum(f"{x_axes},{w_in}R->{batch}R", x, a)
    xa = xa * self.get_variable(LORA, "scale").astype(dt)
    return jnp.einsum(f"{batch}R,R{w_out}->{y_axes}", xa, b)


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
