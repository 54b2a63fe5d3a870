"""The one FLOPs count: hand counts, brute force, identities, and MFU."""

import pytest

from ftgen.models import flops
from ftgen.models import tiny
from ftgen.models.config import ModelConfig


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


def _gemma_windowed():
  """6 layers: 5 with a sliding window of 8, the last one global."""
  return ModelConfig(family="gemma3", vocab_size=100, embed_dim=32,
                     num_layers=6, num_heads=2, num_kv_heads=1, head_dim=16,
                     mlp_dim=64, sliding_window=8, sliding_window_pattern=6)


def _brute_forward(config, n, context):
  """Per-token loop: 2·weights + 4·N·H·keys per layer (window-capped)."""
  total = 0.0
  window = config.sliding_window
  for pos in range(context, context + n):
    total += 2 * flops.matmul_params(config)
    for is_global in config.layer_is_global():
      keys = pos + 1 if is_global else min(pos + 1, window)
      total += 4 * config.num_heads * config.head_dim * keys
  return total


_CONFIGS = {"llama": lambda: tiny.tiny_config("llama"),
            "gemma3": lambda: tiny.tiny_config("gemma3"),
            "windowed": _gemma_windowed}


@pytest.mark.parametrize("name", sorted(_CONFIGS))
@pytest.mark.parametrize("n,context", [(1, 0), (7, 0), (5, 3), (2, 10), (9, 2),
                                       (20, 0), (3, 30)])
def test_forward_flops_match_a_per_token_loop(name, n, context):
  config = _CONFIGS[name]()
  assert flops.forward_flops(config, n, context) == pytest.approx(
      _brute_forward(config, n, context))


@pytest.mark.parametrize("name", sorted(_CONFIGS))
def test_a_pass_split_at_a_cache_boundary_costs_the_same(name):
  # What prefix caching relies on: prefill a, then b tokens over the cache,
  # is the one pass over a + b.
  config = _CONFIGS[name]()
  for a, b in [(1, 1), (5, 20), (40, 3)]:
    assert (flops.forward_flops(config, a)
            + flops.forward_flops(config, b, context=a)) == pytest.approx(
                flops.forward_flops(config, a + b))


def test_prefill_computes_no_logits():
  config = tiny.tiny_config("llama")
  vd = config.vocab_size * config.embed_dim
  assert flops.matmul_params(config, logits=False) == (
      flops.matmul_params(config) - vd)
  assert flops.prefill_flops(config, 30) == pytest.approx(
      flops.forward_flops(config, 30) - 2 * 30 * vd)


def test_train_matmuls_are_three_forwards_and_attention_is_causal_t():
  config = tiny.tiny_config("llama")
  nh, layers = config.num_heads * config.head_dim, config.num_layers
  for t in (1, 16, 64):
    # Forward attention sums exact (query, key) pairs, t (t + 1) / 2; the
    # training convention counts t² / 2 per layer (6·L·T·N·H per token), so
    # 3 forwards exceed it by exactly 3 · 4·N·H · t / 2 per layer.
    three_forwards = 3 * flops.forward_flops(config, t)
    train = flops.train_flops(config, t, t)
    assert three_forwards - train == pytest.approx(layers * 6 * nh * t)
  # The matmul part alone: 6 per weight = 3 × the forward's 2.
  assert flops.train_flops_per_token(config, 1) - 6 * layers * nh == (
      pytest.approx(3 * 2 * flops.matmul_params(config)))


def test_attention_grows_with_length_until_the_window():
  llama, windowed = tiny.tiny_config("llama"), _gemma_windowed()
  # One decode step after c cached tokens: attention linear in c.
  for config in (llama, windowed):
    step = [flops.forward_flops(config, 1, context=c) for c in (10, 20, 30)]
    assert step[2] - step[1] == pytest.approx(step[1] - step[0])
    assert step[1] > step[0]
  # With windows, only the global layer keeps growing: 1 of 6 layers.
  nh = windowed.num_heads * windowed.head_dim
  grow = (flops.forward_flops(windowed, 1, context=1000)
          - flops.forward_flops(windowed, 1, context=100))
  assert grow == pytest.approx(1 * 4 * nh * 900)


def test_prefix_cached_scoring_saves_the_context_of_every_row_but_one():
  config = tiny.tiny_config("llama")
  context, rows = 100, [5, 6, 7]
  naive = flops.scoring_flops(config, context, rows)
  cached = flops.scoring_flops(config, context, rows, prefix_cached=True)
  prefill = flops.forward_flops(config, context)
  # Naive recomputes the context in each of the 3 rows.
  assert naive == pytest.approx(cached + 3 * prefill)
  # With the prefill paid once, the saving ratio is (3p + c) / (p + c).
  ratio = naive / (cached + prefill)
  assert ratio == pytest.approx((3 * prefill + cached) / (prefill + cached))
  assert 2.5 < ratio < 3


def test_generation_is_prefill_plus_decode_with_a_shared_prefix_once():
  config = tiny.tiny_config("gemma3")
  one = flops.generation_flops(config, 10, 4)
  assert one == pytest.approx(flops.forward_flops(config, 14))
  assert flops.generation_flops(config, 10, 4, num_sequences=3) == (
      pytest.approx(3 * one))
  f = flops.forward_flops
  with_prefix = flops.generation_flops(config, 10, 4, num_sequences=3,
                                       prefix_tokens=50)
  assert with_prefix == pytest.approx(f(config, 50) + 3 * (
      f(config, 64) - f(config, 50)))


def test_augmentation_counts_rows_at_their_mean_lengths():
  config = tiny.tiny_config("llama")
  got = flops.augmentation_flops(config, prefix_tokens=40, prompts=4,
                                 prompt_tokens=4 * 6, generated_tokens=4 * 9)
  assert got == pytest.approx(flops.generation_flops(
      config, 6, 9, num_sequences=4, prefix_tokens=40))


def test_mfu():
  assert flops.mfu(0.5e12, 1.0, 1e12) == pytest.approx(0.5)
  assert flops.mfu(1e12, 1.0, 1e12, num_devices=4) == pytest.approx(0.25)
  assert flops.mfu(flops.PEAK_FLOPS_BF16, 2.0) == pytest.approx(0.5)
