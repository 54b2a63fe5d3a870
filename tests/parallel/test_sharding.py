"""Tests for ftgen.parallel.sharding on a small stand-alone module.

The decoder-level tests (same logits on 1 and 8 devices) live in
test_sharded_forward.py; these check the mechanics on a module whose shapes
are chosen to hit the divisibility fallbacks.
"""

import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding

P = jax.sharding.PartitionSpec


class _Toy(nn.Module):
  """An embedding + one attention-shaped projection with 9 heads (SmolLM2)."""

  vocab: int = 48
  width: int = 16
  heads: int = 9

  @nn.compact
  def __call__(self, tokens):
    embed = self.param(
        "embedding",
        nn.with_logical_partitioning(
            nn.initializers.normal(1.0), ("vocab", "embed")
        ),
        (self.vocab, self.width),
    )
    q = self.param(
        "q",
        nn.with_logical_partitioning(
            nn.initializers.normal(0.1),
            ("layers", "embed", "q_heads", "head_dim")
        ),
        (2, self.width, self.heads, 4),
    )
    scale = self.param(
        "scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
        (self.width,),
    )
    x = embed[tokens] * scale
    x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
    y = jnp.einsum("BTD,LDNH->BTNH", x, q)
    y = nn.with_logical_constraint(y, ("batch", "length", "act_heads", None))
    return jnp.einsum("BTNH->BT", y)[..., None] * embed.sum(-1)


@pytest.fixture(scope="module")
def mesh222():
  return mesh_lib.make_mesh((2, 2, 2))


def test_spec_for_shape_falls_back_per_dimension(mesh222):
  spec, fallbacks = sharding.spec_for_shape(
      P("layers", "embed", "q_heads", "head_dim"), (2, 576, 9, 64), mesh222
  )
  # embed (576) stays on fsdp; 9 heads cannot split over tensor=2.
  assert spec == P(None, "fsdp", None, None)
  assert [(f.dim, f.logical_name, f.kept_axes) for f in fallbacks] == [
      (2, "q_heads", ())
  ]
  spec, fallbacks = sharding.spec_for_shape(
      P("vocab", "embed"), (49152, 576), mesh222
  )
  assert spec == P("tensor", "fsdp") and not fallbacks


def test_spec_for_shape_keeps_dividing_prefix_of_axes(mesh222):
  # 'batch' maps to ('data', 'fsdp') = 4 devices; a batch of 2 keeps 'data'.
  spec, fallbacks = sharding.spec_for_shape(P("batch", "length"), (2, 7),
                                            mesh222)
  assert spec == P("data", None)
  assert fallbacks[0].kept_axes == ("data",)
  spec, _ = sharding.spec_for_shape(P("batch", "length"), (8, 7), mesh222)
  assert spec == P(("data", "fsdp"), None)
  spec, _ = sharding.spec_for_shape(P("batch", "length"), (3, 7), mesh222)
  assert spec == P(None, None)


def test_unknown_logical_name_is_an_error(mesh222):
  with pytest.raises(ValueError,
                     match=r"w: logical axis name\(s\) \['heads'\]"):
    sharding.spec_for_shape(P("embed", "heads"), (4, 4), mesh222, path="w")
  with pytest.raises(ValueError, match="has 2 entries"):
    sharding.spec_for_shape(P("embed", "mlp"), (4,), mesh222, path="w")


def test_logical_to_sharding_tree(mesh222):
  specs = {"a": P("vocab", "embed"), "b": P("norm"), "c": None}
  out = sharding.logical_to_sharding(specs, mesh222)
  assert out["a"].spec == P("tensor", "fsdp")
  assert out["b"].spec == P(None) and out["c"].spec == P()
  shapes = {"a": np.zeros((9, 8)), "b": np.zeros(3), "c": np.zeros(())}
  out = sharding.logical_to_sharding(specs, mesh222, shapes=shapes)
  assert out["a"].spec == P(None, "fsdp")


def test_init_sharded_and_place_params(mesh222, caplog):
  model = _Toy()
  with caplog.at_level(logging.WARNING, logger=sharding.__name__):
    params = sharding.init_sharded(model, mesh222, jax.random.key(0))
  assert "q: dim 2 ('q_heads', size 9)" in caplog.text
  assert params["embedding"].sharding.spec == P("tensor", "fsdp")
  assert params["q"].sharding.spec == P(None, "fsdp", None, None)
  assert params["scale"].sharding.is_fully_replicated
  # Each device holds a quarter of the embedding.
  shard_shapes = {s.data.shape for s in params["embedding"].addressable_shards}
  assert shard_shapes == {(24, 8)}

  reference = nn.unbox(model.init(jax.random.key(0),
                                  jnp.zeros((1, 1), jnp.int32)))
  host = jax.tree.map(np.asarray, reference["params"])
  for name in host:
    # Same random values; jit may fuse the init's scaling (1 ulp).
    np.testing.assert_allclose(np.asarray(params[name]), host[name], rtol=1e-6)
  placed = sharding.place_params(host, model, mesh222)
  for name in host:
    assert placed[name].sharding == params[name].sharding
    np.testing.assert_array_equal(np.asarray(placed[name]), host[name])


def test_place_params_errors(mesh222):
  model = _Toy()
  host = {
      "embedding": np.zeros((48, 16), np.float32),
      "q": np.zeros((2, 16, 9, 4), np.float32),
      "scale": np.zeros((16,), np.float32),
  }
  with pytest.raises(ValueError, match=r"missing 1: \['scale'\]"):
    sharding.place_params({k: host[k] for k in ("embedding", "q")}, model,
                          mesh222)
  with pytest.raises(ValueError, match=r"unexpected 1: \['bias'\]"):
    sharding.place_params({**host, "bias": np.zeros(3)}, model, mesh222)
  with pytest.raises(ValueError, match=(r"q: got \(2, 16, 8, 4\), model wants"
                                       r" \(2, 16, 9, 4\)")):
    sharding.place_params({**host, "q": np.zeros((2, 16, 8, 4))}, model,
                          mesh222)


def test_place_params_casts_to_param_dtype(mesh222):
  class _Bf16(nn.Module):
    @nn.compact
    def __call__(self, tokens):
      return self.param(
          "w",
          nn.with_logical_partitioning(nn.initializers.ones, ("embed", "mlp")),
          (4, 6), jnp.bfloat16,
      )

  placed = sharding.place_params(
      {"w": np.full((4, 6), 1.5, np.float32)}, _Bf16(), mesh222
  )
  assert placed["w"].dtype == jnp.bfloat16
  assert placed["w"].sharding.spec == P("fsdp", "tensor")
  assert float(placed["w"][0, 0]) == 1.5


def test_sharded_apply_matches_single_device(mesh222):
  model = _Toy()
  tokens = np.arange(4 * 5).reshape(4, 5) % 48
  one = mesh_lib.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  outs = []
  for mesh in (one, mesh222):
    params = sharding.init_sharded(model, mesh, jax.random.key(1))
    batch = sharding.shard_batch(tokens, mesh)
    apply = jax.jit(lambda p, t: model.apply({"params": p}, t))
    with sharding.mesh_context(mesh):
      outs.append(np.asarray(apply(params, batch)))
  assert batch.sharding.spec == P(("data", "fsdp"), None)
  np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-6)


def test_under_mesh_activates_rules(mesh222):
  def read_rules():
    return nn.get_logical_axis_rules(), jax.sharding.get_abstract_mesh().empty

  rules, empty = sharding.under_mesh(read_rules, mesh222)()
  assert tuple(rules) == tuple(sharding.LOGICAL_AXIS_RULES) and not empty
  assert not nn.get_logical_axis_rules()


def test_param_bytes_per_device(mesh222):
  params = sharding.init_sharded(_Toy(), mesh222, jax.random.key(0))
  per_device = sharding.param_bytes_per_device(params)
  assert len(per_device) == 8
  total = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
  # Sharded: each device holds less than the whole tree.
  assert max(per_device.values()) < total
  assert not sharding.is_fully_replicated(params)
