"""Accuracy, standard errors and chance for multiple-choice results.

Variants of the choice score, all from the same forward passes:

* `raw`: summed log-prob of the choice (lm-eval `acc`);
* `per_token`: divided by the number of continuation tokens;
* `per_byte`: divided by the UTF-8 byte length of the choice (lm-eval's
  `acc_norm` divides by characters; equal for ASCII text);
* `calibrated`: minus the choice's log-prob after a neutral prompt (lm-eval
  `acc_mutual_info`), which removes a model's prior preference for a choice's
  surface form ("more" over "less").
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

VARIANTS = ("raw", "per_token", "per_byte", "calibrated")


def variant_scores(logliks: Sequence[float], num_tokens: Sequence[int],
                   num_bytes: Sequence[int],
                   neutral: Sequence[float] | None) -> dict[str, list[float]]:
  """The score of every choice under each variant (calibrated if given)."""
  ll = np.asarray(logliks, np.float64)
  out = {
      "raw": ll.tolist(),
      "per_token": (ll / np.maximum(np.asarray(num_tokens), 1)).tolist(),
      "per_byte": (ll / np.maximum(np.asarray(num_bytes), 1)).tolist(),
  }
  if neutral is not None:
    out["calibrated"] = (ll - np.asarray(neutral, np.float64)).tolist()
  return out


def argmax(scores: Sequence[float]) -> int:
  """First index of the maximum (ties go to the earlier choice, like lm-eval).
  """
  return int(np.argmax(np.asarray(scores)))


def margin(scores: Sequence[float], answers: Iterable[int]) -> float:
  """Best correct score minus best wrong score (> 0 iff a correct pick).

  A per-item log-odds that paired comparisons between conditions can use.
  """
  answers = set(answers)
  good = max(s for i, s in enumerate(scores) if i in answers)
  bad = [s for i, s in enumerate(scores) if i not in answers]
  return float(good - max(bad)) if bad else math.inf


def invalid_reason(rows: Iterable[dict[str, Any]]) -> str | None:
  """"N of M log-likelihoods are not finite" when any row's is, else None.

  A condition with such a value has no accuracy (argmax over NaN is a
  guess): the evaluation's summary and the experiment's report say why
  instead (docs/design.md#reliability). Rows are results rows of any
  version: non-finite values as NaN or null.
  """
  values = [x for r in rows for x in r["logliks"]]
  bad = sum(1 for x in values if x is None or not math.isfinite(x))
  if not bad:
    return None
  return f"{bad} of {len(values)} log-likelihoods are not finite"


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
  """Mean and its standard error (sample std / sqrt(n), as lm-eval)."""
  x = np.asarray(values, np.float64)
  if x.size == 0:
    return math.nan, math.nan
  if x.size == 1:
    return float(x[0]), math.nan
  return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def summarize(rows: Sequence[dict[str, Any]],
              chance: dict[str, float]) -> dict[str, dict[str, Any]]:
  """Per-split (plus "all") accuracy, stderr, n and chance per variant.

  Args:
    rows: results rows with "split", "correct" and "variants":
      {variant: {"correct": bool, ...}}.
    chance: split -> mean chance of its questions.

  Returns:
    {split: {"acc", "stderr", "n", "chance", "acc_<variant>",
    "stderr_<variant>" for the non-raw variants present}}.
  """
  splits: dict[str, list[dict[str, Any]]] = {}
  for row in rows:
    splits.setdefault(row["split"], []).append(row)
  groups = dict(splits)
  if len(splits) > 1:
    groups["all"] = list(rows)
  out = {}
  for split, group in groups.items():
    acc, se = mean_stderr([float(r["correct"]) for r in group])
    entry: dict[str, Any] = {"acc": acc, "stderr": se, "n": len(group)}
    if split == "all":
      entry["chance"] = float(np.mean([chance[r["split"]] for r in group]))
    else:
      entry["chance"] = chance[split]
    for variant in VARIANTS[1:]:
      if all(variant in r["variants"] for r in group):
        a, s = mean_stderr(
            [float(r["variants"][variant]["correct"]) for r in group])
        entry[f"acc_{variant}"] = a
        entry[f"stderr_{variant}"] = s
    out[split] = entry
  return out


# lm-evaluation-harness metric names for our variants.
_LM_EVAL_NAMES = {"raw": "acc", "per_byte": "acc_norm",
                  "calibrated": "acc_mutual_info"}


def lm_eval_results(summary: dict[str, dict[str, Any]],
                    task_names: dict[str, str],
                    config: dict[str, Any]) -> dict[str, Any]:
  """The summary in the lm-evaluation-harness results layout.

  Args:
    summary: `summarize` output.
    task_names: split -> harness task name (ftgen.data.lm_eval.task_name).
    config: run facts recorded under "config".
  """
  results, n_samples = {}, {}
  for split, entry in summary.items():
    if split == "all":
      continue
    task = task_names[split]
    res: dict[str, Any] = {"alias": task}
    for variant, name in _LM_EVAL_NAMES.items():
      suffix = "" if variant == "raw" else f"_{variant}"
      if f"acc{suffix}" in entry:
        res[f"{name},none"] = entry[f"acc{suffix}"]
        res[f"{name}_stderr,none"] = _nan_to_na(entry[f"stderr{suffix}"])
    results[task] = res
    n_samples[task] = {"original": entry["n"], "effective": entry["n"]}
  return {
      "results": results,
      "versions": {t: 1.0 for t in results},
      "n-shot": {t: 0 for t in results},
      "n-samples": n_samples,
      "config": config,
  }


def _nan_to_na(x: float):
  # lm-eval writes "N/A" for an undefined stderr.
  return "N/A" if x is None or (isinstance(x, float) and math.isnan(x)) else x
