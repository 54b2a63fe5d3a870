"""Tiny configs of every family, and random params for them (tests, CPU)."""

from __future__ import annotations

import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ftgen.models.config import ModelConfig
from ftgen.models.decoder import Decoder

_BASE = dict(vocab_size=256, embed_dim=64, num_layers=2, num_heads=4,
             num_kv_heads=2, head_dim=16, mlp_dim=128, max_seq_len=128,
             bos_token_id=1, eos_token_ids=(2,), pad_token_id=0)

TINY_CONFIGS: dict[str, ModelConfig] = {
    "llama": ModelConfig(family="llama", tie_embeddings=True, norm_eps=1e-5,
                         **_BASE),
    "llama3_rope": ModelConfig(
        family="llama", tie_embeddings=False, rope_theta=500_000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0,
                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 16},
        **_BASE),
    # Mistral-style: every layer has a sliding window shorter than tests.
    "mistral": ModelConfig(family="llama", sliding_window=5,
                           tie_embeddings=False, **_BASE),
    "qwen2": ModelConfig(family="llama", qkv_bias=True, tie_embeddings=True,
                         rope_theta=1_000_000.0, norm_eps=1e-6, **_BASE),
    # Window 4 < test lengths; pattern 3 over 4 layers: local, local,
    # global, local.
    "gemma3": ModelConfig(
        family="gemma3", rope_theta=1_000_000.0, rope_local_theta=10_000.0,
        sliding_window=4, sliding_window_pattern=3, query_pre_attn_scalar=24.0,
        norm_eps=1e-6, tie_embeddings=True,
        **{**_BASE, "num_layers": 4}),
    "gemma2": ModelConfig(
        family="gemma2", sliding_window=4, sliding_window_pattern=2,
        query_pre_attn_scalar=16.0, attn_logit_softcap=50.0,
        final_logit_softcap=30.0, norm_eps=1e-6, tie_embeddings=True, **_BASE),
}


def tiny_config(name: str = "llama", **overrides) -> ModelConfig:
  """A tiny config by name (see TINY_CONFIGS), with overrides."""
  if name not in TINY_CONFIGS:
    raise ValueError(
        f"unknown tiny config {name!r}; allowed: {sorted(TINY_CONFIGS)}")
  return TINY_CONFIGS[name].replace(**overrides)


def tiny_params(config: ModelConfig, seed: int = 0, norm_noise: float = 0.1):
  """Seeded random params (jax arrays) for `config`, drawn with numpy.

  numpy instead of `model.init`: compiling the scanned init with its RNG
  costs ~10 s on a small CPU, drawing the numbers takes milliseconds. Kernels
  have std 1/sqrt(D) so attention patterns are far from uniform; norm scales
  sit near their identity value with `norm_noise`, so tests notice a wrong
  norm convention.
  """
  shapes = jax.eval_shape(Decoder(config).init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 1), jnp.int32))
  shapes = nn.unbox(shapes["params"])
  std = config.embed_dim**-0.5

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if path[-1].key == "scale":
      base = 0.0 if config.is_gemma else 1.0
      x = base + rng.normal(0.0, norm_noise, leaf.shape)
    elif path[-1].key == "embedding":
      x = rng.normal(0.0, 0.5, leaf.shape)
    elif path[-1].key == "bias":
      x = rng.normal(0.0, 0.1, leaf.shape)
    else:
      x = rng.normal(0.0, std, leaf.shape)
    return jnp.asarray(x.astype(np.float32), leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)
