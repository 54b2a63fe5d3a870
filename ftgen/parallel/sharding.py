"""Logical-axis sharding of params and batches over a
('data','fsdp','tensor') mesh.

The flow for a model of any size (never materialized on one device):

  1. `jax.eval_shape(model.init, ...)` gives the boxed abstract params with
     their logical axis names (from `nn.with_logical_partitioning`).
  2. The one rules table (`rules.LOGICAL_AXIS_RULES`) maps logical names to
     mesh axes; a dimension that the mesh axes do not divide evenly (e.g. the
     9 query heads of SmolLM2 on tensor=2) is replicated instead, and logged.
  3. `init_sharded` jits `init` with those `out_shardings`, so every param is
     born on its shards; `place_params` puts a host (numpy) tree onto the
     mesh shard by shard, e.g. weights read from safetensors or GGUF.

Everything returned is a plain pytree of `jax.Array`s (no boxes), ready for
`model.apply({'params': params}, ...)` under `mesh_context(mesh)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import contextlib
import dataclasses
import functools
import logging
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ftgen.models import decoder
from ftgen.parallel import rules as rules_lib

PartitionSpec = jax.sharding.PartitionSpec
NamedSharding = jax.sharding.NamedSharding
Rules = Sequence[tuple[str, Any]]

LOGICAL_AXIS_RULES = rules_lib.LOGICAL_AXIS_RULES
# The logical spec of a batch of token ids (and of masks, positions, ...).
BATCH_AXES: tuple[str, ...] = ("batch", "length")

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Fallback:
  """A dimension that stays replicated because the mesh does not divide it."""

  path: str
  dim: int
  size: int
  logical_name: str
  mesh_axes: tuple[str, ...]
  kept_axes: tuple[str, ...]

  def __str__(self) -> str:
    kept = f"kept {self.kept_axes}" if self.kept_axes else "replicated"
    return (
        f"{self.path}: dim {self.dim} ('{self.logical_name}', size "
        f"{self.size}) not divisible by mesh axes {self.mesh_axes}; {kept}"
    )


# --------------------------------------------------------------------------
# Contexts.


@contextlib.contextmanager
def mesh_context(
    mesh: jax.sharding.Mesh, rules: Rules = LOGICAL_AXIS_RULES
) -> Iterator[jax.sharding.Mesh]:
  """Activates `mesh` and the logical-axis `rules` (for activation constraints).

  `nn.with_logical_constraint` in the decoder is a no-op without both; trace
  (call) jitted functions inside this context.
  """
  with jax.set_mesh(mesh), nn.logical_axis_rules(tuple(rules)):
    yield mesh


def under_mesh(
    fn: Callable[..., Any],
    mesh: jax.sharding.Mesh,
    rules: Rules = LOGICAL_AXIS_RULES,
) -> Callable[..., Any]:
  """Wraps `fn` so that every call runs inside `mesh_context(mesh, rules)`."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with mesh_context(mesh, rules):
      return fn(*args, **kwargs)

  return wrapped


# --------------------------------------------------------------------------
# Logical specs -> shardings.


def _is_spec(x: Any) -> bool:
  return x is None or isinstance(x, PartitionSpec)


def _path_str(path: Sequence[Any]) -> str:
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def _mesh_axes_tuple(entry: Any) -> tuple[str, ...]:
  if entry is None:
    return ()
  if isinstance(entry, str):
    return (entry,)
  return tuple(entry)


def spec_for_shape(
    logical_spec: PartitionSpec | None,
    shape: Sequence[int] | None,
    mesh: jax.sharding.Mesh,
    rules: Rules = LOGICAL_AXIS_RULES,
    path: str = "",
) -> tuple[PartitionSpec, list[Fallback]]:
  """Maps one logical spec to a mesh `PartitionSpec` that fits `shape`.

  Args:
    logical_spec: logical axis names per dimension (None entries allowed), or
      None for a replicated value.
    shape: the array shape; None skips the divisibility check.
    mesh: the target mesh.
    rules: the logical-to-mesh rules table.
    path: a name for error messages and fallback notes.

  Returns:
    The mesh spec and the list of dimensions that were (partly) replicated
    because the mesh axes did not divide them. For a dimension mapped to
    several mesh axes, the longest prefix of them that divides it is kept.

  Raises:
    ValueError: when a logical name has no rule (a typo would otherwise
      silently replicate the array), or the spec and shape ranks differ.
  """
  if logical_spec is None:
    return PartitionSpec(), []
  names = tuple(logical_spec)
  known = {name for name, _ in rules}
  unknown = [n for n in names if isinstance(n, str) and n not in known]
  if unknown:
    raise ValueError(
        f"{path or 'array'}: logical axis name(s) {unknown} have no rule in "
        f"the rules table; known names: {sorted(known)}."
    )
  if shape is not None and len(shape) != len(names):
    raise ValueError(
        f"{path or 'array'}: logical spec {names} has {len(names)} entries "
        f"but the shape {tuple(shape)} has {len(shape)} dimensions."
    )
  mesh_spec = nn.logical_to_mesh_axes(names, tuple(rules))
  entries = list(mesh_spec) + [None] * (len(names) - len(mesh_spec))
  fallbacks = []
  if shape is not None:
    for dim, (entry, size) in enumerate(zip(entries, shape)):
      axes = _mesh_axes_tuple(entry)
      if not axes:
        continue
      kept = axes
      while kept and size % math.prod(mesh.shape[a] for a in kept):
        kept = kept[:-1]
      if kept != axes:
        fallbacks.append(
            Fallback(path, dim, int(size), str(names[dim]), axes, kept)
        )
        entries[dim] = (
            None if not kept else (kept[0] if len(kept) == 1 else kept)
        )
  return PartitionSpec(*entries), fallbacks


def _log_fallbacks(fallbacks: Sequence[Fallback], what: str) -> None:
  if fallbacks:
    _log.warning(
        "%d %s dimension(s) replicated (mesh does not divide them):\n  %s",
        len(fallbacks),
        what,
        "\n  ".join(str(f) for f in fallbacks),
    )


def logical_to_sharding(
    logical_spec_tree: Any,
    mesh: jax.sharding.Mesh,
    rules: Rules = LOGICAL_AXIS_RULES,
    shapes: Any = None,
) -> Any:
  """Maps a pytree of logical `PartitionSpec`s to `NamedSharding`s.

  Args:
    logical_spec_tree: pytree whose leaves are `PartitionSpec`s of logical
      names (as from `nn.get_partition_spec`) or None.
    mesh: the target mesh.
    rules: the rules table.
    shapes: optional pytree of the same structure with arrays or
      `ShapeDtypeStruct`s (anything with `.shape`); when given, dimensions the
      mesh does not divide are replicated (and logged) instead of failing
      later in `device_put`/`jit`.

  Returns:
    A pytree of `NamedSharding` with the structure of `logical_spec_tree`.
  """
  specs_with_path = jax.tree_util.tree_flatten_with_path(
      logical_spec_tree, is_leaf=_is_spec
  )
  leaves, treedef = specs_with_path
  if shapes is None:
    shape_leaves = [None] * len(leaves)
  else:
    shape_leaves = treedef.flatten_up_to(shapes)
    shape_leaves = [
        None if s is None else tuple(s.shape) for s in shape_leaves
    ]
  out, fallbacks = [], []
  for (path, spec), shape in zip(leaves, shape_leaves):
    mesh_spec, fb = spec_for_shape(spec, shape, mesh, rules, _path_str(path))
    fallbacks.extend(fb)
    out.append(NamedSharding(mesh, mesh_spec))
  _log_fallbacks(fallbacks, "array")
  return jax.tree_util.tree_unflatten(treedef, out)


# --------------------------------------------------------------------------
# Abstract params, sharded init and placement.


def _as_module(model_or_config: Any) -> nn.Module:
  if isinstance(model_or_config, nn.Module):
    return model_or_config
  return decoder.Decoder(model_or_config)


def _init_variables(module: nn.Module, rng: jax.Array) -> Any:
  tokens = jnp.zeros((1, 1), jnp.int32)
  return module.init(rng, tokens)


def boxed_abstract_params(model_or_config: Any) -> Any:
  """Boxed abstract params (`nn.LogicallyPartitioned` leaves), no memory."""
  module = _as_module(model_or_config)
  variables = jax.eval_shape(
      functools.partial(_init_variables, module), jax.random.key(0)
  )
  return variables["params"]


def logical_param_specs(model_or_config: Any) -> Any:
  """The params tree with a logical `PartitionSpec` per leaf."""
  return nn.get_partition_spec(boxed_abstract_params(model_or_config))


def _shard_abstract(
    boxed: Any, mesh: jax.sharding.Mesh, rules: Rules
) -> tuple[Any, Any, list[Fallback]]:
  """(unboxed shapes, shardings, fallbacks) of a boxed abstract params tree."""
  specs = nn.get_partition_spec(boxed)
  shapes = nn.unbox(boxed)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(specs,
                                                         is_leaf=_is_spec)
  shape_leaves = treedef.flatten_up_to(shapes)
  out, fallbacks = [], []
  for (path, spec), shape in zip(leaves, shape_leaves):
    mesh_spec, fb = spec_for_shape(
        spec, shape.shape, mesh, rules, _path_str(path)
    )
    fallbacks.extend(fb)
    out.append(NamedSharding(mesh, mesh_spec))
  return shapes, jax.tree_util.tree_unflatten(treedef, out), fallbacks


def param_shardings(
    model_or_config: Any,
    mesh: jax.sharding.Mesh,
    rules: Rules = LOGICAL_AXIS_RULES,
) -> tuple[Any, list[Fallback]]:
  """`NamedSharding` per param, and the dimensions replicated for divisibility.
  """
  _, shardings, fallbacks = _shard_abstract(
      boxed_abstract_params(model_or_config), mesh, rules
  )
  return shardings, fallbacks


def abstract_params(
    model_or_config: Any,
    mesh: jax.sharding.Mesh,
    rules: Rules = LOGICAL_AXIS_RULES,
) -> Any:
  """Params as `jax.ShapeDtypeStruct`s carrying their mesh sharding.

  Args:
    model_or_config: a linen module (e.g. `Decoder(config)`) or a
      `ModelConfig` (turned into `Decoder(config)`).
    mesh: the target mesh.
    rules: the rules table.

  Returns:
    A plain pytree (no boxes) of `ShapeDtypeStruct(shape, dtype, sharding)`.
    Dimensions the mesh does not divide are replicated and logged (see
    `param_shardings` for the list).
  """
  shapes, shardings, fallbacks = _shard_abstract(
      boxed_abstract_params(model_or_config), mesh, rules
  )
  _log_fallbacks(fallbacks, "param")
  return jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      shapes,
      shardings,
  )


def init_sharded(
    model_or_config: Any,
    mesh: jax.sharding.Mesh,
    rng: jax.Array,
    rules: Rules = LOGICAL_AXIS_RULES,
) -> Any:
  """Random-initializes params directly on their shards (jit + out_shardings).

  The full params tree never exists on a single device, so this works for
  models larger than one device's memory.
  """
  module = _as_module(model_or_config)
  abstract = abstract_params(module, mesh, rules)
  shardings = jax.tree.map(lambda a: a.sharding, abstract)

  def init(key):
    return nn.unbox(_init_variables(module, key)["params"])

  with mesh_context(mesh, rules):
    return jax.jit(init, out_shardings=shardings)(rng)


def _describe_structure_mismatch(host_paths, want_paths) -> str:
  missing = sorted(set(want_paths) - set(host_paths))
  extra = sorted(set(host_paths) - set(want_paths))
  lines = []
  if missing:
    lines.append(f"missing {len(missing)}: {missing[:10]}")
  if extra:
    lines.append(f"unexpected {len(extra)}: {extra[:10]}")
  return "; ".join(lines) or "same keys but a different tree structure"


def place_params(
    host_params: Any,
    model_or_config: Any,
    mesh: jax.sharding.Mesh,
    rules: Rules = LOGICAL_AXIS_RULES,
) -> Any:
  """Puts a host (numpy) params tree onto the mesh, shard by shard.

  Each device receives only its slice (`jax.make_array_from_callback`), so a
  memory-mapped host tree (safetensors) is read piecewise, and on multi-host
  runs each process reads only the shards of its own devices. Values are cast
  to the dtype of the abstract params (the config's param dtype).

  Args:
    host_params: nested dicts of numpy (or any array-like) leaves with the
      structure and shapes of the model's params.
    model_or_config: a linen module or a `ModelConfig`.
    mesh: the target mesh.
    rules: the rules table.

  Returns:
    The params as sharded `jax.Array`s.

  Raises:
    ValueError: naming the missing/unexpected keys or the params whose shape
      differs from the model's.
  """
  abstract = abstract_params(model_or_config, mesh, rules)
  want = jax.tree_util.tree_flatten_with_path(abstract)[0]
  got_leaves, got_def = jax.tree_util.tree_flatten_with_path(host_params)
  want_paths = [_path_str(p) for p, _ in want]
  got_paths = [_path_str(p) for p, _ in got_leaves]
  if got_def != jax.tree.structure(abstract):
    raise ValueError(
        "Host params do not match the model's params tree: "
        + _describe_structure_mismatch(got_paths, want_paths)
    )
  bad_shapes = [
      f"{path}: got {tuple(np.shape(x))}, model wants {a.shape}"
      for path, (_, x), (_, a) in zip(want_paths, got_leaves, want)
      if tuple(np.shape(x)) != tuple(a.shape)
  ]
  if bad_shapes:
    raise ValueError(
        f"{len(bad_shapes)} host param(s) have the wrong shape:\n  "
        + "\n  ".join(bad_shapes[:20])
    )

  def put(x, a):
    def shard(index):
      return np.asarray(x[index], dtype=a.dtype)

    return jax.make_array_from_callback(a.shape, a.sharding, shard)

  return jax.tree.map(put, host_params, abstract)


# --------------------------------------------------------------------------
# Batches.


def batch_sharding(
    shape: Sequence[int],
    mesh: jax.sharding.Mesh,
    rules: Rules = LOGICAL_AXIS_RULES,
    logical_axes: Sequence[str | None] = BATCH_AXES,
) -> NamedSharding:
  """The sharding of a batch array: leading axes `('batch', 'length')`.

  Axes beyond `logical_axes` are replicated; a batch size the data axes do
  not divide keeps the longest dividing prefix of them (logged).
  """
  names = tuple(logical_axes)[: len(shape)]
  names += (None,) * (len(shape) - len(names))
  spec, fallbacks = spec_for_shape(
      PartitionSpec(*names), shape, mesh, rules, path="batch"
  )
  _log_fallbacks(fallbacks, "batch")
  return NamedSharding(mesh, spec)


def shard_batch(
    batch: Any,
    mesh: jax.sharding.Mesh,
    rules: Rules = LOGICAL_AXIS_RULES,
    logical_axes: Sequence[str | None] = BATCH_AXES,
) -> Any:
  """Puts a pytree of host batch arrays (global batch, same on every process)
  onto the mesh with `batch_sharding`."""

  def put(x):
    x = np.asarray(x)
    sharding = batch_sharding(x.shape, mesh, rules, logical_axes)
    return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])

  return jax.tree.map(put, batch)


def batch_shards(mesh: jax.sharding.Mesh,
                 rules: Rules = LOGICAL_AXIS_RULES) -> int:
  """How many ways `mesh` splits a batch (the size of its batch axes)."""
  axes = _mesh_axes_tuple(dict(rules).get("batch"))
  return math.prod(mesh.shape[a] for a in axes if a in mesh.shape)


def padded_rows(n: int, mesh: jax.sharding.Mesh | None) -> int:
  """`n` rounded up to a multiple of `batch_shards(mesh)` (n without one).

  Batch-parallel callers add filler rows up to this and drop their results.
  """
  if mesh is None:
    return n
  k = batch_shards(mesh)
  return -(-n // k) * k


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Every array of `tree` (host or device) whole on every device of `mesh`.

  Under `jax.distributed`, host arrays must be the same on every process.
  """
  sharding = NamedSharding(mesh, PartitionSpec())
  return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def is_fully_replicated(tree: Any) -> bool:
  """True when every array in `tree` is replicated on all its devices."""
  return all(
      x.sharding.is_fully_replicated for x in jax.tree.leaves(tree)
  )


def param_bytes_per_device(params: Any) -> dict[str, int]:
  """Bytes of params held by each device (to check that sharding saves memory).
  """
  per_device: dict[str, int] = {}
  for x in jax.tree.leaves(params):
    for shard in x.addressable_shards:
      key = str(shard.device)
      per_device[key] = per_device.get(key, 0) + shard.data.nbytes
  return per_device


__all__ = [
    "BATCH_AXES",
    "Fallback",
    "LOGICAL_AXIS_RULES",
    "abstract_params",
    "batch_sharding",
    "batch_shards",
    "boxed_abstract_params",
    "init_sharded",
    "is_fully_replicated",
    "logical_param_specs",
    "logical_to_sharding",
    "mesh_context",
    "param_bytes_per_device",
    "padded_rows",
    "param_shardings",
    "place_params",
    "replicate",
    "shard_batch",
    "spec_for_shape",
    "under_mesh",
]
