"""Analytic FLOPs per token (hand counts) and MFU."""

import pytest

from ftgen.models.config import ModelConfig
from ftgen.models import flops


def _smollm2():
  return ModelConfig(family="llama", vocab_size=49152, embed_dim=576,
                     num_layers=30, num_heads=9, num_kv_heads=3, head_dim=64,
                     mlp_dim=1536, tie_embeddings=True)


def test_matmul_params_hand_count_smollm2():
  cfg = _smollm2()
  d, f, v = 576, 1536, 49152
  per_layer = d * 9 * 64 + 2 * d * 3 * 64 + 9 * 64 * d + 3 * d * f
  assert flops.matmul_params(cfg) == 30 * per_layer + v * d
  # The matmul weights are the model's params minus norms (tied embedding
  # counted once, as the logits matmul).
  norms = 30 * 2 * d + d
  assert flops.matmul_params(cfg) == cfg.num_params() - norms


def test_train_flops_formula_6n_plus_6ltd():
  cfg = _smollm2()
  t = 2048
  want = 6 * flops.matmul_params(cfg) + 6 * 30 * t * 9 * 64
  assert flops.train_flops_per_token(cfg, t) == pytest.approx(want)
  # Attention grows linearly with T; the dense part does not.
  delta = (flops.train_flops_per_token(cfg, 2 * t)
           - flops.train_flops_per_token(cfg, t))
  assert delta == pytest.approx(6 * 30 * t * 9 * 64)


def test_sliding_window_caps_attention_on_local_layers_only():
  base = dict(family="gemma3", vocab_size=100, embed_dim=32, num_layers=6,
              num_heads=2, num_kv_heads=1, head_dim=16, mlp_dim=64)
  full = ModelConfig(**base)
  local = ModelConfig(**base, sliding_window=8, sliding_window_pattern=6)
  t = 64
  dense = 6 * flops.matmul_params(full)
  attn_full = flops.train_flops_per_token(full, t) - dense
  attn_local = flops.train_flops_per_token(local, t) - dense
  # 5 local layers (window 8) + 1 global; local: 2 * mean keys per query.
  w = 8
  mean_keys = (w * (w + 1) / 2 + (t - w) * w) / t
  want = 6 * 2 * 16 * (5 * 2 * mean_keys + t)
  assert attn_local == pytest.approx(want)
  assert attn_local < attn_full


def test_mfu():
  assert flops.mfu(500.0, 1e9, 1e12) == pytest.approx(0.5)
  assert flops.mfu(1000.0, 1e9, 1e12, num_devices=4) == pytest.approx(0.25)
