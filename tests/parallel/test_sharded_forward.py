"""The decoder on 8 fake CPU devices gives the logits of 1 device."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from ftgen.models.config import ModelConfig
from ftgen.models.decoder import Decoder
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import rules as rules_lib
from ftgen.parallel import sharding
from ftgen.models import presets
from ftgen.models import tiny

P = jax.sharding.PartitionSpec

# SmolLM2-135M's shape (docs/design.md#models): 9 query / 3 kv heads do not
# split in two.
SMOLLM2_SHAPE = ModelConfig(
    family="llama", vocab_size=49152, embed_dim=576, num_layers=30,
    num_heads=9, num_kv_heads=3, head_dim=64, mlp_dim=1536,
    rope_theta=100_000.0, tie_embeddings=True,
)


def _forward(config, host_params, tokens, mesh):
  params = sharding.place_params(host_params, config, mesh)
  batch = sharding.shard_batch(tokens, mesh)
  apply = jax.jit(lambda p, t: Decoder(config).apply({"params": p}, t))
  with sharding.mesh_context(mesh):
    logits = apply(params, batch)
  return params, logits


@pytest.mark.parametrize("name", sorted(tiny.TINY_CONFIGS))
def test_rules_cover_every_param_name(name):
  known = {logical for logical, _ in rules_lib.LOGICAL_AXIS_RULES}
  specs = sharding.logical_param_specs(tiny.tiny_config(name))
  leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
  assert leaves
  for spec in leaves:
    assert len(spec) > 0, "every param must carry logical names"
    for logical in spec:
      assert logical in known, f"{logical!r} of {spec} is not in the rules"


def test_rules_table_has_unique_names():
  names = [logical for logical, _ in rules_lib.LOGICAL_AXIS_RULES]
  assert len(names) == len(set(names))
  mesh_axes = set(mesh_lib.MESH_AXES)
  for _, target in rules_lib.LOGICAL_AXIS_RULES:
    targets = () if target is None else (
        (target,) if isinstance(target, str) else target)
    assert set(targets) <= mesh_axes


_REFERENCES = {}


def _reference(name):
  """(config, host params, tokens, one-device logits), computed once per name.
  """
  if name not in _REFERENCES:
    config = tiny.tiny_config(name)
    one = mesh_lib.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    # Random params from a jitted init on one device (the eager init is slow).
    init = jax.tree.map(
        np.asarray, sharding.init_sharded(config, one, jax.random.key(3)))
    # Norm scales away from their init value, so sharded norms are checked.
    host = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.1 * np.cos(np.arange(x.size)).reshape(x.shape)
        if path[-1].key == "scale" else x, init)
    tokens = np.random.default_rng(0).integers(0, config.vocab_size, (8, 12))
    _, logits = _forward(config, host, tokens, one)
    _REFERENCES[name] = (config, host, tokens, np.asarray(logits), init)
  return _REFERENCES[name]


@pytest.mark.parametrize("shape", [(2, 2, 2), (1, 4, 2)])
@pytest.mark.parametrize("name", ["llama", "gemma3"])
def test_sharded_logits_match_one_device(name, shape):
  config, host, tokens, reference, _ = _reference(name)
  assert np.abs(reference).max() > 0.1  # not a degenerate comparison
  mesh = mesh_lib.make_mesh(shape)
  params, logits = _forward(config, host, tokens, mesh)
  # Params and logits are really spread over the mesh.
  assert params["embedder"]["embedding"].sharding.spec == P("tensor", "fsdp")
  q = params["layers"]["attn"]["q"]["kernel"]
  assert q.sharding.spec == P(None, "fsdp", "tensor", None)
  assert {s.data.shape for s in q.addressable_shards} == {
      (config.num_layers, config.embed_dim // shape[1],
       config.num_heads // 2, config.head_dim)
  }
  assert params["layers"]["mlp"]["up"]["kernel"].sharding.spec == P(
      None, "fsdp", "tensor")
  assert not logits.sharding.is_fully_replicated
  logits = np.asarray(logits)
  print(f"{name} {shape}: max |diff| {np.abs(logits - reference).max():.2e}, "
        f"max |logit| {np.abs(reference).max():.2f}")
  np.testing.assert_allclose(logits, reference, rtol=1e-5, atol=1e-5)


def test_init_sharded_matches_one_device_init_and_place_params():
  config, _, _, _, init_one = _reference("llama")
  mesh = mesh_lib.make_mesh((2, 2, 2))
  params = sharding.init_sharded(config, mesh, jax.random.key(3))
  placed = sharding.place_params(init_one, config, mesh)
  for a, b, h in zip(jax.tree.leaves(params), jax.tree.leaves(placed),
                     jax.tree.leaves(init_one)):
    assert a.sharding == b.sharding
    np.testing.assert_array_equal(np.asarray(b), h)
    # Born sharded, the same random values as on one device.
    np.testing.assert_allclose(np.asarray(a), h, rtol=1e-6, atol=1e-7)
  assert params["layers"]["mlp"]["down"]["kernel"].sharding.spec == P(
      None, "tensor", "fsdp")


def test_smollm2_heads_fall_back_to_replication():
  mesh = mesh_lib.make_mesh((1, 4, 2))
  shardings, fallbacks = sharding.param_shardings(SMOLLM2_SHAPE, mesh)
  replicated = sorted((f.path, f.logical_name, f.size) for f in fallbacks)
  assert replicated == [
      ("layers/attn/k/kernel", "kv_heads", 3),
      ("layers/attn/o/kernel", "q_heads", 9),
      ("layers/attn/q/kernel", "q_heads", 9),
      ("layers/attn/v/kernel", "kv_heads", 3),
  ]
  attn = shardings["layers"]["attn"]
  # The width stays on fsdp; only the head axis is replicated.
  assert attn["q"]["kernel"].spec == P(None, "fsdp", None, None)
  assert attn["o"]["kernel"].spec == P(None, None, None, "fsdp")
  assert shardings["embedder"]["embedding"].spec == P("tensor", "fsdp")
  assert shardings["layers"]["mlp"]["down"]["kernel"].spec == P(
      None, "tensor", "fsdp")


def test_presets_use_known_names_and_shard_on_fsdp():
  known = {logical for logical, _ in rules_lib.LOGICAL_AXIS_RULES}
  mesh = mesh_lib.make_mesh((1, 8, 1))
  for name in sorted(presets.PRESETS):
    config = presets.get_preset(name)
    specs = sharding.logical_param_specs(config)
    for spec in jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P)):
      assert set(spec) <= known, (name, spec)
    shardings, fallbacks = sharding.param_shardings(config, mesh)
    # Every real-size width divides 8, so pure FSDP shards every matrix.
    assert not fallbacks, (name, [str(f) for f in fallbacks])
    embedding = shardings["embedder"]["embedding"]
    assert embedding.spec[1] == "fsdp", name
    assert not embedding.is_fully_replicated


@pytest.mark.parametrize("name", ["llama", "gemma3"])
def test_rules_cover_every_activation_name(name, monkeypatch):
  # flax silently leaves an unknown activation name unsharded; record them.
  seen = []
  original = nn.with_logical_constraint

  def record(x, axes, *args, **kwargs):
    seen.append(tuple(axes))
    return original(x, axes, *args, **kwargs)

  monkeypatch.setattr(nn, "with_logical_constraint", record)
  config = tiny.tiny_config(name)
  params = sharding.boxed_abstract_params(config)
  tokens = jax.ShapeDtypeStruct((2, 5), np.int32)
  jax.eval_shape(
      lambda p, t: Decoder(config).apply({"params": nn.unbox(p)}, t),
      params, tokens)
  known = {logical for logical, _ in rules_lib.LOGICAL_AXIS_RULES}
  assert ("batch", "length", "act_embed") in seen
  for axes in seen:
    assert set(axes) - {None} <= known, axes
