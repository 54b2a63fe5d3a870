"""Shared-prefix scoring: prefill an in-context prefix once, score against it.

In the ICL condition every (question, choice) row starts with the same long
context. Naive scoring recomputes it for every row; here it is prefilled once
(in chunks, so activation memory stays bounded by the chunk) into a batch-1
KV cache, and all rows are scored in batches against that cache with the
decoder's `prefix=` path (every row attends to the whole prefix plus
causally to its own tokens, merged exactly in one softmax).

In the retrieval condition each question has a context of its own (its k
documents); `score_per_context` prefills each distinct context once and
scores that question's choices against it.

The prefill itself and the prefix-cache type are `ftgen.models.kv_cache`'s.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tqdm

from ftgen.eval import scoring
from ftgen.models import kv_cache


def common_prefix_length(requests: Sequence[scoring.Request]) -> int:
  """Tokens every request shares, keeping >= 1 context token per row.

  The last context token must stay in the row: its logits predict the first
  continuation token, and the cache holds keys/values, not logits.
  """
  if not requests:
    return 0
  first = requests[0].context
  n = min(len(r.context) for r in requests) - 1
  for r in requests[1:]:
    ctx = r.context
    m = 0
    while m < n and ctx[m] == first[m]:
      m += 1
    n = m
    if n == 0:
      break
  return max(n, 0)


def token_costs(requests: Sequence[scoring.Request],
                min_prefix: int = 1) -> dict[str, int]:
  """Tokens each scoring mode runs through the model for `requests`.

  "none" encodes every row whole; "shared" prefills the prefix common to all
  rows once (if it has `min_prefix` tokens); "per_context" prefills each
  distinct context once (those with `min_prefix` cacheable tokens; shorter
  ones are scored whole). A token count is the cost model: at evaluation
  lengths the per-token matmuls dominate the quadratic attention term.
  """
  whole = sum(len(r.context) + len(r.continuation) for r in requests)
  p = common_prefix_length(requests)
  shared = whole - (len(requests) - 1) * p if p >= max(min_prefix, 1) else whole
  groups: dict[tuple[int, ...], list[scoring.Request]] = {}
  for r in requests:
    groups.setdefault(r.context, []).append(r)
  per_context = 0
  for context, rows in groups.items():
    c = len(context) - 1
    tails = sum(len(r.continuation) for r in rows)
    per_context += (c + len(rows) + tails if c >= max(min_prefix, 1)
                    else len(rows) * (c + 1) + tails)
  return dict(none=whole, shared=shared, per_context=per_context)


def choose_mode(requests: Sequence[scoring.Request], min_prefix: int = 1,
                min_saving: float = 0.25) -> str:
  """The cheapest scoring mode by `token_costs`, preferring batched ones.

  "per_context" runs one prefill and one small scoring call per distinct
  context, which costs dispatch time the batched modes do not pay, so it is
  chosen only when it saves at least `min_saving` of the tokens of the
  cheaper batched mode (retrieval: a long context of its own per question;
  not short zero-shot prompts, whose contexts are under `min_prefix`).
  """
  costs = token_costs(requests, min_prefix)
  batched = "shared" if costs["shared"] < costs["none"] else "none"
  if costs["per_context"] <= (1 - min_saving) * costs[batched]:
    return "per_context"
  return batched


def score_with_prefix(model: Any, params: Any,
                      requests: Sequence[scoring.Request], *,
                      chunk: int = 512, min_prefix: int = 1,
                      **kwargs) -> tuple[scoring.Scores, int]:
  """Scores requests, prefilling their common prefix once.

  Args:
    model, params: the decoder and its params.
    requests: pairs to score; the longest token prefix they all share is
      cached (if it has at least `min_prefix` tokens; else plain scoring).
    chunk: prefill chunk length.
    min_prefix: below this many shared tokens, score without a cache.
    **kwargs: passed to `scoring.score_requests` (batch_size, buckets, ...).

  Returns:
    (scores in request order, number of prefix tokens cached).
  """
  p = common_prefix_length(requests)
  if p < max(min_prefix, 1):
    return scoring.score_requests(model, params, requests, **kwargs), 0
  pc = kv_cache.prefill_prefix(model, params, requests[0].context[:p],
                               chunk=chunk)
  scores = scoring.score_requests(model, params, requests, prefix=pc.cache,
                                  prefix_len=p, **kwargs)
  return scores, p


def score_per_context(model: Any, params: Any,
                      requests: Sequence[scoring.Request], *,
                      chunk: int = 512, min_prefix: int = 1,
                      batch_size: int = 16,
                      buckets: Sequence[int] = scoring.DEFAULT_BUCKETS,
                      progress: bool = False, desc: str = "scoring",
                      **kwargs) -> tuple[scoring.Scores, int]:
  """Scores requests, prefilling each distinct context once.

  For conditions whose context differs per question (`retrieval`: the
  question's own k documents), there is no prefix shared by all rows; the
  choices of one question still share theirs. Each distinct context is
  prefilled (its length bucketed, so shapes repeat) and its choices are
  scored against it, instead of re-encoding the context once per choice.
  Contexts with fewer than `min_prefix` cacheable tokens are scored plainly.

  Args:
    model, params: the decoder and its params.
    requests: pairs to score, in any order.
    chunk: prefill chunk length.
    min_prefix: below this many cacheable tokens, score without a cache.
    batch_size, buckets, progress, desc: as in `scoring.score_requests`
      (a group's rows are batched by the group size, rounded up to a power
      of two, at most `batch_size`).
    **kwargs: passed to `scoring.score_requests` (max_batch_tokens, pad_id).

  Returns:
    (scores in request order, prefix tokens cached summed over contexts).
  """
  groups: dict[tuple[int, ...], list[int]] = {}
  for i, r in enumerate(requests):
    groups.setdefault(r.context, []).append(i)
  logliks = np.zeros(len(requests), np.float64)
  greedy = np.zeros(len(requests), bool)
  plain, num_batches, shapes, cached = [], 0, set(), 0
  for context, idx in tqdm.tqdm(groups.items(), desc=desc,
                                disable=not progress, leave=False):
    p = len(context) - 1  # The last token's logits predict the choice.
    if p < max(min_prefix, 1):
      plain.extend(idx)
      continue
    rows = min(batch_size, 1 << (len(idx) - 1).bit_length())
    pc = kv_cache.prefill_prefix(model, params, context[:p], chunk=chunk,
                                 buckets=buckets)
    out = scoring.score_requests(
        model, params, [requests[i] for i in idx], prefix=pc.cache,
        prefix_len=p, batch_size=rows, buckets=buckets, **kwargs)
    logliks[idx], greedy[idx] = out.logliks, out.greedy
    num_batches += out.num_batches
    shapes.update(out.shapes)
    cached += p
  if plain:
    out = scoring.score_requests(
        model, params, [requests[i] for i in plain], batch_size=batch_size,
        buckets=buckets, **kwargs)
    logliks[plain], greedy[plain] = out.logliks, out.greedy
    num_batches += out.num_batches
    shapes.update(out.shapes)
  return (scoring.Scores(logliks, greedy, num_batches, tuple(sorted(shapes))),
          cached)
