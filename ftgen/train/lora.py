"""LoRA adapters as their own pytree, applied unmerged; merged for export.

For a targeted per-layer kernel W [L, ...] the adapter is A [L, in, r] and
B [L, r, out] where `in` and `out` flatten W's input and output axes. The
model computes

  y = x · W + (alpha / r) · ((x · A) · B)

(`collection` re-keys the adapters into the decoder's LORA variable
collection; `ftgen.models.layers._Dense` adds the low-rank term), so the
frozen W only meets activations: training forms no [in, out] gradient for
it, only the activations' gradient through it (4 instead of 6 FLOPs per
weight and token). `merge` gives the same model as a plain params tree,

  W' = W + (alpha / r) · reshape(A @ B, W.shape),

for export. B starts at zero, so an untrained adapter leaves the model
unchanged.

Only kernels inside the scanned layers can be adapted (the output matrix is
read directly by `ftgen.models.head`). A kernel's input axes: the first
non-layer axis when its size is the model width D (q, k, v, gate, up:
[D, ...]); otherwise every axis but the last (o: [N, H, D], down: [F, D]).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Params = Any
_WEIGHT_LEAVES = ("kernel", "w", "weight")


def _key_str(k: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def path_str(path: Sequence[Any]) -> str:
  return "/".join(_key_str(k) for k in path)


def _module_name(names: Sequence[str]) -> str:
  """The module owning a leaf: its parent for `kernel`-style leaves."""
  if len(names) >= 2 and names[-1] in _WEIGHT_LEAVES:
    return names[-2]
  return names[-1]


def _adaptable(names: Sequence[str], x: Any) -> bool:
  """A per-layer matrix: under 'layers', [L, ...] with two or more axes."""
  return ("layers" in names and np.ndim(x) >= 3
          and names[-1] in _WEIGHT_LEAVES)


def candidate_modules(params: Params) -> list[str]:
  """Module names that own a per-layer matrix (targets LoRA can adapt)."""
  found = set()
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    names = [_key_str(k) for k in path]
    if _adaptable(names, x):
      found.add(_module_name(names))
  return sorted(found)


def _targets(params: Params, targets: Sequence[str]) -> dict[str, Any]:
  """path string -> shape of every kernel of a targeted module."""
  allowed = candidate_modules(params)
  missing = [t for t in targets if t not in allowed]
  if missing:
    raise ValueError(
        f"config key 'lora.targets' names module(s) {missing} that the model"
        f" does not have; allowed: {', '.join(allowed)}")
  if not targets:
    raise ValueError(
        f"config key 'lora.targets' is empty; allowed: {', '.join(allowed)}")
  out = {}
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    names = [_key_str(k) for k in path]
    if _adaptable(names, x) and _module_name(names) in targets:
      out[path_str(path)] = tuple(np.shape(x))
  return out


def _split(shape: tuple[int, ...], embed_dim: int) -> tuple[int, int, int]:
  """(L, fan_in, fan_out) of a per-layer kernel [L, ...]."""
  body = shape[1:]
  n_in = 1 if body[0] == embed_dim else len(body) - 1
  return shape[0], int(np.prod(body[:n_in])), int(np.prod(body[n_in:]))


def init(params: Params, targets: Sequence[str], rank: int, embed_dim: int,
         seed: int, dtype: Any = jnp.float32) -> dict[str, dict[str, Any]]:
  """Adapters {kernel path: {'a': [L, in, r], 'b': [L, r, out]}}.

  `a` is Gaussian with std 1/sqrt(in) (so A @ B keeps activations' scale once
  B moves), `b` zero. Each kernel gets its own stream folded from `seed` by
  its sorted position, so adapters do not depend on dict order.
  """
  if rank <= 0:
    raise ValueError(f"config key 'lora.rank' must be positive, got {rank}")
  found = _targets(params, targets)
  key = jax.random.PRNGKey(seed)
  out = {}
  for i, (p, shape) in enumerate(sorted(found.items())):
    lead, fan_in, fan_out = _split(shape, embed_dim)
    a = jax.random.normal(jax.random.fold_in(key, i), (lead, fan_in, rank),
                          dtype) / np.sqrt(fan_in)
    out[p] = {"a": a, "b": jnp.zeros((lead, rank, fan_out), dtype)}
  return out


def collection(params: Params, adapters: dict[str, dict[str, Any]],
               rank: int, alpha: float) -> dict[str, Any]:
  """The decoder's LORA collection: the adapters re-keyed, no compute.

  {'layers/attn/q/kernel': {'a', 'b'}} becomes {'layers': {'attn': {'q':
  {'a', 'b', 'scale'}}}}: the variables of the `_Dense` module that owns the
  kernel, scanned over layers like its params (`scale` [L] is the constant
  alpha / rank, not trained). Pass it as
  `model.apply({'params': params, 'lora': collection(...)}, ...)`.
  """
  _check_known(params, adapters)
  out: dict[str, Any] = {}
  for path, ad in adapters.items():
    *module, leaf = path.split("/")
    if leaf not in _WEIGHT_LEAVES or module[:1] != ["layers"]:
      raise ValueError(f"LoRA adapter for {path}: only per-layer kernels"
                       " can be adapted")
    node = out
    for name in module:
      node = node.setdefault(name, {})
    lead = ad["a"].shape[0]
    node.update(a=ad["a"], b=ad["b"],
                scale=jnp.full((lead,), alpha / rank, jnp.float32))
  return out


def _check_known(params: Params, adapters: dict[str, Any]) -> None:
  unknown = set(adapters) - {
      path_str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)}
  if unknown:
    raise ValueError(f"LoRA adapters for unknown kernels: {sorted(unknown)}")


def merge(params: Params, adapters: dict[str, dict[str, Any]], rank: int,
          alpha: float) -> Params:
  """Base params with every adapter's low-rank delta added (jit-friendly).

  The same model as `collection` applied unmerged; for export.
  """
  scale = alpha / rank

  def add(path, w):
    ad = adapters.get(path_str(path))
    if ad is None:
      return w
    delta = jnp.einsum("lir,lro->lio", ad["a"].astype(jnp.float32),
                       ad["b"].astype(jnp.float32))
    return (w.astype(jnp.float32) + scale * delta.reshape(w.shape)).astype(
        w.dtype)

  _check_known(params, adapters)
  return jax.tree_util.tree_map_with_path(add, params)


def num_params(adapters: dict[str, dict[str, Any]]) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(adapters)))
