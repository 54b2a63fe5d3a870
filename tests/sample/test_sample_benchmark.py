"""benchmarks/sample.py: its naive baseline decodes exactly like the sampler."""

import json

import pytest

from ftgen.models import flops
from ftgen.models import tiny
from ftgen.models.decoder import Decoder
from ftgen.sample import sampler as sampler_lib

# Different lengths in one batch; none contains the EOS id 2.
PROMPTS = [[1, 5, 6, 7, 8, 9], [1, 10, 11], [1, 20, 21, 22, 23, 24, 25, 26, 27]]


@pytest.fixture(scope="module")
def sample_benchmark(load_benchmark):
  return load_benchmark("sample")


@pytest.fixture(scope="module")
def model():
  # Untied embeddings: a tied tiny random model just repeats its input.
  config = tiny.tiny_config("llama", tie_embeddings=False, max_seq_len=256)
  return Decoder(config), tiny.tiny_params(config, seed=0)


def _pair(sample_benchmark, model, **kw):
  kw.setdefault("eos_ids", [2])
  return (sampler_lib.Sampler(*model, **kw),
          sample_benchmark.NaiveSampler(*model, **kw))


def _run(smp, sp, **kw):
  return [(c.tokens, c.finish) for c in smp.generate(PROMPTS, sp, **kw)]


def test_naive_loop_equals_the_fused_sampler(sample_benchmark, model):
  fused, naive = _pair(sample_benchmark, model)
  greedy = sampler_lib.SamplingParams(max_new_tokens=8, temperature=0.0)
  want = _run(fused, greedy)
  assert all(len(t) == 8 for t, _ in want)
  assert _run(naive, greedy) == want
  # Seeded sampling: the same key per row and step.
  sp = sampler_lib.SamplingParams(max_new_tokens=8, temperature=1.0)
  sampled = _run(fused, sp, seed=3, row_ids=[4, 5, 6])
  assert sampled != want
  assert _run(naive, sp, seed=3, row_ids=[4, 5, 6]) == sampled
  # A shared prefix (made once, read by both).
  prefix = fused.make_prefix([1] + list(range(40, 61)), chunk=7)
  assert (_run(naive, greedy, prefix=prefix) ==
          _run(fused, greedy, prefix=prefix))


def test_naive_loop_stops_like_the_fused_sampler(sample_benchmark, model):
  fused, _ = _pair(sample_benchmark, model)
  greedy = sampler_lib.SamplingParams(max_new_tokens=8, temperature=0.0)
  free = [t for t, _ in _run(fused, greedy)]
  # EOS := row 0's fourth token; a stop sequence := row 1's tokens 2-3.
  fused, naive = _pair(sample_benchmark, model, eos_ids=[free[0][3]],
                       stop_token_seqs=[free[1][2:4]])
  got = _run(fused, greedy)
  assert {f for _, f in got} - {"length"}  # Something stopped early.
  assert _run(naive, greedy) == got


def test_sample_benchmark_prints_json_last(sample_benchmark, capsys):
  result = sample_benchmark.main([
      "--model=tiny:llama", "--batch=2", "--prompt_len=8", "--new_tokens=4",
      "--repeats=1"])
  last = capsys.readouterr().out.strip().splitlines()[-1]
  assert json.loads(last) == result
  assert result["tokens_per_s"] > 0 and result["speedup"] > 0
  assert result["naive_tokens_per_s"] > 0
  assert result["flops_per_call"] == flops.generation_flops(
      tiny.tiny_config("llama"), 8, 4, num_sequences=2)
