"""Tests for ftgen.parallel.mesh."""

import jax
import ml_collections
import pytest

from ftgen.parallel import mesh as mesh_lib


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((2, 2, 2), {"data": 2, "fsdp": 2, "tensor": 2}),
        ((1, -1, 2), {"data": 1, "fsdp": 4, "tensor": 2}),
        ((-1, 1, 1), {"data": 8, "fsdp": 1, "tensor": 1}),
        ({"fsdp": -1, "tensor": 2}, {"data": 1, "fsdp": 4, "tensor": 2}),
        ({"tensor": 8}, {"data": 1, "fsdp": 1, "tensor": 8}),
    ],
)
def test_make_mesh_shapes(shape, expected):
  mesh = mesh_lib.make_mesh(shape)
  assert mesh.axis_names == ("data", "fsdp", "tensor")
  assert dict(mesh.shape) == expected
  assert sorted(d.id for d in mesh.devices.flat) == sorted(
      d.id for d in jax.devices()
  )


def test_default_mesh_is_all_fsdp():
  assert dict(mesh_lib.make_mesh().shape) == {"data": 1, "fsdp": 8, "tensor": 1}


def test_single_device_mesh_and_config_dict():
  mesh = mesh_lib.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  assert mesh.devices.size == 1
  mesh = mesh_lib.make_mesh(
      ml_collections.ConfigDict({"data": 2, "fsdp": -1}), jax.devices()[:4]
  )
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 1}


def test_mesh_summary():
  summary = mesh_lib.mesh_summary(mesh_lib.make_mesh((2, -1, 1)))
  assert summary["shape"] == {"data": 2, "fsdp": 4, "tensor": 1}
  assert summary["num_devices"] == 8
  assert summary["platform"] == "cpu"


@pytest.mark.parametrize(
    "shape, match",
    [
        ((3, -1, 1), r"multiply to 3, which does not divide the 8 devices"),
        ((-1, -1, 1), r"at most one axis may be -1"),
        ((2, 2, 1), r"covers 4 devices but 8 are available"),
        ((2, 2, 4), r"covers 16 devices but 8 are available"),
        ((0, -1, 1), r"positive integers"),
        ((2, 4), r"expected 3"),
        ({"model": 2}, r"Unknown mesh axis name\(s\) \['model'\]"),
    ],
)
def test_make_mesh_errors(shape, match):
  with pytest.raises(ValueError, match=match):
    mesh_lib.make_mesh(shape)
