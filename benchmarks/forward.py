"""Forward-pass throughput of the decoder (tokens/s), sharded over a mesh.

With no arguments: the SmolLM2-135M shape with random float32 weights, one
sequence of 512 tokens, on every local device (all on the `fsdp` axis).

  python benchmarks/forward.py
  python benchmarks/forward.py --model=gemma3-270m --seq_len=2048 --batch=8 \
      --dtype=bfloat16 --mesh=1,1,-1
  python benchmarks/forward.py --weights=real   # the offline GGUF weights

Timing: one warm-up call (compiles), then the median of `--repeats` calls,
each ended by `block_until_ready`. `gflops_per_s` counts the model FLOPs of
`ftgen.models.flops.forward_flops` (causal attention, logits included). The
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# pylint: disable=g-import-not-at-top,wrong-import-position
from ftgen.models import flops as flops_lib
from ftgen.models import presets
from ftgen.models.decoder import Decoder
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding
from ftgen.models import tiny
# pylint: enable=g-import-not-at-top,wrong-import-position


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      "--model", default="smollm2-135m",
      help=f"a preset ({', '.join(sorted(presets.PRESETS))}) or "
           f"tiny:FAMILY ({', '.join(sorted(tiny.TINY_CONFIGS))})")
  parser.add_argument("--weights", default="random", choices=("random", "real"),
                      help="random init, or the real weights through the "
                           "model registry (smollm2-135m, gemma3-270m)")
  parser.add_argument("--seq_len", type=int, default=512)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"),
                      help="params and activations dtype (logits are float32)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--mesh", default="1,-1,1",
                      help="data,fsdp,tensor sizes; one may be -1")
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args(argv)


def main(argv=None) -> dict:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, stream=sys.stderr)
  devices = jax.devices()
  mesh = mesh_lib.make_mesh(tuple(int(s) for s in args.mesh.split(",")),
                            devices)

  start = time.perf_counter()
  if args.weights == "real":
    from ftgen.checkpoints import registry  # pylint: disable=g-import-not-at-top
    loaded = registry.load_model(args.model, dtype=args.dtype, mesh=mesh)
    config, params = loaded.config, loaded.params
  else:
    config = presets.get_preset(args.model, param_dtype=args.dtype,
                                dtype=args.dtype)
    params = sharding.init_sharded(config, mesh, jax.random.key(args.seed))
  jax.block_until_ready(params)
  load_s = time.perf_counter() - start
  _, fallbacks = sharding.param_shardings(config, mesh)

  model = Decoder(config)
  rng = np.random.default_rng(args.seed)
  tokens = rng.integers(0, config.vocab_size, (args.batch, args.seq_len),
                        dtype=np.int32)
  tokens = sharding.shard_batch(tokens, mesh)

  @jax.jit
  def forward(p, t):
    return model.apply({"params": p}, t)

  with sharding.mesh_context(mesh):
    start = time.perf_counter()
    for _ in range(max(args.warmup, 1)):
      jax.block_until_ready(forward(params, tokens))
    compile_s = time.perf_counter() - start
    times, cpu_times = [], []
    for _ in range(args.repeats):
      start, cpu_start = time.perf_counter(), time.process_time()
      logits = jax.block_until_ready(forward(params, tokens))
      times.append(time.perf_counter() - start)
      # CPU seconds of all threads: on a shared, busy host, wall time
      # overstates the cost; load_avg says how busy it was.
      cpu_times.append(time.process_time() - cpu_start)
  assert logits.shape == (args.batch, args.seq_len, config.vocab_size)
  if not np.isfinite(np.asarray(logits[0, -1])).all():
    raise RuntimeError("non-finite logits: the benchmark measured garbage")

  median_s = statistics.median(times)
  num_tokens = args.batch * args.seq_len
  flops = flops_lib.forward_flops(config, args.seq_len) * args.batch
  summary = mesh_lib.mesh_summary(mesh)
  result = {
      "tokens_per_s": num_tokens / median_s,
      "model": args.model,
      "weights": args.weights,
      "seq_len": args.seq_len,
      "batch": args.batch,
      "dtype": args.dtype,
      "median_s": median_s,
      "min_s": min(times),
      "median_cpu_s": statistics.median(cpu_times),
      "load_avg_1m": os.getloadavg()[0],
      "times_s": times,
      "repeats": args.repeats,
      "warmup_and_compile_s": compile_s,
      "load_s": load_s,
      "gflops_per_s": flops / median_s / 1e9,
      "num_params": config.num_params(),
      "devices": summary["num_devices"],
      "platform": summary["platform"],
      "device_kind": summary["device_kind"],
      "mesh": summary["shape"],
      "replicated_dims": [str(f) for f in fallbacks],
      "host_cpus": os.cpu_count(),
      "machine": platform.processor() or platform.machine(),
      "jax_version": jax.__version__,
  }
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
