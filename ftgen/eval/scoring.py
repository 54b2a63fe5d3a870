"""Multiple-choice log-likelihood scoring: tokenization, batching, jit.

A request is one (context, continuation) pair in tokens; its score is the
summed log-probability of the continuation tokens given everything before
them. Text becomes requests through the one formatting rule of
`ftgen.checkpoints.tokenizer.encode_pair` (lm-evaluation-harness's), the
rule training examples follow too.

Batching: rows are sorted by length, grouped into batches of a fixed number
of rows and right-padded to one of a few bucket lengths, so a whole
evaluation compiles at most once per bucket. The jitted scorer projects the
final hidden states onto the vocabulary in chunks (`ftgen.models.head`), so
no [B, T, V] logits array exists even on device, and returns only [B] sums.

Batch parallelism: with a `mesh` (`ftgen.parallel.mesh.data_mesh`: every
device of every process, params replicated by the caller), each batch's rows
are split over the devices, padded with filler rows (index -1) to a multiple
of the device count, and the [B] sums are gathered back to every process.

Shape letters: B batch rows, T row length, V vocab.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from ftgen.models import head
from ftgen.models import kv_cache
from ftgen.parallel import distributed
from ftgen.parallel import sharding as sharding_lib

DEFAULT_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


@dataclasses.dataclass(frozen=True)
class Request:
  """One (context, continuation) pair in token ids."""

  context: tuple[int, ...]
  continuation: tuple[int, ...]

  def __post_init__(self):
    if not self.context:
      raise ValueError("a request needs at least one context token")
    if not self.continuation:
      raise ValueError("a request needs at least one continuation token")

  @property
  def tokens(self) -> tuple[int, ...]:
    return self.context + self.continuation

  def __len__(self) -> int:
    return len(self.context) + len(self.continuation)


@dataclasses.dataclass(frozen=True)
class Batch:
  """Padded rows of one batch and which requests they belong to."""

  tokens: np.ndarray  # [B, T] int32 inputs.
  targets: np.ndarray  # [B, T] int32 next tokens.
  weights: np.ndarray  # [B, T] bool: continuation targets.
  positions: np.ndarray  # [B, T] int32.
  index: np.ndarray  # [B] request index, -1 for filler rows.


def make_batches(
    requests: Sequence[Request],
    *,
    offset: int = 0,
    batch_size: int,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    max_batch_tokens: int = 0,
    pad_id: int = 0,
) -> list[Batch]:
  """Sorted, bucketed, right-padded batches of fixed row count per bucket.

  Args:
    requests: the pairs to score; all share their first `offset` tokens when
      `offset` > 0 (they sit in a prefix cache and are not part of the rows).
    offset: tokens already in a prefix cache; a row holds tokens
      [offset, len - 1) as inputs at positions offset + t.
    batch_size: rows per batch (B).
    buckets: row lengths (T) to pad to (`kv_cache.bucket_length`: past the
      largest, a multiple of it).
    max_batch_tokens: if > 0, B is reduced (to a power of two) for long
      buckets so that B * T stays within it; B then depends on T only.
    pad_id: filler token.

  Returns:
    Batches in order of decreasing length (the first compiles the largest
    shape, which also surfaces out-of-memory early).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  for i, r in enumerate(requests):
    if len(r.context) <= offset:
      raise ValueError(
          f"request {i}: context of {len(r.context)} tokens does not extend"
          f" past the {offset}-token prefix")
  order = sorted(range(len(requests)), key=lambda i: -len(requests[i]))
  batches, start = [], 0
  while start < len(order):
    longest = len(requests[order[start]]) - offset - 1
    t = kv_cache.bucket_length(longest, buckets)
    rows = batch_size
    if max_batch_tokens > 0:
      while rows > 1 and rows * t > max_batch_tokens:
        rows //= 2
    chunk = order[start:start + rows]
    start += rows
    tokens = np.full((rows, t), pad_id, np.int32)
    targets = np.zeros((rows, t), np.int32)
    weights = np.zeros((rows, t), bool)
    index = np.full((rows,), -1, np.int64)
    for row, i in enumerate(chunk):
      seq = np.asarray(requests[i].tokens[offset:], np.int32)
      n = len(seq) - 1
      tokens[row, :n] = seq[:-1]
      targets[row, :n] = seq[1:]
      # The last len(continuation) targets are the continuation.
      weights[row, n - len(requests[i].continuation):n] = True
      index[row] = i
    positions = np.broadcast_to(
        offset + np.arange(t, dtype=np.int32), (rows, t)).copy()
    batches.append(Batch(tokens, targets, weights, positions, index))
  return batches


def _sums(model, params, hidden, targets, weights):
  """[B] summed target log-probs and whether every target is the argmax."""
  logp, top = head.target_logprobs(model.config, params, hidden, targets)
  logp = jnp.where(weights, logp, 0.0)
  return logp.sum(axis=-1), jnp.all(top | ~weights, axis=-1)


@functools.partial(jax.jit, static_argnums=0)
def _score_full(model, params, tokens, positions, targets, weights):
  hidden = model.apply({"params": params}, tokens, positions,
                       return_hidden=True)
  return _sums(model, params, hidden, targets, weights)


@functools.partial(jax.jit, static_argnums=0)
def _score_prefixed(model, params, prefix, tokens, positions, targets, weights):
  hidden = model.apply({"params": params}, tokens, positions, prefix=prefix,
                       return_hidden=True)
  return _sums(model, params, hidden, targets, weights)


@dataclasses.dataclass
class Scores:
  """Per-request results, in request order."""

  logliks: np.ndarray  # [R] float64 summed continuation log-probs.
  greedy: np.ndarray  # [R] bool: every continuation token is the argmax.
  num_batches: int = 0
  shapes: tuple[tuple[int, int], ...] = ()


def score_requests(
    model: Any,
    params: Any,
    requests: Sequence[Request],
    *,
    batch_size: int = 16,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    max_batch_tokens: int = 0,
    pad_id: int = 0,
    prefix: Any = None,
    prefix_len: int = 0,
    progress: bool = False,
    desc: str = "scoring",
    mesh: jax.sharding.Mesh | None = None,
) -> Scores:
  """Scores requests with full-context rows or against a prefix cache.

  Args:
    model: the linen decoder (hashable; static under jit).
    params: its params tree.
    requests: pairs to score.
    batch_size, buckets, max_batch_tokens, pad_id: see `make_batches`.
    prefix: None, or a batch-1 KV cache holding the first `prefix_len`
      tokens shared by every request (see `ftgen.eval.prefix`).
    prefix_len: number of valid tokens in `prefix`.
    progress: show a tqdm bar over batches.
    desc: the bar's label.
    mesh: split each batch's rows over this mesh's batch axes (`params`
      and `prefix` placed on it by the caller); None: as the params lie.

  Returns:
    Scores in request order.
  """
  if prefix is None and prefix_len:
    raise ValueError("prefix_len > 0 needs a prefix cache")
  batches = make_batches(requests, offset=prefix_len, batch_size=batch_size,
                         buckets=buckets, max_batch_tokens=max_batch_tokens,
                         pad_id=pad_id)
  logliks = np.zeros(len(requests), np.float64)
  greedy = np.zeros(len(requests), bool)
  pending = []
  for b in tqdm.tqdm(batches, desc=desc, disable=not progress, leave=False):
    if mesh is not None:
      b = _pad_rows(b, sharding_lib.padded_rows(len(b.index), mesh), pad_id)
    args = (b.tokens, b.positions, b.targets, b.weights)
    if mesh is not None:
      args = sharding_lib.shard_batch(args, mesh)
    if prefix is None:
      out = _score_full(model, params, *args)
    else:
      out = _score_prefixed(model, params, prefix, *args)
    pending.append((b.index, out))
    # Keep one batch in flight: dispatch the next before reading this one.
    if len(pending) > 1:
      _collect(pending.pop(0), logliks, greedy)
  for item in pending:
    _collect(item, logliks, greedy)
  # The shapes before any padding to the mesh: the same on every mesh.
  shapes = tuple(sorted({b.tokens.shape for b in batches}))
  return Scores(logliks, greedy, len(batches), shapes)


def _pad_rows(b: Batch, rows: int, pad_id: int) -> Batch:
  """`b` with filler rows (index -1, no weights) up to `rows` rows."""
  extra = rows - len(b.index)
  if extra <= 0:
    return b
  def pad(x, value):
    fill = np.full((extra, *x.shape[1:]), value, x.dtype)
    return np.concatenate([x, fill])
  # Every row has the same positions (make_batches).
  positions = np.concatenate([b.positions,
                              np.repeat(b.positions[:1], extra, axis=0)])
  return Batch(pad(b.tokens, pad_id), pad(b.targets, 0),
               pad(b.weights, False), positions, pad(b.index, -1))


def _collect(item, logliks: np.ndarray, greedy: np.ndarray):
  index, (lp, gr) = item
  # Rows split over several processes' devices are gathered.
  lp, gr = distributed.fetch((lp, gr))
  keep = index >= 0
  logliks[index[keep]] = lp[keep]
  greedy[index[keep]] = gr[keep]
