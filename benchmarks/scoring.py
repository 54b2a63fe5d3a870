"""Shared-prefix vs naive multiple-choice scoring, same model, same run.

Naive scoring runs every (context, continuation) row through the model with
the whole context, as lm-evaluation-harness does. Shared-prefix scoring
prefills the context once into a KV cache (chunked, no logits) and scores all
continuations in batches against it (`ftgen.eval.prefix`). Both go through
the same jitted scorer of `ftgen.eval.scoring`; their log-likelihoods are
compared (max_abs_diff).

With no arguments: a CPU-sized decoder (Llama shape, 4 layers, d=256, vocab
8192, random float32 weights), a 2048-token context, 32 continuations of 8
tokens after an 8-token question each.

  python benchmarks/scoring.py
  python benchmarks/scoring.py --model=llama3.2-1b --dtype=bfloat16 \
      --context=16384 --num_continuations=256 --continuation_len=32 \
      --question_len=1 --naive_batch=1 --prefix_batch=64    # one H100

`--mode=per_context` measures the retrieval case instead: every question
has a context of its own (uniform in [context/2, context] tokens, like k
retrieved documents) followed by `--choices` continuations; naive scoring
re-encodes the context per choice, `score_per_context` prefills each
context once (lengths bucketed) and scores its choices against it.

  python benchmarks/scoring.py --mode=per_context --context=768 \
      --num_continuations=64 --choices=4

FLOPs are `ftgen.models.flops`'s count (matmul weights 2 FLOPs/token,
attention 4·N·H FLOPs per query-key pair; the prefill computes no logits);
`flop_ratio` is naive over shared-prefix FLOPs, the speedup an ideal
implementation would reach.
Timings are medians of `--repeats` runs after a warm-up (compiles). The last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# pylint: disable=g-import-not-at-top,wrong-import-position
from ftgen.eval import prefix as prefix_lib
from ftgen.eval import scoring
from ftgen.models import kv_cache
from ftgen.models import presets
from ftgen.models.config import ModelConfig
from ftgen.models.decoder import Decoder
from ftgen.models import flops as flops_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

# Peak dense bf16 FLOP/s for MFU by platform (docs/design.md#performance);
# None: not reported.
_PEAK = {"gpu": flops_lib.PEAK_FLOPS_BF16}

CPU_DEFAULT = ModelConfig(
    family="llama", vocab_size=8192, embed_dim=256, num_layers=4, num_heads=4,
    num_kv_heads=2, head_dim=64, mlp_dim=768, max_seq_len=32768,
    bos_token_id=1, eos_token_ids=(2,), pad_token_id=0)


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="cpu-default",
                      help=("cpu-default or a preset:"
                            f" {', '.join(presets.PRESETS)}"))
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"))
  parser.add_argument("--context", type=int, default=2048,
                      help="shared context tokens P")
  parser.add_argument("--num_continuations", type=int, default=32)
  parser.add_argument("--question_len", type=int, default=8,
                      help="per-row context tokens after the shared prefix")
  parser.add_argument("--continuation_len", type=int, default=8)
  parser.add_argument("--naive_batch", type=int, default=4)
  parser.add_argument("--prefix_batch", type=int, default=32)
  parser.add_argument("--prefill_chunk", type=int, default=512)
  parser.add_argument("--mode", default="shared",
                      choices=("shared", "per_context"),
                      help="one context for all rows, or one per question")
  parser.add_argument("--choices", type=int, default=4,
                      help="per_context: continuations per question")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args(argv)


def model_config(args) -> ModelConfig:
  if args.model == "cpu-default":
    config = CPU_DEFAULT
  else:
    config = presets.get_preset(args.model)
  total = args.context + args.question_len + args.continuation_len
  return config.replace(param_dtype=args.dtype, dtype=args.dtype,
                        max_seq_len=max(config.max_seq_len, total))


def random_params(model: Decoder, seed: int):
  """N(0, 0.02) weights, 1.0 norm scales, made on device in one jit."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  shapes = jax.eval_shape(lambda: nn.unbox(model.init(
      jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]))
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)

  @jax.jit
  def make():
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    out = []
    for k, (path, s) in zip(keys, leaves):
      if path[-1].key == "scale":
        out.append(jnp.ones(s.shape, s.dtype))
      else:
        out.append((0.02 * jax.random.normal(k, s.shape)).astype(s.dtype))
    return out
  return jax.tree_util.tree_unflatten(treedef, make())


def requests(args, vocab: int) -> list[scoring.Request]:
  rng = np.random.default_rng(args.seed)
  shared = tuple(rng.integers(3, vocab, args.context).tolist())
  out = []
  for i in range(args.num_continuations):
    # A distinct first question token, so the common prefix is exactly P.
    question = (3 + i % (vocab - 3),) + tuple(
        rng.integers(3, vocab, args.question_len - 1).tolist())
    cont = tuple(rng.integers(3, vocab, args.continuation_len).tolist())
    out.append(scoring.Request(shared + question, cont))
  return out


def analytic_flops(config: ModelConfig, p: int, r: int, s: int
                   ) -> tuple[float, float, float]:
  """(naive, shared-prefix, prefill) forward FLOPs; s: row tokens after P."""
  # Naive rows run all P + s input tokens (all tokens but the last).
  naive = flops_lib.scoring_flops(config, p, [s] * r)
  prefill = flops_lib.prefill_flops(config, p)
  cached = prefill + flops_lib.scoring_flops(config, p, [s] * r,
                                             prefix_cached=True)
  return naive, cached, prefill


def _median_time(fn, repeats: int) -> tuple[float, object]:
  out = fn()  # Warm-up: compiles.
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), out


def _setting(args, config: ModelConfig) -> dict:
  """JSON fields naming the model, shapes and machine of a run."""
  return {
      "model": args.model,
      "num_params": config.num_params(),
      "dtype": args.dtype,
      "context": args.context,
      "question_len": args.question_len,
      "continuation_len": args.continuation_len,
      "repeats": args.repeats,
      "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}",
      "num_devices": jax.device_count(),
      "host": platform.machine(),
  }


def per_context_requests(args, vocab: int) -> list[scoring.Request]:
  """Questions with contexts of their own, `args.choices` rows each."""
  rng = np.random.default_rng(args.seed)
  out = []
  for _ in range(max(args.num_continuations // args.choices, 1)):
    n = int(rng.integers(args.context // 2, args.context + 1))
    ctx = tuple(rng.integers(3, vocab, n + args.question_len).tolist())
    for _ in range(args.choices):
      cont = tuple(rng.integers(3, vocab, args.continuation_len).tolist())
      out.append(scoring.Request(ctx, cont))
  return out


def per_context_flops(config: ModelConfig, reqs: list[scoring.Request]
                      ) -> tuple[float, float]:
  """(naive, per-context) forward FLOPs, as `analytic_flops` counts them."""
  naive = cached = 0.0
  seen = set()
  for r in reqs:
    naive += flops_lib.forward_flops(config, len(r) - 1)
    c = len(r.context) - 1  # Cached: all but the last context token.
    if r.context not in seen:
      seen.add(r.context)
      cached += flops_lib.prefill_flops(config, c)
    cached += flops_lib.forward_flops(config, len(r.continuation), context=c)
  return naive, cached


def main_per_context(args, config: ModelConfig, model: Decoder,
                     params) -> dict:
  reqs = per_context_requests(args, config.vocab_size)

  def naive():
    return scoring.score_requests(model, params, reqs,
                                  batch_size=args.naive_batch).logliks

  def cached():
    scores, _ = prefix_lib.score_per_context(
        model, params, reqs, chunk=args.prefill_chunk,
        batch_size=args.prefix_batch)
    return scores.logliks

  t_naive, ll_naive = _median_time(naive, args.repeats)
  t_cached, ll_cached = _median_time(cached, args.repeats)
  f_naive, f_cached = per_context_flops(config, reqs)
  return {
      "mode": "per_context",
      "speedup": t_naive / t_cached,
      "flop_ratio": f_naive / f_cached,
      "fraction_of_flop_ratio": (t_naive / t_cached) / (f_naive / f_cached),
      "naive_s": t_naive,
      "per_context_s": t_cached,
      "naive_tflops_per_s": f_naive / t_naive / 1e12,
      "per_context_tflops_per_s": f_cached / t_cached / 1e12,
      "max_abs_diff": float(np.max(np.abs(ll_naive - ll_cached))),
      "same_argmax": bool(np.array_equal(
          ll_naive.reshape(-1, args.choices).argmax(1),
          ll_cached.reshape(-1, args.choices).argmax(1))),
      "num_questions": len(reqs) // args.choices,
      "choices": args.choices,
      **_setting(args, config),
  }


def main(argv=None) -> dict:
  args = parse_args(argv)
  config = model_config(args)
  model = Decoder(config)
  params = random_params(model, args.seed)
  if args.mode == "per_context":
    result = main_per_context(args, config, model, params)
    print(json.dumps(result))
    return result
  reqs = requests(args, config.vocab_size)
  p = args.context
  s = args.question_len + args.continuation_len - 1  # Row tokens after P.
  naive_len = p + s

  def naive():
    return scoring.score_requests(model, params, reqs,
                                  batch_size=args.naive_batch,
                                  buckets=(naive_len,)).logliks

  def cached():
    scores, plen = prefix_lib.score_with_prefix(
        model, params, reqs, chunk=args.prefill_chunk,
        batch_size=args.prefix_batch, buckets=(s,))
    assert plen == p, (plen, p)
    return scores.logliks

  def prefill():
    pc = kv_cache.prefill_prefix(model, params, reqs[0].context[:p],
                                 chunk=args.prefill_chunk)
    return jax.block_until_ready(pc.cache)

  t_naive, ll_naive = _median_time(naive, args.repeats)
  t_cached, ll_cached = _median_time(cached, args.repeats)
  t_prefill, _ = _median_time(prefill, args.repeats)
  f_naive, f_cached, f_prefill = analytic_flops(
      config, p, args.num_continuations, s)
  platform_name = jax.devices()[0].platform
  peak = _PEAK.get(platform_name) if args.dtype == "bfloat16" else None
  result = {
      "speedup": t_naive / t_cached,
      "flop_ratio": f_naive / f_cached,
      "fraction_of_flop_ratio": (t_naive / t_cached) / (f_naive / f_cached),
      "naive_s": t_naive,
      "prefix_s": t_cached,
      "prefill_s": t_prefill,
      "naive_tflops_per_s": f_naive / t_naive / 1e12,
      "prefix_tflops_per_s": f_cached / t_cached / 1e12,
      "prefill_tflops_per_s": f_prefill / t_prefill / 1e12,
      "prefill_mfu": (flops_lib.mfu(f_prefill, t_prefill, peak)
                      if peak else None),
      "max_abs_diff": float(np.max(np.abs(ll_naive - ll_cached))),
      "same_argmax": bool(np.argmax(ll_naive) == np.argmax(ll_cached)),
      "num_continuations": args.num_continuations,
      **_setting(args, config),
  }
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
