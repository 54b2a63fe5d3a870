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

FLOPs are counted by `ftgen.models.flops`, the one count of ftgen; the
stages report their own (fine-tuning and augmentation in their summaries),
and this module adds the per-query cost of scoring evaluation rows.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ftgen.models import flops as flops_lib

FINETUNED_PREFIX = "finetune"


def query_costs(config: Any, rows: list[dict[str, Any]], prefix: int,
                per_context: bool = False) -> dict[str, Any]:
  """Per-query context tokens and FLOPs of an evaluation's results rows.

  `query_flops` recomputes the context for every choice (lm-eval's way) or,
  with `per_context` (the evaluation cached each question's own context,
  as `retrieval` does), once per question. If `prefix` tokens shared by all
  questions were cached, `query_flops_prefix_cached` has that prefix
  prefilled once.

  A prefill fills the KV cache and projects nothing to the vocabulary, so it
  is counted as `flops_lib.prefill_flops` (no logits).
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
      naive.append(flops_lib.prefill_flops(config, c - 1)
                   + flops_lib.scoring_flops(config, c - 1,
                                             [1 + n for n in ns],
                                             prefix_cached=True))
    else:
      naive.append(flops_lib.scoring_flops(config, 0, [c + n for n in ns]))
    if prefix:
      cached.append(flops_lib.scoring_flops(
          config, prefix, [c - prefix + n for n in ns], prefix_cached=True))
  out["query_flops"] = mean(naive)
  if prefix:
    out["query_flops_prefix_cached"] = mean(cached)
    out["prefill_flops"] = flops_lib.prefill_flops(config, prefix)
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
