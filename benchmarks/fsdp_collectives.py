"""Collectives and temporary memory of the FSDP train step, compile-only.

Compiles `ftgen.train.step.make_train_step` (the step the loop runs: full
fine-tuning, chunked loss, AdamW) on abstract sharded inputs (nothing is
allocated or run) and reads the partitioned HLO with
`ftgen.parallel.hlo_stats`: per collective kind and dtype, the count,
elements and bytes per device, and whether it sits in a while loop (layer
scan, loss-chunk scan; the text gives one trip, not the trip count). It also
reports XLA's temporary memory per device.

  python benchmarks/fsdp_collectives.py                       # reduced llama
  python benchmarks/fsdp_collectives.py --model=llama3.2-1b --seq_len=2048 \
      --batch=8 --dtype=bfloat16                               # the 1B shape

Needs `--xla_force_host_platform_device_count=8` (set here when jax is not
yet imported) for the default `--mesh=1,8,1`. The last line printed is one
JSON object; `fsdp_collectives(...)` returns the same dict.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import types

if "jax" not in sys.modules:  # Fake CPU devices must be set before import.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# pylint: disable=g-import-not-at-top,wrong-import-position
from ftgen.models import head
from ftgen.models import presets
from ftgen.models.decoder import Decoder
from ftgen.parallel import hlo_stats
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding
from ftgen.train import optim
from ftgen.train import state as state_lib
from ftgen.train import step as step_lib
# pylint: enable=g-import-not-at-top,wrong-import-position


def lower_step(config, mesh, *, batch: int, seq_len: int,
               loss_chunk_tokens: int = head.CHUNK_TOKENS,
               remat: str = "none"):
  """The lowered full fine-tuning step on abstract sharded inputs."""
  model = Decoder(config, remat=remat)
  params = sharding.abstract_params(config, mesh)
  param_sh = jax.tree.map(lambda x: x.sharding, params)
  opt_cfg = types.SimpleNamespace(**dict(
      lr=1e-4, steps=1000, warmup_steps=10, schedule="cosine",
      end_lr_fraction=0.1, weight_decay=0.0, grad_clip=1.0, b1=0.9, b2=0.999,
      eps=1e-8))
  optimizer, schedule = optim.make_optimizer(opt_cfg)
  abstract = dict(
      step=jax.ShapeDtypeStruct((), jnp.int32), params=params,
      opt_state=jax.eval_shape(optimizer.init, params),
      rng=jax.ShapeDtypeStruct((2,), jnp.uint32))
  state_sh = state_lib.state_shardings(param_sh, abstract, mesh)
  state = state_lib.abstract_like(abstract, state_sh)
  shape = (1, batch, seq_len)
  batch_sh = sharding.batch_sharding(shape, mesh,
                                     logical_axes=(None, "batch", "length"))
  dtypes = dict(inputs=jnp.int32, targets=jnp.int32, weights=jnp.float32,
                mask=jnp.bool_)
  batch_abs = {k: jax.ShapeDtypeStruct(shape, d, sharding=batch_sh)
               for k, d in dtypes.items()}
  train_step = step_lib.make_train_step(
      model, optimizer, schedule, mesh=mesh, state_shardings=state_sh,
      frozen_shardings={}, batch_sharding=batch_sh,
      loss_chunk_tokens=loss_chunk_tokens)
  with sharding.mesh_context(mesh):
    return train_step.lower(state, {}, batch_abs)


_FLOAT_DTYPES = ("bf16", "f16", "f32", "f64")


def collective_keys(hlo_text: str) -> dict:
  """The FSDP figures of one HLO text (see `fsdp_collectives`)."""
  items = hlo_stats.collectives(hlo_text)
  loop_reduce = [c for c in items if c.kind == "all-reduce" and c.in_loop]
  return {
      "fsdp_max_loop_allreduce_elems": max(
          (c.elements for c in loop_reduce), default=0),
      "fsdp_max_loop_whole_allreduce_elems": max(
          (c.elements for c in loop_reduce if not c.sliced), default=0),
      "fsdp_gather_dtypes": sorted({c.dtype for c in items
                                    if c.kind == "all-gather"
                                    and c.dtype in _FLOAT_DTYPES
                                    and c.elements >= 2**20}),
      "fsdp_loop_allreduces_over_1m": [
          dict(elements=c.elements, dtype=c.dtype, sliced=c.sliced,
               op_name=c.op_name)
          for c in loop_reduce if c.elements > 2**20],
      "collectives": hlo_stats.summarize(items),
  }


def fsdp_collectives(model: str = "llama3.2-1b", *, seq_len: int = 2048,
                     batch: int = 8, dtype: str = "bfloat16",
                     mesh_shape=(1, 8, 1), num_layers: int = 0,
                     vocab_size: int = 0,
                     loss_chunk_tokens: int = head.CHUNK_TOKENS) -> dict:
  """Compile-only collective figures of the sharded train step.

  The figures are read from the HLO right after SPMD partitioning
  (`hlo_stats.compile_partitioned`): what every backend compiles its
  collectives from. `final` holds the same keys read from the backend's
  compiled text (on CPU every bfloat16 collective is run in float32, and an
  all-reduce + dynamic-slice stays one; GPU and TPU make it a
  reduce-scatter).

  Returns:
    A dict with
    `fsdp_max_loop_allreduce_elems`: elements of the largest all-reduce
      inside any while loop, counting those written as all-reduce +
      dynamic-slice (the partitioner's reduce-scatter);
    `fsdp_max_loop_whole_allreduce_elems`: the same over all-reduces whose
      result is used whole (not the reduce-scatter form);
    `fsdp_gather_dtypes`: sorted dtypes of the floating-point all-gathers
      of at least 2**20 elements: weights and hidden states (the loss also
      gathers each row's float32 loss weights and int32 target ids, a few
      KB, before its chunk loop);
    `fsdp_loop_allreduces_over_1m`: each in-loop all-reduce of more than
      2**20 elements, with its dtype, form and JAX op name;
    `collectives`: `hlo_stats.summarize` rows;
    `temp_bytes`: XLA's temporary memory per device; `final`; the shape.
  """
  reduced = {k: v for k, v in (("num_layers", num_layers),
                                ("vocab_size", vocab_size)) if v}
  config = presets.get_preset(model, param_dtype="float32", dtype=dtype,
                              **reduced)
  devices = None
  if math.prod(mesh_shape) > len(jax.devices()):
    # E.g. one GPU: the fake CPU devices (set above, or by the caller's
    # XLA_FLAGS, as benchmarks/compiled.py does).
    devices = jax.devices("cpu")[:math.prod(mesh_shape)]
  mesh = mesh_lib.make_mesh(tuple(mesh_shape), devices)
  lowered = lower_step(config, mesh, batch=batch, seq_len=seq_len,
                       loss_chunk_tokens=loss_chunk_tokens)
  compiled, partitioned = hlo_stats.compile_partitioned(lowered)
  result = collective_keys(partitioned)
  memory = compiled.memory_analysis()
  result.update(
      temp_bytes=None if memory is None else int(memory.temp_size_in_bytes),
      final=collective_keys(compiled.as_text()),
      platform=mesh.devices.flat[0].platform, model=model, seq_len=seq_len,
      batch=batch, dtype=dtype, num_layers=config.num_layers,
      vocab_size=config.vocab_size, loss_chunk_tokens=loss_chunk_tokens,
      mesh=mesh_lib.mesh_summary(mesh)["shape"])
  return result


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="llama3.2-1b")
  parser.add_argument("--num_layers", type=int, default=2,
                      help="0: the preset's")
  parser.add_argument("--vocab_size", type=int, default=16_384,
                      help="0: the preset's")
  parser.add_argument("--seq_len", type=int, default=256)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--dtype", default="bfloat16",
                      choices=("float32", "bfloat16"))
  parser.add_argument("--mesh", default="1,8,1")
  parser.add_argument("--loss_chunk_tokens", type=int,
                      default=head.CHUNK_TOKENS)
  args = parser.parse_args(argv)
  result = fsdp_collectives(
      args.model, seq_len=args.seq_len, batch=args.batch, dtype=args.dtype,
      mesh_shape=tuple(int(s) for s in args.mesh.split(",")),
      num_layers=args.num_layers, vocab_size=args.vocab_size,
      loss_chunk_tokens=args.loss_chunk_tokens)
  print("after SPMD partitioning:\n" +
        hlo_stats.format_table(result["collectives"]), file=sys.stderr)
  print(f"compiled for {result['platform']}:\n" +
        hlo_stats.format_table(result["final"]["collectives"]),
        file=sys.stderr)
  print(json.dumps(result))
  return result


if __name__ == "__main__":
  main()
