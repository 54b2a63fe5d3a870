"""Device meshes with the axes ('data', 'fsdp', 'tensor').

`make_mesh` is the one place that turns a requested shape into a
`jax.sharding.Mesh`. The axes are ordered by increasing communication: `data`
(pure data parallelism: gradients all-reduced once per step), `fsdp` (params
sharded, gathered per layer) and `tensor` (activations exchanged inside every
layer), so that `mesh_utils.create_device_mesh` puts the chattiest axis on the
fastest links of a TPU slice or an NVLink island.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
from typing import Any

import jax
from jax.experimental import mesh_utils
import numpy as np

MESH_AXES: tuple[str, ...] = ("data", "fsdp", "tensor")

MeshShape = Mapping[str, int] | Sequence[int]


def resolve_mesh_shape(
    shape: MeshShape, num_devices: int
) -> tuple[int, int, int]:
  """Returns (data, fsdp, tensor) with any single -1 filled in.

  Args:
    shape: a mapping from axis name to size (missing axes are 1), or a
      sequence of three sizes in the order of `MESH_AXES`. At most one size
      may be -1; it takes whatever the other sizes leave of `num_devices`.
    num_devices: the number of devices the mesh must cover exactly.

  Raises:
    ValueError: on unknown axis names, a wrong number of sizes, sizes that are
      not positive (other than one -1), more than one -1, or sizes whose
      product does not match `num_devices`.
  """
  if not isinstance(shape, Mapping) and hasattr(shape, "items"):
    shape = dict(shape.items())  # e.g. an ml_collections ConfigDict.
  if isinstance(shape, Mapping):
    unknown = sorted(set(shape) - set(MESH_AXES))
    if unknown:
      raise ValueError(
          f"Unknown mesh axis name(s) {unknown}; allowed: {list(MESH_AXES)}."
      )
    sizes = [int(shape.get(name, 1)) for name in MESH_AXES]
  else:
    sizes = [int(s) for s in shape]
    if len(sizes) != len(MESH_AXES):
      raise ValueError(
          f"Mesh shape {tuple(shape)} has {len(sizes)} sizes; expected "
          f"{len(MESH_AXES)} for the axes {MESH_AXES}."
      )
  named = dict(zip(MESH_AXES, sizes))
  autofill = [name for name, size in named.items() if size == -1]
  if len(autofill) > 1:
    raise ValueError(
        f"Mesh shape {named} has -1 on {autofill}; at most one axis may be "
        "-1 (autofilled from the device count)."
    )
  bad = {name: size for name, size in named.items() if size < 1 and size != -1}
  if bad:
    raise ValueError(
        f"Mesh sizes must be positive integers or a single -1; got {bad} in "
        f"{named}."
    )
  if num_devices < 1:
    raise ValueError(f"No devices to build a mesh on (got {num_devices}).")
  known = math.prod(size for size in sizes if size != -1)
  if autofill:
    if num_devices % known:
      raise ValueError(
          f"Mesh shape {named}: the fixed sizes multiply to {known}, which "
          f"does not divide the {num_devices} devices, so "
          f"'{autofill[0]}=-1' cannot be filled."
      )
    sizes = [num_devices // known if size == -1 else size for size in sizes]
  elif known != num_devices:
    raise ValueError(
        f"Mesh shape {named} covers {known} devices but {num_devices} are "
        "available; use -1 on one axis to absorb the rest, or pass "
        f"devices=jax.devices()[:{known}]."
    )
  return tuple(sizes)  # type: ignore[return-value]


def make_mesh(
    shape: MeshShape = (1, -1, 1),
    devices: Sequence[Any] | None = None,
) -> jax.sharding.Mesh:
  """Builds a `Mesh` with axes ('data', 'fsdp', 'tensor').

  Args:
    shape: sizes per axis as a mapping (e.g. `{'fsdp': -1, 'tensor': 2}`) or
      a 3-sequence `(data, fsdp, tensor)`; one -1 autofills. The default puts
      every device on `fsdp`.
    devices: the devices to use, default `jax.devices()` (all processes).

  Returns:
    A mesh over exactly those devices.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = resolve_mesh_shape(shape, len(devices))
  try:
    # Topology-aware placement on TPU/GPU; also fine for CPU device lists.
    device_array = mesh_utils.create_device_mesh(
        sizes, devices=devices, allow_split_physical_axes=True
    )
  except (ValueError, NotImplementedError, AssertionError):
    # Some device subsets (e.g. a slice of a TPU host's chips) have no known
    # topology; plain row-major order is correct, just not tuned.
    device_array = np.asarray(devices, dtype=object).reshape(sizes)
  return jax.sharding.Mesh(device_array, MESH_AXES)


def data_mesh(devices: Sequence[Any] | None = None) -> jax.sharding.Mesh:
  """All `devices` (default: every device of every process) on `data`.

  The mesh of batch-parallel inference (sampling, scoring): params
  replicated, each device a share of the rows.
  """
  return make_mesh((-1, 1, 1), devices)


def mesh_summary(mesh: jax.sharding.Mesh) -> dict[str, Any]:
  """A JSON-friendly description of a mesh (for logs and benchmarks)."""
  devices = mesh.devices.flat
  first = next(iter(devices))
  return {
      "shape": {name: int(size) for name, size in mesh.shape.items()},
      "num_devices": int(mesh.devices.size),
      "platform": first.platform,
      "device_kind": getattr(first, "device_kind", first.platform),
  }
