"""One jitted train step: loss on scored targets, accumulation, AdamW update.

The state is a plain dict pytree `{'step', 'params', 'opt_state', 'rng'}`
where `params` is what is trained: the full params tree, or the LoRA adapters
(`ftgen.train.lora`) with the base weights passed separately as `frozen`.
Batches arrive as [A, b, T] arrays (A micro-batches of b rows); the step sums
token losses and gradients over the micro-batches and divides once by the
number of scored tokens of the whole batch, so any A gives the update of the
full batch.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ftgen.models import head
from ftgen.models.layers import LORA
from ftgen.parallel import fsdp
from ftgen.parallel import rules
from ftgen.train import lora as lora_lib

State = dict[str, Any]


class NonFiniteError(ValueError):
  """A training step gave a non-finite loss or gradient norm."""


class NonFiniteWatch:
  """Stops training on the first non-finite loss or gradient norm.

  `add` keeps each step's two metric scalars on the device; `check` fetches
  all pending ones in one transfer, so the loop checks where it syncs anyway
  (logging, evaluation, saving) and never adds a sync per step
  (docs/design.md#reliability: a non-finite state is never saved).
  """

  def __init__(self, *, lr: float, dtype: str, param_dtype: str):
    self.lr, self.dtype, self.param_dtype = lr, dtype, param_dtype
    self._pending: list[tuple[int, jax.Array, jax.Array]] = []

  def add(self, step: int, metrics: dict[str, jax.Array]):
    self._pending.append((step, metrics["loss"], metrics["grad_norm"]))

  def check(self, last_checkpoint: Callable[[], int | None]):
    """Raises NonFiniteError naming the first bad step since the last check.

    Args:
      last_checkpoint: the newest saved step, asked only on failure (every
        saved state passed this check, so it is the last good one).
    """
    pending, self._pending = self._pending, []
    if not pending:
      return
    values = jax.device_get([(loss, gnorm) for _, loss, gnorm in pending])
    for (step, _, _), (loss, gnorm) in zip(pending, values):
      loss, gnorm = float(loss), float(gnorm)
      if math.isfinite(loss) and math.isfinite(gnorm):
        continue
      raise NonFiniteError(self._message(step, loss, gnorm,
                                         last_checkpoint()))

  def _message(self, step: int, loss: float, gnorm: float,
               last: int | None) -> str:
    advice = f"lower config key 'lr' (now {self.lr:g})"
    low = sorted({d for d in (self.dtype, self.param_dtype)
                  if d != "float32"})
    if low:  # bfloat16 overflows where float32 would not.
      advice += (" or train in float32 (config keys 'dtype', 'param_dtype';"
                 f" now {'/'.join(low)})")
    kept = (f"the last good checkpoint is step {last}" if last is not None
            else "no checkpoint was saved")
    return (f"step {step}: loss is {loss:.6g} (grad norm {gnorm:.6g}); the"
            f" learning rate is likely too high: {advice}; training stopped,"
            f" nothing exported; {kept}")


def token_losses(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-token cross-entropy [B, T] from float32 logits [B, T, V]."""
  logits = logits.astype(jnp.float32)
  lse = jax.nn.logsumexp(logits, axis=-1)
  picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return lse - picked


def make_loss_fn(model: nn.Module, lora_rank: int = 0,
                 lora_alpha: float = 0.0,
                 loss_chunk_tokens: int = head.CHUNK_TOKENS,
                 param_shardings: Any = None) -> Callable[..., Any]:
  """(trainable, frozen, micro-batch) -> (summed loss, (tokens, correct)).

  With `loss_chunk_tokens` > 0 the vocabulary projection and its gradient
  run in chunks (`ftgen.models.head.weighted_xent`); 0 materializes the
  full [B, T, V] logits and lets autodiff handle them. `param_shardings`
  (of the full params tree) keeps the cast to the compute dtype on the
  shards, so FSDP gathers weights in that dtype (ftgen/parallel/fsdp.py).
  """

  def loss_fn(trainable, frozen, mb):
    # Unmerged LoRA: the frozen weights only meet activations, so autodiff
    # forms no weight gradient for them (ftgen/train/lora.py).
    params = jax.lax.stop_gradient(frozen) if lora_rank else trainable
    params = fsdp.cast_for_compute(params, param_shardings,
                                   model.config.dtype)
    variables = {"params": params}
    if lora_rank:
      variables[LORA] = lora_lib.collection(params, trainable, lora_rank,
                                            lora_alpha)
    w = mb["weights"]
    if loss_chunk_tokens:
      hidden = model.apply(variables, mb["inputs"],
                           attention_mask=mb["mask"], return_hidden=True)
      # LoRA never adapts the output matrix: skip its gradient.
      loss, correct = head.weighted_xent(
          model.config, params, hidden, mb["targets"], w,
          chunk_tokens=loss_chunk_tokens, head_grad=not lora_rank)
      return loss, (jnp.sum(w), correct)
    logits = model.apply(variables, mb["inputs"], attention_mask=mb["mask"])
    losses = token_losses(logits, mb["targets"])
    correct = (jnp.argmax(logits, -1) == mb["targets"]).astype(jnp.float32)
    return jnp.sum(losses * w), (jnp.sum(w), jnp.sum(correct * w))

  return loss_fn


def make_train_step(model: nn.Module, optimizer: optax.GradientTransformation,
                    schedule: optax.Schedule, *, mesh: jax.sharding.Mesh,
                    state_shardings: Any, frozen_shardings: Any,
                    batch_sharding: jax.sharding.NamedSharding,
                    lora_rank: int = 0, lora_alpha: float = 0.0,
                    loss_chunk_tokens: int = head.CHUNK_TOKENS
                    ) -> Callable[[State, Any, dict[str, jax.Array]],
                                  tuple[State, dict[str, jax.Array]]]:
  """Returns the jitted `step(state, frozen, batch) -> (state, metrics)`.

  The state is donated (updated in place); shardings are explicit on both
  sides, so the compiled step never moves the state between devices.
  """
  loss_fn = make_loss_fn(
      model, lora_rank, lora_alpha, loss_chunk_tokens,
      param_shardings=(frozen_shardings if lora_rank
                       else state_shardings["params"]))
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def step(state, frozen, batch):
    with nn.logical_axis_rules(rules.LOGICAL_AXIS_RULES):
      num_micro = batch["inputs"].shape[0]

      def micro(carry, mb):
        g_acc, l_acc, n_acc, c_acc = carry
        (loss, (n, c)), g = grad_fn(state["params"], frozen, mb)
        g_acc = jax.tree.map(jnp.add, g_acc, g)
        return (g_acc, l_acc + loss, n_acc + n, c_acc + c), None

      zeros = jax.tree.map(jnp.zeros_like, state["params"])
      init = (zeros, jnp.float32(0), jnp.float32(0), jnp.float32(0))
      if num_micro == 1:
        carry, _ = micro(init, jax.tree.map(lambda x: x[0], batch))
      else:
        carry, _ = jax.lax.scan(micro, init, batch)
      g_sum, loss_sum, num_tokens, num_correct = carry
      denom = jnp.maximum(num_tokens, 1.0)
      grads = jax.tree.map(lambda g: g / denom, g_sum)
      updates, opt_state = optimizer.update(grads, state["opt_state"],
                                            state["params"])
      params = optax.apply_updates(state["params"], updates)
      new_state = dict(step=state["step"] + 1, params=params,
                       opt_state=opt_state,
                       rng=jax.random.fold_in(state["rng"], state["step"]))
      metrics = dict(loss=loss_sum / denom, token_accuracy=num_correct / denom,
                     num_tokens=num_tokens, grad_norm=optax.global_norm(grads),
                     lr=schedule(state["step"]))
      return new_state, metrics

  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.jit(
      step,
      in_shardings=(state_shardings, frozen_shardings, batch_sharding),
      out_shardings=(state_shardings, replicated),
      donate_argnums=(0,),
  )
