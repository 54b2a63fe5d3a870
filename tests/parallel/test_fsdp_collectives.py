"""FSDP collectives of the train step, read from its HLO, and its numerics.

The collective checks read the HLO right after SPMD partitioning
(`hlo_stats.compile_partitioned`): on CPU the backend then turns every
bfloat16 collective into a float32 one and keeps all-reduce + dynamic-slice
pairs as they are, where GPU and TPU compilers make them reduce-scatters.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ftgen.models import head
from ftgen.models import presets
from ftgen.models import tiny
from ftgen.models.decoder import Decoder
from ftgen.parallel import fsdp
from ftgen.parallel import hlo_stats
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding
from ftgen.train import state as state_lib
from ftgen.train import step as step_lib

_HLO = """\
HloModule m

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(f32[] %a, f32[] %b)
}

%inner (p: f32[64]) -> f32[64] {
  %p = f32[64]{0} parameter(0)
  ROOT %ar.inner = f32[64]{0} all-reduce(%p), to_apply=%add
}

%body (t: (s32[], f32[64])) -> (s32[], f32[64]) {
  %t = (s32[], f32[64]{0}) parameter(0)
  %x = f32[64]{0} get-tuple-element((s32[], f32[64]{0}) %t), index=1
  %c = f32[64]{0} call(f32[64]{0} %x), to_apply=%inner
  %ars = f32[64]{0} all-reduce(%c), to_apply=%add, metadata={op_name="l/dot"}
  %i = s32[] get-tuple-element((s32[], f32[64]{0}) %t), index=0
  %ds = f32[8]{0} dynamic-slice(%ars, %i), dynamic_slice_sizes={8}
  %ag = bf16[64]{0} all-gather(%y), dimensions={0}
  ROOT %r = (s32[], f32[64]{0}) tuple(s32[] %i, f32[64]{0} %c)
}

%cond (t: (s32[], f32[64])) -> pred[] {
  %t = (s32[], f32[64]{0}) parameter(0)
  ROOT %p = pred[] constant(true)
}

ENTRY %main (x: f32[64]) -> f32[64] {
  %x = f32[64]{0} parameter(0)
  %ags = (bf16[8]{0}, bf16[64]{0}) all-gather-start(%y), dimensions={0}
  %both = (f32[16]{0}, bf16[32]{0}) all-reduce(%u, %v), to_apply=%add
  %w = (s32[], f32[64]{0}) while(%init), condition=%cond, body=%body
  ROOT %out = f32[64]{0} get-tuple-element(%w), index=1
}
"""


def test_hlo_stats_reads_kinds_loops_and_slices():
  got = {(c.name, c.dtype): c for c in hlo_stats.collectives(_HLO)}
  assert set(got) == {("ar.inner", "f32"), ("ars", "f32"),
                      ("ag", "bf16"), ("ags", "bf16"), ("both", "f32"),
                      ("both", "bf16")}
  # In the loop: directly in the body, or through a computation it calls.
  assert got["ar.inner", "f32"].in_loop and got["ag", "bf16"].in_loop
  assert got["ars", "f32"].in_loop
  assert not got["ags", "bf16"].in_loop and not got["both", "f32"].in_loop
  # Only an all-reduce whose users are all dynamic-slices is sliced.
  assert got["ars", "f32"].sliced
  assert not got["ar.inner", "f32"].sliced
  assert got["ars", "f32"].op_name == "l/dot"
  # An async all-gather counts its result; a tuple per dtype.
  assert got["ags", "bf16"].elements == 64
  assert got["both", "f32"].elements == 16
  assert got["both", "bf16"].bytes == 64
  rows = hlo_stats.summarize(hlo_stats.collectives(_HLO))
  f32_loop = [r for r in rows if r["kind"] == "all-reduce" and r["in_loop"]]
  assert [(r["sliced"], r["count"]) for r in f32_loop] == [(False, 1),
                                                           (True, 1)]
  assert "all-reduce+slice" in hlo_stats.format_table(rows)


@pytest.fixture(scope="module")
def fsdp_benchmark(load_benchmark):
  return load_benchmark("fsdp_collectives")


@pytest.mark.slow
def test_fsdp_step_gathers_compute_dtype_and_reduces_head_once(
    fsdp_benchmark):
  """Llama 3.2 1B's layer shapes, 2 layers, a 16K vocabulary, fsdp=8."""
  vocab, width = 16_384, 2048
  config = presets.get_preset("llama3.2-1b", param_dtype="float32",
                              dtype="bfloat16", num_layers=2,
                              vocab_size=vocab)
  lowered = fsdp_benchmark.lower_step(
      config, mesh_lib.make_mesh((1, 8, 1)), batch=8, seq_len=256,
      loss_chunk_tokens=256)
  _, text = hlo_stats.compile_partitioned(lowered)
  got = fsdp_benchmark.collective_keys(text)
  items = hlo_stats.collectives(text)
  # Every weight-sized gather moves bfloat16 (layer weights, hidden states).
  assert got["fsdp_gather_dtypes"] == ["bf16"]
  layer_gathers = [c for c in items if c.kind == "all-gather" and c.in_loop
                   and "/layers/" in c.op_name]
  assert len(layer_gathers) == 14  # 7 kernels, forward and backward.
  # In a loop, the only reductions over 2**20 elements are the layers'
  # weight gradients, each reduced into its parameter shard (the
  # partitioner's reduce-scatter), none used whole.
  big = [c for c in items if c.kind == "all-reduce" and c.in_loop
         and c.elements > 2**20]
  assert len(big) == 5  # Gate, up, down, q, o (k and v are 2**20).
  assert all(c.sliced and "transpose(jvp(Decoder))" in c.op_name
             for c in big), big
  assert got["fsdp_max_loop_whole_allreduce_elems"] <= width
  # The loss-chunk loop moves nothing of the output matrix's size: no
  # collective in any loop outside the decoder reaches one vocabulary slice.
  head_loop = [c for c in items if c.in_loop and "Decoder" not in c.op_name]
  assert head_loop
  assert max(c.elements for c in head_loop) < vocab * width // 8
  # And nowhere is the output matrix (or its gradient) reduced whole.
  assert not [c for c in items if c.kind == "all-reduce"
              and c.elements >= vocab * width]


def _assert_close_to_scale(got, want, rtol=1e-5):
  """Max error within rtol of the largest |value| (summation order moves
  near-zero sums of float32 terms), as tests/models/test_head.py checks."""
  got, want = np.asarray(got), np.asarray(want)
  scale = float(np.max(np.abs(want))) + 1e-12
  assert float(np.max(np.abs(got - want))) <= rtol * scale


def _batch(config, rows, length, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, config.vocab_size, (rows, length + 1), np.int32)
  weights = (rng.random((rows, length)) > 0.3).astype(np.float32)
  return tokens[:, :-1], tokens[:, 1:], weights


@pytest.mark.parametrize("family,tie", [("llama", True), ("gemma2", False)])
@pytest.mark.parametrize("mesh_shape", [(1, 8, 1), (2, 2, 2)])
def test_sharded_chunked_loss_matches_one_device(family, tie, mesh_shape):
  """Vocabulary-parallel loss and gradients equal the one-device ones
  (gemma2 soft-caps its logits; several chunks; uneven last chunk)."""
  config = dataclasses.replace(tiny.tiny_config(family), tie_embeddings=tie)
  model = Decoder(config)
  params = tiny.tiny_params(config)
  hidden = model.apply({"params": params}, _batch(config, 8, 11)[0],
                       return_hidden=True)
  _, targets, weights = _batch(config, 8, 11, seed=1)

  def loss(p, h):
    return head.weighted_xent(config, p, h, targets, weights,
                              chunk_tokens=32)

  grad = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
  (l1, c1), (gp1, gh1) = jax.jit(grad)(params, hidden)
  mesh = mesh_lib.make_mesh(mesh_shape)
  param_sh, _ = sharding.param_shardings(config, mesh)
  hidden_sh = sharding.batch_sharding(hidden.shape, mesh)
  with sharding.mesh_context(mesh):
    sharded = jax.jit(grad, in_shardings=(param_sh, hidden_sh))
    (l8, c8), (gp8, gh8) = sharded(params, hidden)
  np.testing.assert_allclose(l8, l1, rtol=1e-6)
  assert float(c8) == float(c1)
  _assert_close_to_scale(gh8, gh1)
  for a, b in zip(jax.tree.leaves(gp8), jax.tree.leaves(gp1)):
    _assert_close_to_scale(a, b)


@pytest.mark.slow
def test_cast_for_compute_keeps_loss_and_gradients():
  """Casting the layer weights first is the model's own cast: the bfloat16
  loss and float32 gradients are bit-identical."""
  config = tiny.tiny_config("qwen2", dtype="bfloat16")  # qkv biases too.
  model = Decoder(config)
  params = tiny.tiny_params(config)
  inputs, targets, weights = _batch(config, 2, 9)
  mb = dict(inputs=inputs, targets=targets, weights=weights,
            mask=np.ones(inputs.shape, bool))
  cast = fsdp.cast_for_compute(params, None, "bfloat16")
  assert cast["layers"]["attn"]["q"]["kernel"].dtype == jnp.bfloat16
  assert cast["layers"]["attn"]["q"]["bias"].dtype == jnp.bfloat16
  assert cast["layers"]["attn_norm"]["scale"].dtype == jnp.float32
  assert cast["embedder"]["embedding"].dtype == jnp.float32

  def loss(p, do_cast):
    if do_cast:
      p = fsdp.cast_for_compute(p, None, config.dtype)
    hidden = model.apply({"params": p}, mb["inputs"], return_hidden=True)
    return head.weighted_xent(config, p, hidden, mb["targets"],
                              mb["weights"], chunk_tokens=8)[0]

  grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  l0, g0 = grad(params, False)
  l1, g1 = grad(params, True)
  assert float(l1) == float(l0)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    assert a.dtype == b.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_fsdp_step_matches_one_device():
  """The jitted train step (cast, vocabulary-parallel loss, SGD) at fsdp=8
  gives the one-device loss and update."""
  config = tiny.tiny_config("llama3_rope")  # Untied output matrix.
  model = Decoder(config)
  params = tiny.tiny_params(config)
  inputs, targets, weights = _batch(config, 8, 12)
  host = dict(inputs=inputs[None], targets=targets[None],
              weights=weights[None], mask=np.ones((1,) + inputs.shape, bool))
  optimizer = optax.sgd(1.0)
  schedule = optax.constant_schedule(1.0)
  results = []
  for mesh in (mesh_lib.make_mesh((1, 1, 1), devices=jax.devices()[:1]),
               mesh_lib.make_mesh((1, 8, 1))):
    param_sh, _ = sharding.param_shardings(config, mesh)
    state, state_sh = state_lib.init_state(
        jax.device_put(params, param_sh), param_sh, optimizer, 0, mesh)
    batch_sh = sharding.batch_sharding(
        host["inputs"].shape, mesh, logical_axes=(None, "batch", "length"))
    train_step = step_lib.make_train_step(
        model, optimizer, schedule, mesh=mesh, state_shardings=state_sh,
        frozen_shardings={}, batch_sharding=batch_sh, loss_chunk_tokens=16)
    with sharding.mesh_context(mesh):
      state, metrics = train_step(state, {}, jax.device_put(host, batch_sh))
    results.append((jax.device_get(state["params"]),
                    jax.device_get(metrics)))
  (p1, m1), (p8, m8) = results
  np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-6)
  np.testing.assert_allclose(m8["grad_norm"], m1["grad_norm"], rtol=1e-5)
  for a, b, p0 in zip(jax.tree.leaves(p8), jax.tree.leaves(p1),
                      jax.tree.leaves(params)):
    # The update (params moved by minus the gradient) agrees.
    _assert_close_to_scale(a - p0, b - p0)
