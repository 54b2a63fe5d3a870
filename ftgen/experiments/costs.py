"""Cost ledger: one-time and per-query compute of each condition.

The paper's trade-off in numbers: ICL pays a long context on every query;
(augmented) fine-tuning pays once, up front. For each condition the ledger
holds measured wall time and analytic FLOPs of

* one-time work: augmentation generation, fine-tuning (and, for ICL with a
  prefix cache, prefilling the shared context once), and
* per-query work: scoring one question (all its choices), with or without
  the long context in front,

and the break-even number of queries after which a fine-tuned condition's
total cost drops below ICL's.

FLOPs follow `ftgen.models.flops` (PaLM/MaxText counting): a forward pass
costs 2 FLOPs per matmul weight per token, and attention 4·N·H FLOPs per
(query, key) pair (QK^T and AV); training is 3× forward. Sliding-window
layers see at most `window` keys.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

try:  # The fine-tuning library's counter, when present (it is the reference).
  from ftgen.models import flops as _train_flops  # pylint: disable=g-import-not-at-top
except ImportError:  # pragma: no cover - only without ftgen.train.
  _train_flops = None

FINETUNED_PREFIX = "finetune"


def matmul_params(config: Any) -> int:
  """Weights in a matmul per token, the logits projection included."""
  if _train_flops is not None:
    return _train_flops.matmul_params(config)
  d, l = config.embed_dim, config.num_layers
  n, k, h, f = (config.num_heads, config.num_kv_heads, config.head_dim,
                config.mlp_dim)
  return l * (d * n * h + 2 * d * k * h + n * h * d + 3 * d * f) + (
      config.vocab_size * d)


def _layer_windows(config: Any) -> list[int | None]:
  """Per layer: the sliding window, or None for full attention."""
  window = getattr(config, "sliding_window", None)
  if not window:
    return [None] * config.num_layers
  if hasattr(config, "layer_is_global"):
    return [None if g else int(window) for g in config.layer_is_global()]
  return [int(window)] * config.num_layers


def _keys_sum(context: int, n: int, window: int | None) -> float:
  """Sum over n new tokens at positions context..context+n-1 of the number
  of keys each attends to (itself and everything before, capped at window)."""
  if n <= 0:
    return 0.0
  first, last = context + 1, context + n  # keys of the first/last new token
  if window is None or last <= window:
    return (first + last) * n / 2
  if first >= window:
    return float(window) * n
  below = window - first  # tokens with fewer than `window` keys
  return (first + window - 1) * below / 2 + window * (n - below)


def forward_flops(config: Any, num_tokens: int, context: int = 0) -> float:
  """FLOPs of a forward pass over `num_tokens` new tokens that follow
  `context` already-cached tokens (context=0: a plain causal pass)."""
  n_h = config.num_heads * config.head_dim
  attn = sum(4 * n_h * _keys_sum(context, num_tokens, w)
             for w in _layer_windows(config))
  return 2.0 * matmul_params(config) * num_tokens + attn


def train_flops(config: Any, num_tokens: int, seq_len: int) -> float:
  """Training FLOPs (forward + backward) of `num_tokens` at length seq_len."""
  if _train_flops is not None:
    return _train_flops.train_flops_per_token(config, seq_len) * num_tokens
  return 3.0 * forward_flops(config, seq_len) * num_tokens / seq_len


def generation_flops(config: Any, prompt_tokens: float, new_tokens: float,
                     num_sequences: int = 1) -> float:
  """Prefill of the prompt plus token-by-token decoding, per sequence × n."""
  p, g = int(round(prompt_tokens)), int(round(new_tokens))
  return num_sequences * (forward_flops(config, p)
                          + forward_flops(config, g, context=p))


def scoring_flops(config: Any, context_tokens: float,
                  suffix_tokens: Sequence[float], *,
                  prefix_cached: bool = False) -> float:
  """FLOPs to score one question: one row per choice.

  Args:
    config: the model config.
    context_tokens: tokens in front of the question (ICL documents, the
      retrieved documents, or the instruction; 0 when none).
    suffix_tokens: per choice, tokens of question prompt + choice.
    prefix_cached: the context sits in a shared KV cache (its prefill is a
      one-time cost, see `prefill_flops`); rows attend to it without
      recomputing it.
  """
  c = int(round(context_tokens))
  if prefix_cached:
    return sum(forward_flops(config, int(round(s)), context=c)
               for s in suffix_tokens)
  return sum(forward_flops(config, c + int(round(s))) for s in suffix_tokens)


def augmentation_flops(config: Any, tokens: dict[str, float]) -> float:
  """Shared prefix prefilled once, then per prompt its tail and decode.

  `tokens`: prefix_tokens (shared head), prompts (rows), prompt_tokens (all
  rows' tails), generated_tokens (all rows).
  """
  rows = max(int(tokens.get("prompts", 1)), 1)
  prefix = int(tokens.get("prefix_tokens", 0))
  tail = tokens.get("prompt_tokens", 0) / rows
  gen = tokens.get("generated_tokens", 0) / rows
  per_row = (forward_flops(config, int(round(tail)), context=prefix)
             + forward_flops(config, int(round(gen)),
                             context=prefix + int(round(tail))))
  return forward_flops(config, prefix) + rows * per_row


def query_costs(config: Any, rows: list[dict[str, Any]], prefix: int,
                per_context: bool = False) -> dict[str, Any]:
  """Per-query context tokens and FLOPs of an evaluation's results rows.

  `query_flops` recomputes the context for every choice (lm-eval's way) or,
  with `per_context` (the evaluation cached each question's own context,
  as `retrieval` does), once per question. If `prefix` tokens shared by all
  questions were cached, `query_flops_prefix_cached` has that prefix
  prefilled once.
  """
  out: dict[str, Any] = {}
  ctx = [float(r.get("context_tokens", 0)) for r in rows]
  out["context_tokens"] = mean(ctx)
  if config is None or not rows or "num_tokens" not in rows[0]:
    return out
  naive, cached = [], []
  for r in rows:
    c, ns = int(r["context_tokens"]), [int(n) for n in r["num_tokens"]]
    if per_context and c > 1:
      # All but the last context token are prefilled once for the question.
      naive.append(forward_flops(config, c - 1) + scoring_flops(
          config, c - 1, [1 + n for n in ns], prefix_cached=True))
    else:
      naive.append(scoring_flops(config, 0, [c + n for n in ns]))
    if prefix:
      cached.append(scoring_flops(
          config, prefix, [c - prefix + n for n in ns], prefix_cached=True))
  out["query_flops"] = mean(naive)
  if prefix:
    out["query_flops_prefix_cached"] = mean(cached)
    out["prefill_flops"] = forward_flops(config, prefix)
  return out


def break_even(one_time_a: float, per_query_a: float, one_time_b: float,
               per_query_b: float) -> float:
  """Queries after which A (pay up front) costs less in total than B.

  Solves one_time_a + n·per_query_a <= one_time_b + n·per_query_b for the
  smallest n >= 0: 0 when A is never more expensive, inf when A never
  catches up (its per-query cost is not lower).
  """
  if one_time_a <= one_time_b and per_query_a <= per_query_b:
    return 0.0
  if per_query_a >= per_query_b:
    return math.inf
  return float(math.ceil((one_time_a - one_time_b)
                         / (per_query_b - per_query_a)))


def _stage(ledger_stages: Mapping[str, Any], name: str) -> dict[str, float]:
  s = ledger_stages.get(name) or {}
  return {"wall_s": float(s.get("wall_s", 0.0) or 0.0),
          "flops": float(s.get("flops", 0.0) or 0.0)}


def build_ledger(*, model: str, num_params: int,
                 one_time: Mapping[str, Mapping[str, Sequence[str]]],
                 stages: Mapping[str, Mapping[str, Any]],
                 per_query: Mapping[str, Mapping[str, Any]],
                 reference: str = "icl",
                 device: str = "") -> dict[str, Any]:
  """The cost ledger (costs.json).

  Args:
    model: model name.
    num_params: its parameter count.
    one_time: condition -> list of stage names whose cost it pays once
      (e.g. finetune_aug -> ["augment_local", "augment_global",
      "finetune/finetune_aug"]).
    stages: stage name -> {"wall_s", "flops", ...} as measured/computed.
    per_query: condition -> {"wall_s", "flops", "flops_prefix_cached",
      "prefill_flops", "context_tokens", "suffix_tokens", "n"}.
    reference: the condition break-even points are measured against.
    device: where the wall times were measured.

  Returns:
    {"model", "num_params", "device", "stages", "conditions": {COND:
    {"one_time": {"wall_s", "flops", "stages"}, "per_query": {...}}},
    "break_even": {COND: {"vs", "queries_flops", "queries_wall",
    "queries_flops_prefix_cached"}}}.
  """
  conditions: dict[str, Any] = {}
  for cond in dict.fromkeys(list(one_time) + list(per_query)):
    names = list(one_time.get(cond, ()))
    parts = {n: _stage(stages, n) for n in names}
    pq = dict(per_query.get(cond) or {})
    conditions[cond] = {
        "one_time": {"wall_s": sum(p["wall_s"] for p in parts.values()),
                     "flops": sum(p["flops"] for p in parts.values()),
                     "stages": names},
        "per_query": pq,
    }
  even: dict[str, Any] = {}
  ref = conditions.get(reference)
  if ref is not None and ref["per_query"]:
    r_once, r_pq = ref["one_time"], ref["per_query"]
    for cond, c in conditions.items():
      if not cond.startswith(FINETUNED_PREFIX) or not c["per_query"]:
        continue
      once, pq = c["one_time"], c["per_query"]
      entry = {"vs": reference,
               "queries_flops": break_even(once["flops"], pq.get("flops", 0),
                                           r_once["flops"],
                                           r_pq.get("flops", 0))}
      if "wall_s" in pq and "wall_s" in r_pq:
        entry["queries_wall"] = break_even(once["wall_s"], pq["wall_s"],
                                           r_once["wall_s"], r_pq["wall_s"])
      if "flops_prefix_cached" in r_pq:
        # ICL with its context prefilled once: a one-time prefill, then only
        # the suffix rows per query.
        entry["queries_flops_prefix_cached"] = break_even(
            once["flops"], pq.get("flops", 0),
            r_once["flops"] + r_pq.get("prefill_flops", 0.0),
            r_pq["flops_prefix_cached"])
      even[cond] = entry
  return {"model": model, "num_params": int(num_params), "device": device,
          "stages": {k: dict(v) for k, v in stages.items()},
          "conditions": conditions, "break_even": even}


def _sci(x: Any) -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "–"
  if isinstance(x, float) and math.isinf(x):
    return "never"
  return f"{x:.2e}" if abs(x) >= 1e4 or (0 < abs(x) < 1e-2) else f"{x:.3g}"


def costs_markdown(ledger: Mapping[str, Any]) -> str:
  """The cost section of summary.md."""
  lines = ["## Costs", "",
           f"Model {ledger['model']} ({ledger['num_params']:,} parameters)"
           + (f", wall times on {ledger['device']}" if ledger.get("device")
              else "") + ". FLOPs are analytic (2 per weight per token"
           " forward, 6 training, plus attention); per-query wall time is an"
           " evaluation's scoring time over its questions, compilation"
           " included.", "",
           "| condition | one-time wall s | one-time FLOPs | per-query wall s |"
           " per-query FLOPs | context tokens |",
           "| --- | --- | --- | --- | --- | --- |"]
  for cond, c in ledger["conditions"].items():
    o, q = c["one_time"], c["per_query"]
    lines.append(
        f"| {cond} | {_sci(o['wall_s'])} | {_sci(o['flops'])} |"
        f" {_sci(q.get('wall_s'))} | {_sci(q.get('flops'))} |"
        f" {_sci(q.get('context_tokens'))} |")
  if ledger.get("break_even"):
    lines += ["", "Break-even: queries after which the fine-tuned condition's"
              " total cost (one-time + per query) is below ICL's.", "",
              "| condition | vs | by FLOPs | by FLOPs (ICL prefix cached) |"
              " by wall time |", "| --- | --- | --- | --- | --- |"]
    for cond, e in ledger["break_even"].items():
      lines.append(
          f"| {cond} | {e['vs']} | {_sci(e['queries_flops'])} |"
          f" {_sci(e.get('queries_flops_prefix_cached'))} |"
          f" {_sci(e.get('queries_wall'))} |")
  return "\n".join(lines)


def mean(values: Sequence[float]) -> float:
  return float(np.mean(values)) if len(values) else 0.0
