"""Compile-only analysis of the hot paths at real shapes, on any backend.

Nothing runs and nothing real is allocated: every program is traced from
`jax.ShapeDtypeStruct`s (`jax.eval_shape` of the params and caches), then
`jax.jit(f).lower(...).compile()`, and read from XLA's `memory_analysis()`
(temporary memory), `cost_analysis()` (FLOPs, bytes accessed) and the
compiled HLO text. Float32 by default, so byte counts are not inflated by a
CPU's bfloat16 upcasts.

  python benchmarks/compiled.py                # everything: ~80 s, 2-core CPU
  python benchmarks/compiled.py --only=decode_bytes_growth_ratio,train_temp_gb
  python benchmarks/compiled.py --tiny         # every analysis, tiny sizes

Loops: XLA's cost analysis counts a while loop's body once, not times its
trip count (the layers' `nn.scan`, `lax.scan` chunks). FLOPs and bytes here
come from `hlo_analysis.program_cost`: XLA's own cost analysis of the whole
program plus (trip count - 1) times XLA's cost of each loop body, cut out of
the compiled module as a program of its own (recursively for nested loops).
Loops whose trip count XLA does not know are reported (`*_unknown_loops`)
and counted once. Temporary memory needs no correction (buffer assignment
covers the whole program). The loop-counted costs need a backend whose client
costs HLO modules: the CPU (the GPU plugin of jax 0.11.2 does not; there the
FLOP and byte keys are errors or None, temp memory and copies still come).

Keys of the JSON object printed last (all at --model, default Llama 3.2 1B
shape, --dtype float32):

* `decode_bytes_growth_ratio`, `decode_temp_growth_ratio`: one decode step
  (`model.apply` of 1 new token per row with a cache of `--decode_batch` rows,
  jitted with the cache donated) at 1,024 and 4,096 slots; the growth of its
  bytes accessed (resp. temporary memory) over the growth of the KV cache's
  bytes. An in-place step that reads the cache once: bytes ~1, temp ~0.
* `decode_cache_copies`: instructions of the 4,096-slot step that copy,
  transpose, broadcast, slice or convert a whole layer's K or V cache (B·K·S·H
  elements, any order) or the stacked L·B·K·S·H one
  (`hlo_analysis.cache_copies`); `decode_cache_copy_ops` lists them.
* `train_temp_gb`: the train step (`make_train_step`, AdamW, full
  fine-tuning) at batch 8 x 2,048 tokens, remat "full", one device;
  `train_temp_gb_by_remat` (its own key) the same for every remat policy.
* `prefix_scoring_temp_gb`: 64 rows x 64 tokens scored against a batch-1
  prefix cache of 16,384 slots (`model.apply(..., prefix=...,
  return_hidden=True)` then `head.target_logprobs`).
* `prefill_attention_flops_ratio`: attention FLOPs of a causal forward pass
  (`model.apply(tokens [1, T], return_hidden=True)`) over the exact causal
  count of `ftgen.models.flops` (4·N·H per visible query-key pair and layer),
  from two lengths: with F(T) the program's FLOPs (loops counted),
  ratio = (F(2T) - 2 F(T)) / (C(2T) - 2 C(T)), C the exact causal count.
  Everything linear in T (weights, norms, rope, and a blockwise kernel's
  per-block overhead) cancels, so this is the ratio of the terms quadratic
  in T: 2 for dense masked attention, 1 for an exact causal kernel.
  `cache_prefill_attention_flops_ratio`: the same for writing T tokens into
  an empty T-slot cache in one call (the cache path of a prefill).
  T = `--prefill_len` / 2 and `--prefill_len`.
* `lora_flop_ratio`: FLOPs of value_and_grad of the loss (`make_loss_fn`),
  LoRA rank 16 on q,k,v,o,gate,up,down over full fine-tuning, 2 layers, one
  row of 512 tokens, vocabulary cut to 1,024: `benchmarks/lora_flops.py`'s
  `lora_flop_ratio` (its whole result under `lora`).
* `fsdp_max_loop_allreduce_elems`, `fsdp_gather_dtypes`: the train step on
  8 (fake CPU) devices, mesh fsdp=8, bfloat16 compute, 2 layers: elements of
  the largest all-reduce inside a while loop, dtypes of the weight-sized
  all-gathers: `benchmarks/fsdp_collectives.py`'s `fsdp_collectives` (its
  whole result under `fsdp`).
* `compile_s` per analysis, `total_s`, `errors` (an analysis that failed:
  its message; the others still report).

The last line printed is one JSON object; logs go to stderr.
"""

from __future__ import annotations

import os
import sys

# The FSDP analysis needs 8 devices: fake CPU ones unless the flag is set.
# Must precede the first jax import.
_DEVICES_FLAG = "--xla_force_host_platform_device_count"
if _DEVICES_FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + f" {_DEVICES_FLAG}=8").strip()

# pylint: disable=g-import-not-at-top,wrong-import-position
import argparse
import dataclasses
import json
import logging
import time
import traceback
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks import fsdp_collectives
from benchmarks import hlo_analysis
from benchmarks import lora_flops
from ftgen.models import flops as flops_lib
from ftgen.models import head
from ftgen.models import kv_cache
from ftgen.models import presets
from ftgen.models.decoder import Decoder
from ftgen.models.decoder import REMAT_POLICIES
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding
# pylint: enable=g-import-not-at-top,wrong-import-position

_log = logging.getLogger("compiled")
GB = 1e9


@dataclasses.dataclass(frozen=True)
class Sizes:
  """The shapes of every analysis (`REAL`, or `TINY` for tests)."""

  num_layers: int = 0  # 0: the preset's.
  vocab_size: int = 0  # 0: the preset's.
  decode_batch: int = 64
  decode_slots: tuple[int, int] = (1024, 4096)
  train_batch: int = 8
  train_seq: int = 2048
  score_rows: int = 64
  score_len: int = 64
  score_prefix: int = 16384
  prefill_len: int = 16384
  lora_layers: int = 2
  lora_tokens: int = 512
  lora_vocab: int = 1024
  fsdp_layers: int = 2
  fsdp_seq: int = 256
  fsdp_batch: int = 8
  fsdp_vocab: int = 16384
  # The preset of the LoRA and FSDP analyses ('': --model); those helpers
  # take preset names only.
  helper_model: str = ""


REAL = Sizes()
# At least 2 layers everywhere: a loop of one trip is no loop, and the FSDP
# key counts collectives inside loops.
TINY = Sizes(num_layers=2, vocab_size=256, decode_batch=2,
             decode_slots=(64, 256), train_batch=2, train_seq=64,
             score_rows=4, score_len=8, score_prefix=256, prefill_len=256,
             lora_layers=2, lora_tokens=64, lora_vocab=256, fsdp_layers=2,
             fsdp_seq=32, fsdp_vocab=512, helper_model="smollm2-135m")


def model_config(name: str, dtype: str, num_layers: int = 0,
                 vocab_size: int = 0):
  """A preset (or tiny:FAMILY) with float32 params, optionally reduced."""
  overrides: dict[str, Any] = {"param_dtype": "float32", "dtype": dtype,
                               "max_seq_len": 1 << 20}
  if num_layers:
    overrides["num_layers"] = num_layers
  if vocab_size:
    overrides["vocab_size"] = vocab_size
  return presets.get_preset(name, **overrides)


def abstract_params(model: Decoder) -> Any:
  return nn.unbox(sharding.boxed_abstract_params(model))


def nbytes(tree: Any) -> int:
  return int(sum(x.size * jnp.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(tree)))


def temp_bytes(compiled: Any) -> int:
  return int(compiled.memory_analysis().temp_size_in_bytes)


def _compile(fn: Callable[..., Any], *args, donate=()) -> tuple[Any, float]:
  start = time.perf_counter()
  compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
  return compiled, time.perf_counter() - start


def _sds(shape, dtype) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(tuple(shape), jnp.dtype(dtype))


# --- decode ------------------------------------------------------------------


def decode_step_compiled(config, batch: int, slots: int):
  """(compiled decode step, abstract cache): 1 new token per row."""
  model = Decoder(config)
  params = abstract_params(model)
  cache = jax.eval_shape(lambda: kv_cache.init_cache(config, batch, slots))
  tokens = _sds((batch, 1), jnp.int32)

  def step(p, c, t, pos):
    return model.apply({"params": p}, t, pos, cache=c)

  compiled, secs = _compile(step, params, cache, tokens, tokens, donate=(1,))
  return compiled, cache, secs


def _cache_copies(config, text: str, batch: int, slots: int) -> list[str]:
  layer = batch * config.num_kv_heads * slots * config.head_dim
  return hlo_analysis.cache_copies(text, layer, config.num_layers * layer)


def decode_cache_copy_ops(config, batch: int = 2, slots: int = 64
                          ) -> list[str]:
  """The whole-cache moves of one compiled decode step (goal: none).

  For tests: e.g. `decode_cache_copy_ops(tiny.tiny_config("llama")) == []`.
  """
  compiled, _, _ = decode_step_compiled(config, batch, slots)
  return _cache_copies(config, compiled.as_text(), batch, slots)


def decode(config, sizes: Sizes) -> dict[str, Any]:
  """Growth of a decode step's bytes and temp memory with the cache slots."""
  figures, secs = {}, 0.0
  for slots in sizes.decode_slots:
    compiled, cache, s = decode_step_compiled(config, sizes.decode_batch,
                                              slots)
    secs += s
    figures[slots] = dict(temp=temp_bytes(compiled), cache=nbytes(cache),
                          text=compiled.as_text())
    try:
      cost = hlo_analysis.program_cost(compiled)
    except Exception:  # pylint: disable=broad-except
      # Temp memory and copies need no loop accounting: keep them.
      _log.error("decode bytes of %d slots:\n%s", slots,
                 traceback.format_exc())
      continue
    figures[slots].update(bytes=cost.bytes_accessed, flops=cost.flops,
                          unknown=cost.unknown_trip_loops)
  lo, hi = (figures[s] for s in sizes.decode_slots)
  grow = hi["cache"] - lo["cache"]
  copies = _cache_copies(config, hi["text"], sizes.decode_batch,
                         sizes.decode_slots[1])
  out = {
      "decode_bytes_growth_ratio": (
          (hi["bytes"] - lo["bytes"]) / grow if "bytes" in hi else None),
      "decode_temp_growth_ratio": (hi["temp"] - lo["temp"]) / grow,
      "decode_cache_copies": len(copies),
      "decode_cache_copy_ops": copies,
      "decode_unknown_loops": hi.get("unknown"),
  }
  for slots, f in figures.items():
    out[f"decode_{slots}"] = {
        "bytes_accessed_gb": f["bytes"] / GB if "bytes" in f else None,
        "temp_gb": f["temp"] / GB, "kv_cache_gb": f["cache"] / GB,
        "gflops": f["flops"] / 1e9 if "flops" in f else None}
  out["compile_s"] = secs
  return out


# --- training ----------------------------------------------------------------


def train_step_compiled(config, mesh, *, batch: int, seq_len: int,
                        remat: str = "none"):
  """(compiled full fine-tuning step, seconds): fsdp_collectives' program."""
  start = time.perf_counter()
  compiled = fsdp_collectives.lower_step(
      config, mesh, batch=batch, seq_len=seq_len, remat=remat).compile()
  return compiled, time.perf_counter() - start


def _one_device_mesh():
  return mesh_lib.make_mesh((1, 1, 1), jax.devices()[:1])


def train(config, sizes: Sizes) -> dict[str, Any]:
  compiled, secs = train_step_compiled(
      config, _one_device_mesh(), batch=sizes.train_batch,
      seq_len=sizes.train_seq, remat="full")
  return {"train_temp_gb": temp_bytes(compiled) / GB, "compile_s": secs}


def train_by_remat(config, sizes: Sizes) -> dict[str, Any]:
  out, secs = {}, 0.0
  for remat in REMAT_POLICIES:
    compiled, s = train_step_compiled(
        config, _one_device_mesh(), batch=sizes.train_batch,
        seq_len=sizes.train_seq, remat=remat)
    out[remat] = temp_bytes(compiled) / GB
    secs += s
  return {"train_temp_gb_by_remat": out, "compile_s": secs}


# --- scoring against a prefix -----------------------------------------------


def prefix_scoring(config, sizes: Sizes) -> dict[str, Any]:
  """Temp memory of scoring rows against a long batch-1 prefix cache."""
  model = Decoder(config)
  params = abstract_params(model)
  # Only shapes matter to the compiler: the prefix's `end` is a traced
  # value here, as in the jitted scorer (ftgen.eval.prefix).
  prefix = jax.eval_shape(
      lambda: kv_cache.init_cache(config, 1, sizes.score_prefix))
  tokens = _sds((sizes.score_rows, sizes.score_len), jnp.int32)

  def score(p, pre, toks, targets):
    hidden = model.apply({"params": p}, toks, prefix=pre, return_hidden=True)
    return head.target_logprobs(config, p, hidden, targets)

  compiled, secs = _compile(score, params, prefix, tokens, tokens)
  try:
    gflops = hlo_analysis.program_cost(compiled).flops / 1e9
  except hlo_analysis.LoopCostUnavailable as e:
    _log.error("prefix scoring FLOPs: %s", e)
    gflops = None
  return {"prefix_scoring_temp_gb": temp_bytes(compiled) / GB,
          "prefix_scoring_gflops": gflops,
          "prefix_cache_gb": nbytes(prefix) / GB, "compile_s": secs}


# --- prefill attention FLOPs -------------------------------------------------


def causal_attention_flops(config, t: int) -> float:
  """`ftgen.models.flops`' exact attention count of a causal pass of t."""
  return (flops_lib.forward_flops(config, t, logits=False)
          - 2.0 * flops_lib.matmul_params(config, logits=False) * t)


def _prefill_flops(config, t: int, with_cache: bool) -> tuple[float, int,
                                                              float]:
  model = Decoder(config)
  params = abstract_params(model)
  tokens = _sds((1, t), jnp.int32)
  if with_cache:
    cache = jax.eval_shape(lambda: kv_cache.init_cache(config, 1, t))

    def fn(p, toks, c):
      positions = jnp.arange(t, dtype=jnp.int32)[None]
      return model.apply({"params": p}, toks, positions, cache=c,
                         return_hidden=True)
    compiled, secs = _compile(fn, params, tokens, cache, donate=(2,))
  else:
    def fn(p, toks):
      return model.apply({"params": p}, toks, return_hidden=True)
    compiled, secs = _compile(fn, params, tokens)
  cost = hlo_analysis.program_cost(compiled)
  return cost.flops, cost.unknown_trip_loops, secs


def prefill_attention(config, sizes: Sizes) -> dict[str, Any]:
  """Quadratic attention FLOPs over the exact causal count (two lengths)."""
  t2 = sizes.prefill_len
  t1 = t2 // 2
  exact = (causal_attention_flops(config, t2)
           - 2 * causal_attention_flops(config, t1))
  out: dict[str, Any] = {"prefill_lengths": [t1, t2]}
  secs = 0.0
  for key, with_cache in (("prefill", False), ("cache_prefill", True)):
    f1, u1, s1 = _prefill_flops(config, t1, with_cache)
    f2, u2, s2 = _prefill_flops(config, t2, with_cache)
    secs += s1 + s2
    out[f"{key}_attention_flops_ratio"] = (f2 - 2 * f1) / exact
    out[f"{key}_gflops"] = [f1 / 1e9, f2 / 1e9]
    out[f"{key}_unknown_loops"] = u1 + u2
  out["prefill_exact_attention_gflops"] = causal_attention_flops(
      config, t2) / 1e9
  out["compile_s"] = secs
  return out


# --- LoRA FLOPs and FSDP collectives: benchmarks/lora_flops.py and
# benchmarks/fsdp_collectives.py, at `Sizes`' shapes ------------------------


def lora(model_name: str, sizes: Sizes) -> dict[str, Any]:
  start = time.perf_counter()
  result = lora_flops.lora_flop_ratio(
      model=model_name, num_layers=sizes.lora_layers,
      tokens=sizes.lora_tokens, vocab_size=sizes.lora_vocab)
  return {"lora_flop_ratio": result["ratio"], "lora": result,
          "lora_source": "lora_flops",
          "compile_s": time.perf_counter() - start}


def fsdp(model_name: str, sizes: Sizes) -> dict[str, Any]:
  start = time.perf_counter()
  result = fsdp_collectives.fsdp_collectives(
      model_name, seq_len=sizes.fsdp_seq, batch=sizes.fsdp_batch,
      dtype="bfloat16", mesh_shape=(1, 8, 1), num_layers=sizes.fsdp_layers,
      vocab_size=sizes.fsdp_vocab)
  return {
      "fsdp_max_loop_allreduce_elems": result["fsdp_max_loop_allreduce_elems"],
      "fsdp_gather_dtypes": result["fsdp_gather_dtypes"], "fsdp": result,
      "fsdp_source": "fsdp_collectives",
      "compile_s": time.perf_counter() - start}


# --- the script --------------------------------------------------------------

# Analysis name -> (function, the keys it gives). Model-config analyses take
# (config, sizes); the two helpers take (model name, sizes).
ANALYSES: dict[str, tuple[Callable[..., dict[str, Any]], tuple[str, ...]]] = {
    "decode": (decode, ("decode_bytes_growth_ratio",
                        "decode_temp_growth_ratio", "decode_cache_copies")),
    "train": (train, ("train_temp_gb",)),
    "train_by_remat": (train_by_remat, ("train_temp_gb_by_remat",)),
    "prefix_scoring": (prefix_scoring, ("prefix_scoring_temp_gb",)),
    "prefill": (prefill_attention, ("prefill_attention_flops_ratio",
                                    "cache_prefill_attention_flops_ratio")),
    "lora": (lora, ("lora_flop_ratio",)),
    "fsdp": (fsdp, ("fsdp_max_loop_allreduce_elems", "fsdp_gather_dtypes")),
}
_BY_NAME = ("lora", "fsdp")  # Analyses that build their own config.


def select(only: str) -> list[str]:
  """Analysis names giving the keys (or naming the analyses) in `only`."""
  if not only:
    return list(ANALYSES)
  wanted = [w.strip() for w in only.split(",") if w.strip()]
  chosen = []
  for name, (_, keys) in ANALYSES.items():
    if name in wanted or any(k in wanted for k in keys):
      chosen.append(name)
  known = set(ANALYSES) | {k for _, keys in ANALYSES.values() for k in keys}
  unknown = [w for w in wanted if w not in known]
  if unknown:
    raise ValueError(f"--only: unknown {unknown}; allowed: {sorted(known)}")
  return chosen


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default="",
                      help="comma-separated keys or analysis names "
                           f"({', '.join(ANALYSES)}); default: all")
  parser.add_argument("--model", default="",
                      help="a preset (default llama3.2-1b; "
                           f"{', '.join(sorted(presets.PRESETS))}) or "
                           "tiny:FAMILY (the default with --tiny)")
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"),
                      help="compute and cache dtype (params stay float32; "
                           "the FSDP step is always bfloat16)")
  parser.add_argument("--tiny", action="store_true",
                      help="every analysis at tiny sizes (2 layers, short "
                           "lengths; LoRA and FSDP on a 2-layer SmolLM2 "
                           "shape): for tests and smoke runs")
  parser.add_argument("--partial", default="",
                      help="rewrite the JSON so far to this file after each "
                           "analysis (a caller with a timeout keeps them)")
  return parser.parse_args(argv)


def _write_partial(path: str, result: dict[str, Any]) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(result, f)
  os.replace(tmp, path)


def main(argv=None) -> dict[str, Any]:
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, stream=sys.stderr)
  sizes = TINY if args.tiny else REAL
  model_name = args.model or ("tiny:llama" if args.tiny else "llama3.2-1b")
  config = model_config(model_name, args.dtype, sizes.num_layers,
                        sizes.vocab_size)
  result: dict[str, Any] = {
      "model": model_name, "dtype": args.dtype, "tiny": args.tiny,
      "sizes": dataclasses.asdict(sizes),
      "backend": jax.default_backend(), "jax": jax.__version__,
      "compile_s": {}, "errors": {}}
  start = time.perf_counter()
  for name in select(args.only):
    fn, _ = ANALYSES[name]
    _log.info("analysis %s ...", name)
    t = time.perf_counter()
    try:
      out = fn((sizes.helper_model or model_name) if name in _BY_NAME
               else config, sizes)
    except Exception as e:  # pylint: disable=broad-except
      # One failed analysis must not lose the others' figures.
      _log.error("analysis %s failed:\n%s", name, traceback.format_exc())
      result["errors"][name] = f"{type(e).__name__}: {e}"[:500]
    else:
      result["compile_s"][name] = out.pop("compile_s", None)
      result.update(out)
      _log.info("analysis %s: %.1f s", name, time.perf_counter() - t)
    if args.partial:
      result["total_s"] = time.perf_counter() - start
      _write_partial(args.partial, result)
  result["total_s"] = time.perf_counter() - start
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
