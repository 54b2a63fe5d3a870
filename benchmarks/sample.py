"""Decode throughput: the jitted while_loop sampler vs a naive decode loop.

Both run in one process on the same model, batch and prompts: `fused` is
`ftgen.sample.sampler.Sampler.generate` (prefill + the whole decode loop in
one jit, donated cache); `naive` is `NaiveSampler` below, the same prefill
followed by a Python loop around one jitted decode step (one dispatch and
host sync per token), with the same tokens, keys and stopping rules. Rows
never stop early (no EOS), so both produce batch * new_tokens tokens.

With no arguments: the SmolLM2-135M shape with random float32 weights,
batch 8, 64-token prompts, 32 new tokens (CPU-sized).

  python benchmarks/sample.py
  python benchmarks/sample.py --model=llama3.2-1b --dtype=bfloat16 \
      --batch=256 --prompt_len=128 --new_tokens=256       # one H100
  python benchmarks/sample.py ... --prefix_len=16384      # shared prefix

Timing: one warm-up call per mode (compiles), then the median of
`--repeats` calls. Tokens/s counts generated tokens over the whole call
(prefill included). The roofline is the memory-bandwidth bound of decode:
each step reads the params, the batch's KV cache and the shared prefix once;
it is reported when the device bandwidth is known (or given). The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# pylint: disable=g-import-not-at-top,wrong-import-position
import flax.linen as nn
from ftgen.models import kv_cache
from ftgen.models import flops as flops_lib
from ftgen.models import presets
from ftgen.models.decoder import Decoder
from ftgen.sample import sampler as sampler_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

# Peak memory bandwidth (GB/s) by device kind, for the roofline.
BANDWIDTH_GBPS = {"H100": 3350.0, "H200": 4800.0, "A100": 2039.0}


@functools.partial(jax.jit, static_argnums=0, donate_argnums=2)
def _prefill(model, params, cache, tokens, mask, positions, prefix):
  return kv_cache.fill(model, params, kv_cache.reset(cache), tokens,
                       positions, mask, prefix)


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=3)
def _step(model, mode, params, cache, last, pos, keys, temperature, top_p,
          prefix):
  logits, cache = model.apply({"params": params}, last[:, None], pos[:, None],
                              cache=cache, prefix=prefix)
  return sampler_lib.choose_tokens(logits[:, 0], keys, mode, temperature,
                                   top_p), cache


class NaiveSampler(sampler_lib.Sampler):
  """The baseline: the fused sampler's results, one dispatch per token."""

  def _decode(self, static, cache, ids, mask, positions, limit, temperature,
              top_p, seed, row_ids, done0, prefix):
    cache = _prefill(self.model, self.params, cache, ids[:, :-1],
                     mask[:, :-1], positions[:, :-1], prefix)
    row_keys = sampler_lib.row_keys(jnp.uint32(seed), jnp.asarray(row_ids))
    b = ids.shape[0]
    last, pos = ids[:, -1], positions[:, -1]
    done = np.asarray(done0).copy()
    out = np.full((b, static.max_new), -1, np.int32)
    lengths = np.zeros((b,), np.int32)
    finish = np.zeros((b,), np.int32)
    eos = set(self.eos_ids)
    stop_mask = np.asarray(self._stop_mask)
    seqs = [tuple(int(x) for x in row if x != -2)
            for row in np.asarray(self._stop_seqs)]
    gen: list[list[int]] = [[] for _ in range(b)]
    step = 0
    while step < limit and not done.all():
      keys = sampler_lib.step_keys(row_keys, jnp.int32(step))
      tok, cache = _step(self.model, static.mode, self.params, cache, last,
                         pos, keys, temperature, top_p, prefix)
      tok_np = np.asarray(tok)
      for i in range(b):
        if done[i]:
          continue
        t = int(tok_np[i])
        if t in eos:
          finish[i], done[i] = 1, True
          continue
        out[i, step] = t
        lengths[i] += 1
        gen[i].append(t)
        if stop_mask[t] or any(tuple(gen[i][-len(s):]) == s for s in seqs):
          finish[i], done[i] = 2, True
      last, pos = tok, pos + 1
      step += 1
    return out, lengths, finish, step, cache


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      "--model", default="smollm2-135m",
      help=f"a preset ({', '.join(sorted(presets.PRESETS))}) or tiny:FAMILY")
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"))
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--prompt_len", type=int, default=64)
  parser.add_argument("--new_tokens", type=int, default=32)
  parser.add_argument("--prefix_len", type=int, default=0,
                      help="shared cached prefix length (0: none)")
  parser.add_argument("--temperature", type=float, default=0.0,
                      help="0: greedy; >0 samples (with --top_p)")
  parser.add_argument("--top_p", type=float, default=1.0)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--skip_naive", action="store_true",
                      help="time only the fused sampler")
  parser.add_argument("--bandwidth_gbps", type=float, default=0.0,
                      help="device memory bandwidth for the roofline "
                           "(default: known GPUs only)")
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args(argv)


def make_config(args):
  return presets.get_preset(args.model, param_dtype=args.dtype,
                            dtype=args.dtype, max_seq_len=1 << 20)


def random_params(model, seed: int):
  init = jax.jit(lambda k: nn.unbox(
      model.init(k, jnp.zeros((1, 4), jnp.int32))["params"]))
  return init(jax.random.PRNGKey(seed))


def _median_time(fn, repeats: int) -> float:
  fn()  # warm-up: compiles
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def roofline_tokens_per_s(config, args, bandwidth_gbps: float) -> float:
  """Decode tokens/s if every step only streamed weights + KV at peak."""
  itemsize = jnp.dtype(args.dtype).itemsize
  param_bytes = config.num_params() * itemsize
  slots = (sampler_lib.bucket(args.prompt_len) +
           sampler_lib.bucket(args.new_tokens, sampler_lib.OUTPUT_BUCKETS))
  kv_per_token = (2 * config.num_layers * config.num_kv_heads *
                  config.head_dim * itemsize)
  step_bytes = (param_bytes + args.batch * slots * kv_per_token
                + args.prefix_len * kv_per_token)
  return args.batch * bandwidth_gbps * 1e9 / step_bytes


def main(argv=None) -> dict:
  args = parse_args(argv)
  config = make_config(args)
  model = Decoder(config)
  params = random_params(model, args.seed)
  smp = sampler_lib.Sampler(model, params, eos_ids=())
  naive_smp = NaiveSampler(model, params, eos_ids=())
  rng = np.random.default_rng(args.seed)
  high = min(config.vocab_size, 32_000)
  prompts = [list(rng.integers(3, high, size=args.prompt_len))
             for _ in range(args.batch)]
  prefix = None
  if args.prefix_len:
    prefix = smp.make_prefix(list(rng.integers(3, high, size=args.prefix_len)))
  sp = sampler_lib.SamplingParams(max_new_tokens=args.new_tokens,
                                  temperature=args.temperature,
                                  top_p=args.top_p)
  tokens = args.batch * args.new_tokens

  def run(sampler):
    def go():
      out = sampler.generate(prompts, sp, seed=args.seed, prefix=prefix,
                             batch_size=args.batch)
      assert sum(len(c.tokens) for c in out) == tokens
    return go

  fused_s = _median_time(run(smp), args.repeats)
  naive_s = (None if args.skip_naive
             else _median_time(run(naive_smp), args.repeats))
  # Model FLOPs of one call: the shared prefix once, then each row's prompt
  # and decode.
  call_flops = flops_lib.generation_flops(
      config, args.prompt_len, args.new_tokens, num_sequences=args.batch,
      prefix_tokens=args.prefix_len)
  device = jax.devices()[0]
  kind = getattr(device, "device_kind", device.platform)
  bandwidth = args.bandwidth_gbps or next(
      (v for k, v in BANDWIDTH_GBPS.items() if k in kind), 0.0)
  result = {
      "tokens_per_s": round(tokens / fused_s, 2),
      "naive_tokens_per_s": (None if naive_s is None
                             else round(tokens / naive_s, 2)),
      "speedup": None if naive_s is None else round(naive_s / fused_s, 3),
      "fused_s": round(fused_s, 4),
      "flops_per_call": call_flops,
      "tflops_per_s": call_flops / fused_s / 1e12,
      "naive_s": None if naive_s is None else round(naive_s, 4),
      "model": args.model, "dtype": args.dtype, "batch": args.batch,
      "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
      "prefix_len": args.prefix_len, "temperature": args.temperature,
      "repeats": args.repeats, "device": kind,
      "num_devices": jax.device_count(),
  }
  if bandwidth:
    roof = roofline_tokens_per_s(config, args, bandwidth)
    result["roofline_tokens_per_s"] = round(roof, 1)
    result["roofline_fraction"] = round(tokens / fused_s / roof, 3)
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
