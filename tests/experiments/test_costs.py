"""Cost ledger: per-query FLOPs of evaluation rows, break-even algebra.

The FLOPs formulas themselves are tested in tests/models/test_flops.py.
"""

import math

import pytest

from ftgen.experiments import costs
from ftgen.models import flops
from ftgen.models import tiny


def test_query_costs_per_context_computes_each_context_once():
  config = tiny.tiny_config("llama")
  rows = [{"context_tokens": 50, "num_tokens": [2, 3, 4]},
          {"context_tokens": 30, "num_tokens": [1, 1]}]
  naive = costs.query_costs(config, rows, 0)["query_flops"]
  per = costs.query_costs(config, rows, 0, per_context=True)["query_flops"]
  f = flops.forward_flops
  prefill = flops.prefill_flops
  # All but the last context token prefilled once (no logits), then each
  # choice with that token.
  want = [prefill(config, 49) + sum(f(config, 1 + n, 49) for n in (2, 3, 4)),
          prefill(config, 29) + 2 * f(config, 2, 29)]
  assert prefill(config, 49) < f(config, 49)
  assert per == pytest.approx(sum(want) / 2)
  assert naive == pytest.approx(
      (sum(f(config, 50 + n) for n in (2, 3, 4)) + 2 * f(config, 31)) / 2)
  assert per < naive


def test_query_costs_with_a_cached_shared_prefix():
  config = tiny.tiny_config("llama")
  rows = [{"context_tokens": 50, "num_tokens": [2, 3]},
          {"context_tokens": 60, "num_tokens": [4, 4]}]
  out = costs.query_costs(config, rows, 40)
  f = flops.forward_flops
  # The cache prefill projects nothing to the vocabulary.
  assert out["prefill_flops"] == pytest.approx(flops.prefill_flops(config, 40))
  assert out["prefill_flops"] < f(config, 40)
  # Each row runs its tokens after the 40 cached ones.
  want = [f(config, 10 + 2, 40) + f(config, 10 + 3, 40),
          2 * f(config, 20 + 4, 40)]
  assert out["query_flops_prefix_cached"] == pytest.approx(sum(want) / 2)
  assert out["context_tokens"] == 55.0


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
