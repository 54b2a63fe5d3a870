"""FSDP in the compute dtype: cast the layer weights on their shards.

The model casts each weight to the compute dtype where it uses it
(`kernel.astype(dt)` in ftgen/models/layers.py and attention.py). With
float32 params sharded over `fsdp`, whether that cast runs before or after
the all-gather is left to XLA's sharding propagation. `cast_for_compute`
casts the scanned layers' weights first, pinned to their own sharding, so
each layer's gathered weights are in the compute dtype by construction (half
the bytes of float32 for bfloat16), and the gradient coming back is reduced
to that sharding. The float32 master weights and the optimizer never change.
The cast is the model's own (float32 -> compute dtype rounds once either
way), so the loss and gradients are unchanged.

Left to the model: the norm scales (RMSNorm computes in float32, so
rounding them first would change it; they are small and replicated) and the
embedding / output matrix, which ftgen/models/head.py casts on its shards
itself so that its gradient stays float32.

Note: the CPU backend has no bfloat16 collectives; its compiled text shows
float32 all-gathers wrapped in converts whatever the program asks for (see
`ftgen.parallel.hlo_stats.compile_partitioned`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

# The subtree of scanned blocks (ftgen/models/decoder.py), and the leaves
# in it that the model reads only after casting to the compute dtype.
LAYERS = "layers"
COMPUTE_DTYPE_LEAVES: tuple[str, ...] = ("kernel", "bias")


def _key(entry) -> str:
  return str(getattr(entry, "key", getattr(entry, "name", entry)))


def cast_for_compute(params: Any, shardings: Any, dtype: Any) -> Any:
  """`params` with the layers' kernels and biases in `dtype`, on their shards.

  Args:
    params: a decoder params tree (float32 master weights), inside jit.
    shardings: the matching tree of `NamedSharding`s (the params' own), or
      None (then only the cast is done).
    dtype: the compute dtype (a name or a dtype); a leaf already in it is
      left as it is.

  Returns:
    The params tree to apply the model to. Gradients flow back through the
    cast to the float32 params.
  """
  dtype = jnp.dtype(dtype)
  if shardings is None:
    shardings = jax.tree.map(lambda _: None, params)

  def cast(path, x, sharding):
    if (not path or _key(path[0]) != LAYERS
        or _key(path[-1]) not in COMPUTE_DTYPE_LEAVES
        or x.dtype == dtype or not jnp.issubdtype(x.dtype, jnp.floating)):
      return x
    y = x.astype(dtype)
    if sharding is not None:
      y = jax.lax.with_sharding_constraint(y, sharding)
    return y

  return jax.tree_util.tree_map_with_path(
      cast, params, shardings, is_leaf=lambda x: x is None)
