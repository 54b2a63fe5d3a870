"""Cost ledger: analytic FLOPs against brute force, break-even algebra."""

import math

import pytest

from ftgen.experiments import costs
from ftgen.models import tiny


def _brute_forward(config, n, context):
  """Per-token loop: 2·weights + 4·N·H·keys per layer (window-capped)."""
  total = 0.0
  windows = costs._layer_windows(config)  # pylint: disable=protected-access
  for pos in range(context, context + n):
    total += 2 * costs.matmul_params(config)
    for w in windows:
      keys = pos + 1 if w is None else min(pos + 1, w)
      total += 4 * config.num_heads * config.head_dim * keys
  return total


@pytest.mark.parametrize("family", ["llama", "gemma3"])
@pytest.mark.parametrize("n,context", [(1, 0), (7, 0), (5, 3), (2, 10), (9, 2)])
def test_forward_flops_matches_per_token_loop(family, n, context):
  config = tiny.tiny_config(family)
  assert costs.forward_flops(config, n, context) == pytest.approx(
      _brute_forward(config, n, context))


def test_matmul_params_counts_every_projection():
  config = tiny.tiny_config("llama")
  d, l, v = config.embed_dim, config.num_layers, config.vocab_size
  per_layer = (2 * d * config.num_heads * config.head_dim
               + 2 * d * config.num_kv_heads * config.head_dim
               + 3 * d * config.mlp_dim)
  assert costs.matmul_params(config) == l * per_layer + v * d


def test_train_flops_is_three_forwards():
  config = tiny.tiny_config("llama")
  t = 64
  # 6·N + 6·L·T·N·H per token vs 3 × a causal forward of T tokens / T: equal
  # up to the (T + 1) / T of the causal mean.
  assert costs.train_flops(config, 10 * t, t) == pytest.approx(
      10 * 3 * costs.forward_flops(config, t), rel=2 / t)


def test_prefix_cached_scoring_is_cheaper_and_consistent():
  config = tiny.tiny_config("llama")
  naive = costs.scoring_flops(config, 100, [5, 6])
  cached = costs.scoring_flops(config, 100, [5, 6], prefix_cached=True)
  # Naive = prefill of the context once per choice + the cached suffix rows.
  assert naive == pytest.approx(cached + 2 * costs.forward_flops(config, 100))
  assert cached < naive / 5


def test_query_costs_per_context_computes_each_context_once():
  config = tiny.tiny_config("llama")
  rows = [{"context_tokens": 50, "num_tokens": [2, 3, 4]},
          {"context_tokens": 30, "num_tokens": [1, 1]}]
  naive = costs.query_costs(config, rows, 0)["query_flops"]
  per = costs.query_costs(config, rows, 0, per_context=True)["query_flops"]
  # All but the last context token once, then each choice with that token.
  want = [_brute_forward(config, 49, 0)
          + sum(_brute_forward(config, 1 + n, 49) for n in (2, 3, 4)),
          _brute_forward(config, 29, 0) + 2 * _brute_forward(config, 2, 29)]
  assert per == pytest.approx(sum(want) / 2)
  assert naive == pytest.approx(
      (sum(_brute_forward(config, 50 + n, 0) for n in (2, 3, 4))
       + 2 * _brute_forward(config, 31, 0)) / 2)
  assert per < naive


def test_generation_flops_prefill_plus_decode():
  config = tiny.tiny_config("llama")
  one = costs.generation_flops(config, 10, 4)
  assert one == pytest.approx(costs.forward_flops(config, 14))
  assert costs.generation_flops(config, 10, 4, num_sequences=3) == (
      pytest.approx(3 * one))


@pytest.mark.parametrize("args,expected", [
    ((100.0, 1.0, 0.0, 3.0), 50.0),
    ((101.0, 1.0, 0.0, 3.0), 51.0),
    ((0.0, 1.0, 5.0, 3.0), 0.0),
    ((100.0, 3.0, 0.0, 3.0), math.inf),
    ((100.0, 4.0, 0.0, 3.0), math.inf),
])
def test_break_even(args, expected):
  assert costs.break_even(*args) == expected


def test_ledger_sums_stages_and_computes_break_even():
  stages = {"augment_local": {"wall_s": 2.0, "flops": 1e9},
            "finetune/finetune_aug_local": {"wall_s": 10.0, "flops": 9e9}}
  per_query = {"icl": {"wall_s": 0.5, "flops": 1e8,
                       "flops_prefix_cached": 1e6, "prefill_flops": 5e7},
               "finetune_aug_local": {"wall_s": 0.01, "flops": 1e6}}
  ledger = costs.build_ledger(
      model="tiny", num_params=123,
      one_time={"icl": [], "finetune_aug_local":
                ["augment_local", "finetune/finetune_aug_local"]},
      stages=stages, per_query=per_query)
  aug = ledger["conditions"]["finetune_aug_local"]["one_time"]
  assert aug["wall_s"] == 12.0 and aug["flops"] == 1e10
  even = ledger["break_even"]["finetune_aug_local"]
  assert even["queries_flops"] == math.ceil(1e10 / (1e8 - 1e6))
  assert even["queries_wall"] == math.ceil(12.0 / 0.49)
  # Against a prefix-cached ICL with equal per-query cost it never pays off.
  assert even["queries_flops_prefix_cached"] == math.inf
  md = costs.costs_markdown(ledger)
  assert "finetune_aug_local" in md and "never" in md
