"""A diverged fine-tune stops with the step named; nothing non-finite is
saved or exported (docs/design.md#reliability)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.train import checkpoint as ckpt_lib
from ftgen.train import loop
from ftgen.train import step as step_lib

import tiny_finetune  # tests/train/tiny_finetune.py


def _tiny(**overrides):
  # Export on, so that "nothing exported" is a real check.
  return tiny_finetune.config(**{"export_hf": True, **overrides})


@pytest.mark.slow  # ~10-20 s: dataset, build and compile of a tiny run.
def test_lr_1e6_stops_at_the_step_keeps_the_last_good_checkpoint(tmp_path):
  # Warmup 5: step 1 updates with lr 0, step 2 with 2e5 (still finite
  # params), step 3's gradient is NaN. Logging every 5 steps, the check at
  # the step-4 save finds it and names step 3.
  config = _tiny(lr=1e6, steps=30, log_every=5, checkpoint_every=2,
                 export_hf=True)
  workdir = tmp_path / "run"
  with pytest.raises(step_lib.NonFiniteError) as e:
    loop.finetune(config, workdir)
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith("step 3: loss is ")
  assert "grad norm nan" in message
  assert "lower config key 'lr' (now 1e+06)" in message
  assert message.endswith("the last good checkpoint is step 2")
  assert isinstance(e.value, ValueError)  # Launchers print it in one line.
  assert not (workdir / "export").exists()
  assert not (workdir / "train_summary.json").exists()
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                if p.name.isdigit()) == [2]


def test_watch_fetches_once_and_names_the_first_bad_step():
  watch = step_lib.NonFiniteWatch(lr=0.5, dtype="bfloat16",
                                  param_dtype="float32")
  for step, (loss, gnorm) in enumerate(
      [(1.0, 2.0), (1.0, math.inf), (math.nan, math.nan)], start=1):
    watch.add(step, {"loss": jnp.float32(loss), "grad_norm": jnp.float32(gnorm),
                     "lr": jnp.float32(0.5)})
  asked = []
  with pytest.raises(step_lib.NonFiniteError,
                     match=r"^step 2: loss is 1 \(grad norm inf\)") as e:
    watch.check(lambda: asked.append(1) or None)
  assert "train in float32" in str(e.value) and "now bfloat16" in str(e.value)
  assert str(e.value).endswith("no checkpoint was saved")
  assert asked == [1]
  # Checked steps are not checked again; finite ones never ask for the
  # checkpoint.
  watch.check(lambda: asked.append(2))
  watch.add(4, {"loss": jnp.float32(1.0), "grad_norm": jnp.float32(1.0)})
  watch.check(lambda: asked.append(3))
  assert asked == [1]


def test_checkpointer_refuses_a_non_finite_state(tmp_path):
  ckpt = ckpt_lib.Checkpointer(tmp_path, async_save=False)
  state = {"params": {"w": jnp.array([1.0, np.nan], jnp.bfloat16)},
           "step": jnp.int32(1)}
  with pytest.raises(ckpt_lib.NonFiniteStateError,
                     match="refusing to save the train state of step 1:"
                     " non-finite values in params/w"):
    ckpt.save(1, state, {})
  ckpt.close()
  assert ckpt.all_steps() == []
