"""benchmarks/compiled.py and benchmarks/hlo_analysis.py, on tiny programs.

(With ftgen/parallel/hlo_stats.py, the HLO reader both use.)
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.models import flops as flops_lib
from ftgen.models import tiny
from ftgen.parallel import hlo_stats


@pytest.fixture(scope="module")
def compiled_benchmark(load_benchmark):
  return load_benchmark("compiled")


@pytest.fixture(scope="module")
def hlo(load_benchmark):
  return load_benchmark("hlo_analysis")


def _scan_matmuls(x, w):
  return jax.lax.scan(lambda c, wi: (c @ wi, None), x, w)[0]


def _nested(x, w):  # 3 outer trips around the L-trip scan.
  return jax.lax.scan(lambda c, _: (_scan_matmuls(c, w), None), x, None,
                      length=3)[0]


@pytest.mark.parametrize("fn,outer", [(_scan_matmuls, 1), (_nested, 3)])
def test_program_cost_counts_every_trip_of_a_loop(hlo, fn, outer):
  layers, m, d = 8, 16, 32
  compiled = jax.jit(fn).lower(
      jax.ShapeDtypeStruct((m, d), jnp.float32),
      jax.ShapeDtypeStruct((layers, d, d), jnp.float32)).compile()
  cost = hlo.program_cost(compiled)
  exact = 2 * m * d * d * layers * outer
  # Only the loop counters' adds come on top of the matmuls.
  assert exact <= cost.flops <= exact + 4 * layers * outer
  # XLA's own figure sees one trip of each loop: what the correction fixes.
  assert cost.xla_flops < exact / layers * 1.01
  # One entry per loop instruction (the inner one is in the module once).
  assert sorted(n for _, n in cost.loops) == sorted(
      [layers] + ([outer] if outer > 1 else []))
  assert cost.unknown_trip_loops == 0


def test_program_cost_counts_the_decoder_layers(hlo, compiled_benchmark):
  """Each layer adds the same FLOPs: 2 -> 4 -> 6 layers grow linearly."""
  t = 32
  figures = []
  for layers in (2, 4, 6):
    config = compiled_benchmark.model_config("tiny:llama", "float32",
                                             num_layers=layers)
    model = compiled_benchmark.Decoder(config)
    params = compiled_benchmark.abstract_params(model)
    compiled = jax.jit(
        lambda p, x, model=model: model.apply({"params": p}, x,
                                              return_hidden=True)
    ).lower(params, jax.ShapeDtypeStruct((1, t), jnp.int32)).compile()
    figures.append(hlo.program_cost(compiled).flops)
  per_layer = figures[1] - figures[0]
  assert figures[2] - figures[1] == pytest.approx(per_layer, rel=1e-9)
  matmuls = 2 * flops_lib.matmul_params(config, logits=False) * t
  assert per_layer > matmuls / config.num_layers


def test_cache_copies_finds_a_transpose_not_an_in_place_write(hlo):
  b, s, k, h = 2, 64, 3, 8
  cache = jax.ShapeDtypeStruct((b, s, k, h), jnp.float32)
  new = jax.ShapeDtypeStruct((b, 1, k, h), jnp.float32)

  def in_place(c, x):
    return jax.lax.dynamic_update_slice(c, x, (0, 5, 0, 0))

  def transposed(c, x):
    return jnp.swapaxes(in_place(c, x), 1, 2) * 2.0

  text = jax.jit(in_place, donate_argnums=0).lower(cache, new).compile(
      ).as_text()
  assert hlo.cache_copies(text, b * s * k * h) == []
  text = jax.jit(transposed).lower(cache, new).compile().as_text()
  found = hlo.cache_copies(text, b * s * k * h)
  assert any("transpose" in f for f in found), found


def test_decode_cache_copy_ops_names_each_move(compiled_benchmark):
  config = tiny.tiny_config("llama", param_dtype="float32", dtype="float32")
  ops = compiled_benchmark.decode_cache_copy_ops(config, batch=2, slots=64)
  layer = f"{2 * config.num_kv_heads * 64 * config.head_dim}"
  assert isinstance(ops, list)
  # Each entry names an opcode and a whole-cache shape (any order of dims).
  for op in ops:
    dims = op.rsplit("[", 1)[1].rstrip("]").split(",")
    elems = int(np.prod([int(d) for d in dims]))
    assert elems in (int(layer), config.num_layers * int(layer)), op


def test_collectives_sees_an_all_reduce_inside_a_loop():
  mesh = jax.make_mesh((8,), ("x",))
  sharded = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec(None, "x", None))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  m, d = 4, 64
  compiled = jax.jit(_scan_matmuls, in_shardings=(replicated, sharded),
                     out_shardings=replicated).lower(
      jax.ShapeDtypeStruct((m, d), jnp.float32),
      jax.ShapeDtypeStruct((3, d, d), jnp.float32)).compile()
  items = hlo_stats.collectives(compiled.as_text())
  in_loop = [c for c in items if c.in_loop and c.kind == "all-reduce"]
  assert in_loop and max(c.elements for c in in_loop) == m * d
  assert {c.dtype for c in in_loop} == {"f32"}


def test_only_selects_analyses_and_rejects_unknown_keys(compiled_benchmark):
  assert compiled_benchmark.select("decode_cache_copies,train_temp_gb") == [
      "decode", "train"]
  assert compiled_benchmark.select("prefill") == ["prefill"]
  with pytest.raises(ValueError, match="unknown"):
    compiled_benchmark.select("decode_speed")


def _numbers(value):
  if isinstance(value, dict):
    for v in value.values():
      yield from _numbers(v)
  elif isinstance(value, (int, float)) and not isinstance(value, bool):
    yield value


# Every analysis but the remat sweep (the train step four times: slow).
@pytest.mark.parametrize("analysis", [
    "decode", "train", "prefix_scoring", "prefill", "lora",
    pytest.param("fsdp", marks=pytest.mark.slow)])  # 8 devices: ~12 s.
def test_each_analysis_at_tiny_sizes(compiled_benchmark, capsys, analysis):
  result = compiled_benchmark.main(["--tiny", f"--only={analysis}"])
  last = capsys.readouterr().out.strip().splitlines()[-1]
  assert json.loads(last) == json.loads(json.dumps(result))
  assert result["errors"] == {}
  _, keys = compiled_benchmark.ANALYSES[analysis]
  for key in keys:
    value = result[key]
    assert value is not None, key
    for x in _numbers({key: value}):
      assert math.isfinite(x) and x >= 0, (key, x)
  # The ratios and sizes are positive; the counts and the decode temp growth
  # may reach 0 (the goal).
  for key in ("decode_bytes_growth_ratio", "train_temp_gb", "prefix_scoring_temp_gb",
              "prefill_attention_flops_ratio",
              "cache_prefill_attention_flops_ratio", "lora_flop_ratio"):
    if key in keys:
      assert result[key] > 0, key
  if analysis == "decode":
    # A decode step reads the whole cache at least once: its bytes grow at
    # least as fast as the cache (a loop-blind count would see ~1/L of it).
    assert result["decode_bytes_growth_ratio"] > 0.9
    assert isinstance(result["decode_cache_copies"], int)
  if analysis == "prefill":
    # Between an exact causal kernel (1) and dense masked attention (~2):
    # a miscounted loop would be off by the layer count.
    for key in ("prefill_attention_flops_ratio",
                "cache_prefill_attention_flops_ratio"):
      assert 0.9 < result[key] < 3.0, (key, result[key])
  if analysis == "fsdp":
    assert all(isinstance(d, str) for d in result["fsdp_gather_dtypes"])
    # The tiny layers' gathers are under the 2**20 elements that
    # `fsdp_gather_dtypes` counts (benchmarks/fsdp_collectives.py); the
    # summary rows show them: the layer loop gathers bfloat16 only.
    assert {r["dtype"] for r in result["fsdp"]["collectives"]
            if r["kind"] == "all-gather" and r["in_loop"]} == {"bf16"}


@pytest.mark.slow
def test_remat_sweep_at_tiny_sizes(compiled_benchmark):
  result = compiled_benchmark.main(["--tiny", "--only=train_by_remat"])
  temps = result["train_temp_gb_by_remat"]
  assert set(temps) == {"none", "full", "save_dots", "save_dots_no_batch"}
  # Full rematerialization keeps the least of the forward pass.
  assert temps["full"] <= min(temps.values()) * (1 + 1e-9)
  assert np.all(np.isfinite(list(temps.values())))
