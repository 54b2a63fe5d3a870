"""Schedules, clipping and weight-decay masking."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from ftgen.train import optim


def test_warmup_then_cosine_to_end_fraction():
  s = optim.make_schedule(1.0, steps=110, warmup_steps=10, schedule="cosine",
                          end_lr_fraction=0.1)
  assert float(s(0)) == 0.0
  assert float(s(5)) == pytest.approx(0.5)
  assert float(s(10)) == pytest.approx(1.0)
  assert float(s(110)) == pytest.approx(0.1)
  values = [float(s(i)) for i in range(10, 111)]
  assert all(a >= b - 1e-7 for a, b in zip(values, values[1:]))


def test_warmup_longer_than_run_is_capped():
  s = optim.make_schedule(1.0, steps=4, warmup_steps=10, schedule="cosine")
  assert [float(s(i)) for i in range(5)] == pytest.approx(
      [0.0, 0.25, 0.5, 0.75, 1.0])


def test_linear_and_constant():
  lin = optim.make_schedule(2.0, steps=10, schedule="linear",
                            end_lr_fraction=0.0)
  assert float(lin(5)) == pytest.approx(1.0)
  const = optim.make_schedule(2.0, steps=10, warmup_steps=2,
                              schedule="constant")
  assert float(const(1)) == pytest.approx(1.0)
  assert float(const(9)) == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(schedule="step"), "schedule.*allowed: constant, linear, cosine"),
    (dict(warmup_steps=-1), "warmup_steps"),
    (dict(steps=0), "steps"),
])
def test_bad_schedule_settings_name_the_key(kwargs, match):
  args = dict(lr=1.0, steps=10, warmup_steps=0, schedule="cosine")
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    optim.make_schedule(**args)


def _cfg(**kw):
  c = ml_collections.ConfigDict(dict(
      lr=0.1, steps=10, warmup_steps=0, schedule="constant",
      end_lr_fraction=0.0, weight_decay=0.5, grad_clip=1.0, b1=0.9, b2=0.999,
      eps=1e-8))
  c.update(kw)
  return c


def test_clipping_bounds_the_first_adam_step_direction():
  opt, _ = optim.make_optimizer(_cfg(weight_decay=0.0, grad_clip=1.0))
  params = {"w": jnp.zeros((3, 3))}
  state = opt.init(params)
  # A huge gradient is clipped to global norm 1 before Adam: the clipped
  # gradient's norm is exactly 1 (check the clip stage alone).
  grads = {"w": jnp.full((3, 3), 100.0)}
  clipped, _ = optax.clip_by_global_norm(1.0).update(grads, None)
  assert float(optax.global_norm(clipped)) == pytest.approx(1.0, rel=1e-6)
  updates, _ = opt.update(grads, state, params)
  assert np.all(np.isfinite(np.asarray(updates["w"])))


def test_weight_decay_skips_vectors():
  opt, _ = optim.make_optimizer(_cfg(weight_decay=0.5, grad_clip=0.0))
  params = {"kernel": jnp.ones((2, 2)), "scale": jnp.ones((2,))}
  grads = {"kernel": jnp.zeros((2, 2)), "scale": jnp.zeros((2,))}
  updates, _ = opt.update(grads, opt.init(params), params)
  assert float(jnp.abs(updates["scale"]).max()) == 0.0
  assert float(updates["kernel"][0, 0]) == pytest.approx(-0.1 * 0.5)


def test_negative_clip_is_an_error():
  with pytest.raises(ValueError, match="grad_clip"):
    optim.make_optimizer(_cfg(grad_clip=-1.0))
