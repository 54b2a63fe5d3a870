"""Verified checkpoints: a digest saved with each step, checked on restore
(docs/design.md#reliability)."""

import logging
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen import configs
from ftgen.train import checkpoint as ckpt_lib
from ftgen.train import loop
from ftgen.train import state as state_lib


def test_digest_sees_every_byte_and_dtype_and_flags_non_finite_leaves():
  tree = {"params": {"w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3),
                     "b": jnp.ones((3,), jnp.bfloat16)},
          "step": jnp.int32(7), "rng": jnp.array([1, 2], jnp.uint32)}
  digest, bad = state_lib.checkpoint_digest(tree)
  assert len(digest) == 64 and bad == []
  assert state_lib.checkpoint_digest(dict(tree))[0] == digest
  changed = dict(tree, step=jnp.int32(8))
  assert state_lib.checkpoint_digest(changed)[0] != digest
  # One bit of one bfloat16 value.
  b = np.asarray(tree["params"]["b"]).copy()
  b.view(np.uint16)[1] ^= 1
  flipped = dict(tree, params=dict(tree["params"], b=jnp.asarray(b)))
  assert state_lib.checkpoint_digest(flipped)[0] != digest
  # Same values, another dtype.
  cast = dict(tree, params=dict(tree["params"],
                                w=tree["params"]["w"].astype(jnp.bfloat16)))
  assert state_lib.checkpoint_digest(cast)[0] != digest
  nan = dict(tree, params=dict(tree["params"],
                               b=jnp.array([1, np.inf, 0], jnp.bfloat16)))
  assert state_lib.checkpoint_digest(nan)[1] == ["params/b"]


def _state(step, dtype=jnp.float32):
  w = np.random.default_rng(step).normal(size=(64, 256))
  return {"params": {"w": jnp.asarray(w, dtype)}, "step": jnp.int32(step)}


def _abstract(state):
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      state)


def _save_steps(workdir, steps):
  ckpt = ckpt_lib.Checkpointer(workdir, async_save=False)
  for step in steps:
    ckpt.save(step, _state(step), {"step": step})
  ckpt.close()


def test_changed_bytes_move_the_step_aside_and_restore_the_previous(
    tmp_path, caplog):
  _save_steps(tmp_path, [1, 2])
  _flip_64_bytes_of_largest_file(tmp_path / "checkpoints" / "2")
  ckpt = ckpt_lib.Checkpointer(tmp_path, async_save=False)
  with caplog.at_level(logging.WARNING, logger="ftgen.train.checkpoint"):
    state, meta = ckpt.restore_latest(_abstract(_state(0)))
  ckpt.close()
  assert meta["step"] == 1 and int(state["step"]) == 1
  np.testing.assert_array_equal(state["params"]["w"],
                                _state(1)["params"]["w"])
  # Random float32 values are stored uncompressed: orbax reads the changed
  # bytes without complaint, only the digest sees them.
  assert "checkpoint at step 2 fails its digest check" in caplog.text
  assert [p.name.split("-")[0] for p in
          (tmp_path / "checkpoints_broken").iterdir()] == ["2"]


def test_restore_into_another_dtype_is_not_taken_for_corruption(
    tmp_path, caplog):
  _save_steps(tmp_path, [1])
  ckpt = ckpt_lib.Checkpointer(tmp_path, async_save=False)
  with caplog.at_level(logging.WARNING, logger="ftgen.train.checkpoint"):
    state, _ = ckpt.restore_latest(_abstract(_state(0, jnp.bfloat16)))
  ckpt.close()
  assert state["params"]["w"].dtype == jnp.bfloat16
  assert "restored into other dtypes" in caplog.text
  assert not (tmp_path / "checkpoints_broken").exists()


def _config(steps):
  config = configs.load("finetune:reversals,tiny")
  config.progress = False
  config.eval.every = -1
  config.num_devices = 1
  config.export_hf = False
  config.steps = steps
  return config


def _flip_64_bytes_of_largest_file(step_dir: pathlib.Path) -> pathlib.Path:
  files = [p for p in step_dir.rglob("*") if p.is_file()]
  largest = max(files, key=lambda p: p.stat().st_size)
  data = bytearray(largest.read_bytes())
  mid = len(data) // 2
  data[mid:mid + 64] = bytes(x ^ 0xFF for x in data[mid:mid + 64])
  size = largest.stat().st_size
  largest.write_bytes(bytes(data))
  assert largest.stat().st_size == size
  return largest


@pytest.mark.slow  # ~15 s: two tiny runs of 20 steps.
def test_same_size_corruption_falls_back_and_resumes_exactly(
    tmp_path, caplog, capsys):
  reference = loop.finetune(_config(20), tmp_path / "reference")
  workdir = tmp_path / "run"
  shutil.copytree(tmp_path / "reference", workdir)
  (workdir / "train_summary.json").unlink()
  # Without the digest orbax restores these bytes silently (issue 15).
  _flip_64_bytes_of_largest_file(workdir / "checkpoints" / "20")
  capsys.readouterr()
  with caplog.at_level(logging.WARNING, logger="ftgen.train.checkpoint"):
    summary = loop.finetune(_config(20), workdir)
  warnings = [r.getMessage() for r in caplog.records
              if r.levelno == logging.WARNING]
  assert any("checkpoint at step 20 fails its digest check" in w
             and "falling back to the previous step" in w
             for w in warnings), warnings
  assert "resumed from step 10" in capsys.readouterr().out
  moved = list((workdir / "checkpoints_broken").iterdir())
  assert [p.name.split("-")[0] for p in moved] == ["20"]
  # Steps 11-20 rerun from step 10: the same params as the uninterrupted run.
  assert summary["steps"] == 20
  assert summary["params_digest"] == reference["params_digest"]
  assert (workdir / "checkpoints" / "20").is_dir()
