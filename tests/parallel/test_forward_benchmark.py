"""Smoke test of benchmarks/forward.py on a tiny model (its JSON contract)."""

import json

import pytest

from ftgen.models import flops
from ftgen.models import tiny


@pytest.fixture(scope="module")
def forward_benchmark(load_benchmark):
  return load_benchmark("forward")


def test_forward_benchmark_prints_json_last(forward_benchmark, capsys):
  result = forward_benchmark.main([
      "--model=tiny:gemma3", "--seq_len=16", "--batch=4", "--repeats=2",
      "--mesh=2,2,2",
  ])
  last = capsys.readouterr().out.strip().splitlines()[-1]
  assert json.loads(last) == json.loads(json.dumps(result))
  for key in ("tokens_per_s", "model", "seq_len", "batch", "dtype",
              "median_s", "devices"):
    assert key in result
  assert result["devices"] == 8
  assert result["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
  assert result["tokens_per_s"] == pytest.approx(64 / result["median_s"])
  assert len(result["times_s"]) == 2
  # FLOPs from the one count: 4 causal passes of 16 tokens.
  per_pass = flops.forward_flops(tiny.tiny_config("gemma3"), 16)
  assert result["gflops_per_s"] == pytest.approx(
      4 * per_pass / result["median_s"] / 1e9)
