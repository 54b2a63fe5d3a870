"""Multi-host start-up behind an explicit flag.

`jax.distributed.initialize()` must run before any other JAX call on every
host of a multi-host job (TPU pod slices, multi-node GPU), and must not run
in a single-process job, a notebook or a test. Launchers therefore pass an
explicit `enabled` flag; library code never guesses from the environment.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

import jax
from jax.experimental import multihost_utils
import numpy as np

_initialized = False
T = TypeVar("T")


def maybe_initialize(
    enabled: bool,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
  """Calls `jax.distributed.initialize` when `enabled`; a no-op otherwise.

  Args:
    enabled: the launcher's explicit multi-host flag.
    coordinator: 'host:port' of process 0; None lets JAX discover it (Cloud
      TPU, SLURM, Open MPI environments).
    num_processes: total number of processes; None to auto-detect.
    process_id: this process's index; None to auto-detect.

  Returns:
    True when this call (or an earlier one) initialized the distributed
    runtime, False when `enabled` is False.

  Raises:
    ValueError: when coordinator/num_processes/process_id are given while
      `enabled` is False (a launcher bug that would otherwise silently run
      single-host).
  """
  global _initialized
  if not enabled:
    given = {
        name: value
        for name, value in (
            ("coordinator", coordinator),
            ("num_processes", num_processes),
            ("process_id", process_id),
        )
        if value is not None
    }
    if given:
      raise ValueError(
          f"Multi-host settings {given} were given but enabled=False; pass "
          "enabled=True to call jax.distributed.initialize()."
      )
    return False
  if _initialized:
    return True
  jax.distributed.initialize(
      coordinator_address=coordinator,
      num_processes=num_processes,
      process_id=process_id,
  )
  _initialized = True
  if jax.process_count() > 1 and jax.default_backend() == "cpu":
    # Gloo (CPU collectives) sets up its context at the first collective
    # and waits only 30 s for the other processes there; set it up now,
    # while every process is at the same point, rather than at a first
    # training step whose compile time differs between processes.
    multihost_utils.sync_global_devices("ftgen: jax.distributed initialized")
  logging.info(
      "jax.distributed initialized: process %d of %d, %d local / %d global "
      "devices.",
      jax.process_index(),
      jax.process_count(),
      jax.local_device_count(),
      jax.device_count(),
  )
  return True


def is_primary() -> bool:
  """Whether this process writes the files of a shared workdir (process 0).

  Every process of a multi-host job takes part in sharded computation;
  one writes what they all would write alike (datasets, metrics, summaries,
  exports), so no two processes race on a file.
  """
  return jax.process_index() == 0


def fetch(tree: Any) -> Any:
  """Host (numpy) copies of a tree's arrays, whole, on every process.

  An array sharded over other processes' devices is gathered
  (`process_allgather`: a collective, so every process must call this
  alike); a replicated or process-local one is copied from a local device.
  """
  leaves, treedef = jax.tree.flatten(tree)
  remote = [isinstance(x, jax.Array) and not x.is_fully_addressable
            for x in leaves]
  # The local leaves in one transfer (device copies run concurrently).
  local = iter(jax.device_get([x for x, r in zip(leaves, remote) if not r]))
  out = []
  for x, r in zip(leaves, remote):
    if not r:
      out.append(np.asarray(next(local)))
    elif x.is_fully_replicated:
      out.append(np.asarray(x.addressable_data(0)))
    else:
      out.append(np.asarray(multihost_utils.process_allgather(x, tiled=True)))
  return jax.tree.unflatten(treedef, out)


def barrier(what: str) -> None:
  """Waits until every process of a multi-host job got here; a no-op in a
  single-process job.

  Args:
    what: names the barrier (the same on every process).
  """
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"ftgen: {what}")


def primary_first(fn: Callable[[], T], what: str) -> T:
  """Runs `fn` on process 0, then on the others once process 0 is done.

  For steps that create a file when it is absent and read it otherwise
  (the workdir, a generated dataset): process 0 creates it, the others find
  it. Single-process: just `fn()`.

  Args:
    fn: the step; idempotent once process 0 has run it.
    what: names the barrier (the same on every process).

  Returns:
    What `fn` returned on this process.
  """
  if jax.process_count() == 1:
    return fn()
  if is_primary():
    try:
      return fn()
    finally:
      # Also when fn failed: the others then fail on their own (and say
      # why) rather than wait for process 0 until the job's timeout.
      barrier(what)
  barrier(what)
  return fn()


def primary_only(fn: Callable[[], T], what: str) -> T | None:
  """Runs `fn` on process 0 alone; the others wait until it is done.

  For writes whose result the others read afterwards (a stage marker, the
  report). Single-process: just `fn()`.

  Args:
    fn: the step (writes files of the shared workdir).
    what: names the barrier (the same on every process).

  Returns:
    What `fn` returned on process 0; None on the others.
  """
  if jax.process_count() == 1:
    return fn()
  try:
    return fn() if is_primary() else None
  finally:
    # Also when fn failed on process 0 (see primary_first).
    barrier(what)
