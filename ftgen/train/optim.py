"""Optimizer: AdamW with warmup + decay schedules and global-norm clipping.

Gradient accumulation is not an optax wrapper here: the train step sums the
gradients of its micro-batches inside one jit (`ftgen.train.step`), so an
accumulated step computes exactly the update of one large batch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

SCHEDULES = ("constant", "linear", "cosine")


def make_schedule(lr: float, steps: int, warmup_steps: int = 0,
                  schedule: str = "cosine",
                  end_lr_fraction: float = 0.0) -> optax.Schedule:
  """Linear warmup from 0 to `lr`, then a decay to `lr * end_lr_fraction`.

  Args:
    lr: peak learning rate.
    steps: total number of optimizer steps (warmup included).
    warmup_steps: steps of linear warmup (capped at `steps`).
    schedule: decay after warmup, one of `SCHEDULES` (`constant` ignores
      `end_lr_fraction`).
    end_lr_fraction: final learning rate as a fraction of `lr`.

  Returns:
    An optax schedule (step -> learning rate).
  """
  if schedule not in SCHEDULES:
    raise ValueError(
        f"unknown learning-rate schedule {schedule!r} (config key"
        f" 'schedule'); allowed: {', '.join(SCHEDULES)}")
  if steps <= 0:
    raise ValueError(f"config key 'steps' must be positive, got {steps}")
  if warmup_steps < 0:
    raise ValueError(
        f"config key 'warmup_steps' must be >= 0, got {warmup_steps}")
  # A short run (e.g. --config.steps=2 on a tiny config) warms up throughout.
  warmup_steps = min(warmup_steps, steps)
  decay_steps = max(steps - warmup_steps, 1)
  end = lr * end_lr_fraction
  if schedule == "constant":
    decay = optax.constant_schedule(lr)
  elif schedule == "linear":
    decay = optax.linear_schedule(lr, end, decay_steps)
  else:
    decay = optax.cosine_decay_schedule(lr, decay_steps,
                                        alpha=end_lr_fraction)
  if warmup_steps == 0:
    return decay
  warmup = optax.linear_schedule(0.0, lr, warmup_steps)
  return optax.join_schedules([warmup, decay], [warmup_steps])


def decay_mask(params: Any) -> Any:
  """Weight decay on matrices only: norms scales and biases are left alone."""
  return jax.tree.map(lambda x: jnp.ndim(x) >= 2, params)


def make_optimizer(cfg: Any) -> tuple[optax.GradientTransformation,
                                      optax.Schedule]:
  """The optimizer of a `configs/finetune.py` config.

  Reads `cfg.lr`, `cfg.steps`, `cfg.warmup_steps`, `cfg.schedule`,
  `cfg.end_lr_fraction`, `cfg.weight_decay`, `cfg.grad_clip` (0 disables it),
  `cfg.b1`, `cfg.b2`, `cfg.eps`.

  Returns:
    (optimizer, schedule); the schedule is for logging the learning rate.
  """
  schedule = make_schedule(cfg.lr, cfg.steps, cfg.warmup_steps, cfg.schedule,
                           cfg.end_lr_fraction)
  parts = []
  if cfg.grad_clip < 0:
    raise ValueError(
        f"config key 'grad_clip' must be >= 0 (0 disables clipping), got"
        f" {cfg.grad_clip}")
  if cfg.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(cfg.grad_clip))
  parts.append(optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                           weight_decay=cfg.weight_decay, mask=decay_mask))
  return optax.chain(*parts), schedule
