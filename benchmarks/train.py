"""Training-step throughput (tokens/s) and MFU of the jitted train step.

With no arguments: the SmolLM2-135M shape with random float32 weights, full
fine-tuning with AdamW, batch 2 x 128 tokens, on every local device (all on
the `fsdp` axis): a size a 2-core CPU runs in about a minute.

  python benchmarks/train.py
  python benchmarks/train.py --model=llama3.2-1b --seq_len=2048 --batch=8 \
      --dtype=bfloat16 --mesh=1,-1,1          # the GPU/TPU goal shapes
  python benchmarks/train.py --lora_rank=16   # LoRA on q,k,v,o,gate,up,down

The step is `ftgen.train.step.make_train_step` (the one the loop runs):
forward, loss on every token, backward, global-norm clipping, AdamW, state
donated. `--compare_full_logits` also builds the step with the plain
full-logits loss and times both, interleaved, in one run, with each compiled
step's temporary memory (XLA's memory analysis). MFU is `ftgen.models.flops`'s
count (`train_flops_per_token`, LoRA's with `--lora_rank`; `mfu`) against
`--peak_flops` per device (default 989e12, H100/H200 dense bf16; on a CPU it
is only a consistency figure). Timing: warm-up calls (compile), then the
median of `--repeats` steps. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import ml_collections
import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# pylint: disable=g-import-not-at-top,wrong-import-position
from ftgen.models import head
from ftgen.models import presets
from ftgen.models import decoder
from ftgen.models.decoder import Decoder
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding
from ftgen.models import flops
from ftgen.train import lora as lora_lib
from ftgen.train import optim
from ftgen.train import state as state_lib
from ftgen.train import step as step_lib
# pylint: enable=g-import-not-at-top,wrong-import-position

LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
      "--model", default="smollm2-135m",
      help=f"a preset ({', '.join(sorted(presets.PRESETS))}) or tiny:FAMILY")
  parser.add_argument("--seq_len", type=int, default=128)
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"),
                      help="compute dtype; params stay float32")
  parser.add_argument("--lora_rank", type=int, default=0,
                      help="0: full fine-tuning")
  parser.add_argument("--remat", default="none",
                      choices=tuple(decoder.REMAT_POLICIES),
                      help="rematerialization of the blocks in the backward"
                      " pass (ftgen.models.decoder.REMAT_POLICIES)")
  parser.add_argument("--loss_chunk_tokens", type=int,
                      default=head.CHUNK_TOKENS,
                      help="tokens per chunk of the vocabulary projection in "
                      "the loss (0: full [B,T,V] logits)")
  parser.add_argument("--compare_full_logits", action="store_true",
                      help="also time the full-logits loss, interleaved, and "
                      "report both steps' compiled temporary memory")
  parser.add_argument("--memory_only", action="store_true",
                      help="compile and report temporary memory; run nothing")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--warmup", type=int, default=1)
  parser.add_argument("--mesh", default="1,-1,1",
                      help="data,fsdp,tensor sizes; one may be -1")
  parser.add_argument("--peak_flops", type=float,
                      default=flops.PEAK_FLOPS_BF16,
                      help="peak FLOP/s per device for MFU")
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args(argv)


def main(argv=None) -> dict:
  args = parse_args(argv)
  mesh = mesh_lib.make_mesh(tuple(int(s) for s in args.mesh.split(",")))
  config = presets.get_preset(args.model, param_dtype="float32",
                              dtype=args.dtype)
  model = Decoder(config, remat=args.remat)
  params = sharding.init_sharded(config, mesh, jax.random.key(args.seed))
  opt_cfg = ml_collections.ConfigDict(dict(
      lr=1e-4, steps=1000, warmup_steps=10, schedule="cosine",
      end_lr_fraction=0.1, weight_decay=0.0, grad_clip=1.0, b1=0.9, b2=0.999,
      eps=1e-8))
  optimizer, schedule = optim.make_optimizer(opt_cfg)
  param_sh = jax.tree.map(lambda x: x.sharding, params)
  if args.lora_rank:
    adapters = lora_lib.init(params, LORA_TARGETS, args.lora_rank,
                             config.embed_dim, args.seed)
    trainable_sh = state_lib.lora_shardings(adapters, mesh)
    trainable = jax.device_put(adapters, trainable_sh)
    frozen, frozen_sh = params, param_sh
  else:
    trainable, trainable_sh, frozen, frozen_sh = params, param_sh, {}, {}
  shape = (1, args.batch, args.seq_len)
  batch_sh = sharding.batch_sharding(shape, mesh,
                                     logical_axes=(None, "batch", "length"))
  rng = np.random.default_rng(args.seed)
  tokens = rng.integers(0, config.vocab_size, (1, args.batch,
                                                args.seq_len + 1), np.int32)
  batch = jax.device_put(dict(
      inputs=tokens[..., :-1], targets=tokens[..., 1:],
      weights=np.ones(shape, np.float32), mask=np.ones(shape, bool)),
                         batch_sh)

  def build(loss_chunk_tokens):
    """A fresh (donated) state, its jitted step and compiled temp bytes."""
    # A copy: each step donates its state, and the runs must not share it.
    state, shardings = state_lib.init_state(
        jax.tree.map(lambda x: x.copy(), trainable), trainable_sh,
        optimizer, args.seed, mesh)
    train_step = step_lib.make_train_step(
        model, optimizer, schedule, mesh=mesh, state_shardings=shardings,
        frozen_shardings=frozen_sh, batch_sharding=batch_sh,
        lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank,
        loss_chunk_tokens=loss_chunk_tokens)
    with sharding.mesh_context(mesh):
      memory = train_step.lower(state, frozen, batch).compile(
          ).memory_analysis()
    temp = None if memory is None else int(memory.temp_size_in_bytes)
    return dict(state=state, step=train_step, temp_bytes=temp, times=[],
                cpu_times=[])

  runs = {"main": build(args.loss_chunk_tokens)}
  if args.compare_full_logits:
    runs["full_logits"] = build(0)
  if args.memory_only:
    result = {"model": args.model, "seq_len": args.seq_len,
              "batch": args.batch, "dtype": args.dtype,
              "lora_rank": args.lora_rank,
              "loss_chunk_tokens": args.loss_chunk_tokens,
              "temp_bytes": runs["main"]["temp_bytes"]}
    if "full_logits" in runs:
      result["full_logits"] = {"temp_bytes": runs["full_logits"]["temp_bytes"]}
    print(json.dumps(result))
    return result
  with sharding.mesh_context(mesh):
    start = time.perf_counter()
    for run in runs.values():
      for _ in range(max(args.warmup, 1)):
        run["state"], run["metrics"] = run["step"](run["state"], frozen,
                                                   batch)
        jax.block_until_ready(run["metrics"])
    compile_s = time.perf_counter() - start
    for _ in range(args.repeats):  # Interleaved: same load for both.
      for run in runs.values():
        start, cpu_start = time.perf_counter(), time.process_time()
        run["state"], run["metrics"] = run["step"](run["state"], frozen,
                                                   batch)
        jax.block_until_ready(run["metrics"])
        run["times"].append(time.perf_counter() - start)
        run["cpu_times"].append(time.process_time() - cpu_start)
  main_run = runs["main"]
  state, metrics = main_run["state"], main_run["metrics"]
  times, cpu_times = main_run["times"], main_run["cpu_times"]
  loss = float(metrics["loss"])
  if not np.isfinite(loss):
    raise RuntimeError("non-finite loss: the benchmark measured garbage")

  median_s = statistics.median(times)
  num_tokens = args.batch * args.seq_len
  tokens_per_s = num_tokens / median_s
  per_token = flops.train_flops_per_token(
      config, args.seq_len, lora_rank=args.lora_rank,
      lora_targets=LORA_TARGETS if args.lora_rank else ())
  summary = mesh_lib.mesh_summary(mesh)
  result = {
      "tokens_per_s": tokens_per_s,
      "mfu": flops.mfu(per_token * num_tokens, median_s, args.peak_flops,
                       summary["num_devices"]),
      "model": args.model,
      "seq_len": args.seq_len,
      "batch": args.batch,
      "dtype": args.dtype,
      "lora_rank": args.lora_rank,
      "remat": args.remat,
      "loss_chunk_tokens": args.loss_chunk_tokens,
      "temp_bytes": main_run["temp_bytes"],
      "train_flops_per_token": per_token,
      "tflops_per_s": tokens_per_s * per_token / 1e12,
      "peak_flops_per_device": args.peak_flops,
      "median_s": median_s,
      "times_s": times,
      "median_cpu_s": statistics.median(cpu_times),
      "load_avg_1m": os.getloadavg()[0],
      "warmup_and_compile_s": compile_s,
      "num_params": config.num_params(),
      "trained_params": state_lib.tree_size(state["params"]),
      "loss": loss,
      "devices": summary["num_devices"],
      "mesh": summary["shape"],
      "platform": summary["platform"],
      "device_kind": summary["device_kind"],
  }
  if "full_logits" in runs:
    full = runs["full_logits"]
    full_s = statistics.median(full["times"])
    result["full_logits"] = {
        "median_s": full_s, "times_s": full["times"],
        "temp_bytes": full["temp_bytes"],
        "loss": float(full["metrics"]["loss"])}
    # > 1: the chunked loss is faster; temp ratio < 1: it needs less memory.
    result["speedup_vs_full_logits"] = full_s / median_s
    if full["temp_bytes"] and main_run["temp_bytes"] is not None:
      result["temp_ratio_vs_full_logits"] = (
          main_run["temp_bytes"] / full["temp_bytes"])
    result["loss_abs_diff_vs_full_logits"] = abs(
        loss - result["full_logits"]["loss"])
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
