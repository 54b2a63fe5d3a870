"""Smoke test of benchmarks/forward.py on a tiny model (its JSON contract)."""

import json

import pytest


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


def test_forward_flops_grow_with_length(forward_benchmark):
  from ftgen.models import tiny  # pylint: disable=g-import-not-at-top

  config = tiny.tiny_config("llama")
  short = forward_benchmark.forward_flops_per_token(config, 16)
  long = forward_benchmark.forward_flops_per_token(config, 1024)
  assert long > short > 2 * config.embed_dim * config.vocab_size
