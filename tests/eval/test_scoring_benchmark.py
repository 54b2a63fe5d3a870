"""Smoke test of benchmarks/scoring.py's modes (their JSON contract)."""

import json

import pytest


@pytest.fixture(scope="module")
def scoring_benchmark(load_benchmark):
  return load_benchmark("scoring")


@pytest.mark.parametrize("mode", ["shared", "per_context"])
def test_scoring_benchmark_prints_json_last(scoring_benchmark, capsys, mode):
  result = scoring_benchmark.main([
      f"--mode={mode}", "--context=48", "--num_continuations=8",
      "--question_len=4", "--continuation_len=4", "--repeats=1"])
  last = capsys.readouterr().out.strip().splitlines()[-1]
  assert json.loads(last) == json.loads(json.dumps(result))
  # Same log-likelihoods both ways; caching saves FLOPs.
  assert result["max_abs_diff"] < 1e-4 and result["same_argmax"]
  assert result["flop_ratio"] > 1.5
  assert result["speedup"] > 0


def test_scoring_benchmark_takes_presets(scoring_benchmark):
  args = scoring_benchmark.parse_args(["--model=smollm2-135m",
                                       "--context=20000"])
  config = scoring_benchmark.model_config(args)
  assert config.num_layers == 30 and config.max_seq_len >= 20000 + 16
