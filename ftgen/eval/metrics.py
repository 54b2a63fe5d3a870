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

import hashlib
import json
import math
from typing import Any, Iterable, Sequence

import numpy as np

from ftgen.eval import stats

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
    {split: {"acc", "stderr", "ci95", "n", "chance", "acc_<variant>",
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
    # lm-eval's stderr, plus a Wilson interval that stays informative at 0
    # and 1 (questions as independent here; the experiment's summary
    # clusters them: ftgen/experiments/results.py).
    entry: dict[str, Any] = {"acc": acc, "stderr": se, "n": len(group),
                             "ci95": list(stats.wilson_interval(acc,
                                                                len(group)))}
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


# lm-evaluation-harness metric names for our variants (the metric_list of
# the exported tasks, ftgen/data/lm_eval.py).
LM_EVAL_METRICS = {"raw": "acc", "per_byte": "acc_norm",
                   "calibrated": "acc_mutual_info"}


def pooled_stderr(stderrs: Sequence[float], sizes: Sequence[int]) -> float:
  """A size-weighted group's stderr from its tasks' (lm-eval's
  `pooled_sample_stderr`, which its group entries report)."""
  sizes = np.asarray(sizes, np.float64)
  var = np.asarray(stderrs, np.float64) ** 2
  pooled = float(np.sum((sizes - 1) * var * sizes) / (sizes.sum() - len(sizes)))
  return math.sqrt(pooled / sizes.sum())


def _task_metrics(entry: dict[str, Any]) -> dict[str, Any]:
  out = {}
  for variant, name in LM_EVAL_METRICS.items():
    suffix = "" if variant == "raw" else f"_{variant}"
    if entry.get(f"acc{suffix}") is not None:
      out[f"{name},none"] = entry[f"acc{suffix}"]
      out[f"{name}_stderr,none"] = _nan_to_na(entry[f"stderr{suffix}"])
  return out


def lm_eval_results(summary: dict[str, dict[str, Any]],
                    task_names: dict[str, str], group: str, *,
                    configs: dict[str, dict[str, Any]],
                    original_sizes: dict[str, int] | None = None,
                    version: float = 1.0) -> dict[str, Any]:
  """The summary as lm-evaluation-harness 0.4's `results_<time>.json`
  (without the run facts: `config`, `date`, ... are the caller's).

  Keys and values as the harness writes them for the exported tasks
  (tests/eval/test_lm_eval_layout.py compares with its own file): per-task
  entries, the group entry (size-weighted means, pooled stderr), and
  `groups`, `group_subtasks`, `configs`, `versions`, `n-shot`,
  `higher_is_better`, `n-samples`.

  Args:
    summary: `summarize` output ("all" is ignored: the group is computed).
    task_names: split -> harness task name (ftgen.data.lm_eval.task_name).
    group: the group's name (the task prefix).
    configs: task name -> its task config.
    original_sizes: split -> questions in the dataset (default: scored).
    version: the tasks' version.
  """
  results: dict[str, Any] = {}
  n_samples = {}
  for split, task in task_names.items():
    entry = summary[split]
    results[task] = {"name": task, "alias": task, "sample_len": entry["n"],
                     **_task_metrics(entry)}
    original = (original_sizes or {}).get(split, entry["n"])
    n_samples[task] = {"original": original, "effective": entry["n"]}
  tasks = list(task_names.values())
  sizes = [results[t]["sample_len"] for t in tasks]
  group_entry: dict[str, Any] = {"alias": group, "name": group,
                                 "sample_len": sum(sizes)}
  sample_count = {}
  for name in LM_EVAL_METRICS.values():
    key, se_key = f"{name},none", f"{name}_stderr,none"
    if not all(key in results[t] for t in tasks):
      continue
    values = [results[t][key] for t in tasks]
    group_entry[key] = float(np.dot(values, sizes) / sum(sizes))
    stderrs = [results[t][se_key] for t in tasks]
    group_entry[se_key] = ("N/A" if "N/A" in stderrs
                           else pooled_stderr(stderrs, sizes))
    sample_count[key] = sum(sizes)
  if sample_count:
    group_entry["sample_count"] = sample_count
  results[group] = group_entry
  higher = {t: {name: True for name in LM_EVAL_METRICS.values()}
            for t in [group] + tasks}
  return {
      "results": results,
      "groups": {group: group_entry},
      "group_subtasks": {group: tasks},
      "configs": {t: configs[t] for t in tasks},
      # The harness writes a group's version as the YAML's text.
      "versions": {group: str(version), **{t: version for t in tasks}},
      "n-shot": {t: 0 for t in [group] + tasks},
      "higher_is_better": higher,
      "n-samples": n_samples,
  }


def lm_eval_samples(row: dict[str, Any], doc: dict[str, Any], head: str,
                    neutral_head: str | None) -> dict[str, Any]:
  """One line of lm-evaluation-harness's `samples_<task>_<time>.jsonl` for
  a results row: the doc, the (context, choice) pairs scored, each pair's
  [log-likelihood, is-greedy] as strings, the per-metric outcomes and the
  harness's hashes. The neutral prompt's pairs (calibration) follow the
  choices' as the harness's `acc_mutual_info` requests do; their greedy flag
  is not kept ("None").
  """
  choices = doc["choices"]
  answers = doc["answers"]
  target = doc["answer"] if len(answers) <= 1 else list(answers)
  args = [(head, c) for c in choices]
  resps = [[_fmt(ll), str(g)] for ll, g in zip(row["logliks"],
                                                row["greedy"])]
  if neutral_head is not None and row.get("neutral_logliks") is not None:
    args += [(neutral_head, c) for c in choices]
    resps += [[_fmt(ll), "None"] for ll in row["neutral_logliks"]]
  outcome = {}
  if row["correct"] is not None:
    outcome["acc"] = float(row["correct"])
  for variant, name in LM_EVAL_METRICS.items():
    if variant in row["variants"]:
      outcome[name] = float(row["variants"][variant]["correct"])
  sample = {
      "doc_id": None,  # The caller numbers the docs of a task.
      "doc": doc,
      "target": str(target),
      "arguments": {f"gen_args_{i}": {"arg_0": a, "arg_1": b}
                    for i, (a, b) in enumerate(args)},
      "resps": [[r] for r in resps],
      "filtered_resps": resps,
      "filter": "none",
      "metrics": list(outcome),
      "doc_hash": _sha256(json.dumps(doc, indent=2, ensure_ascii=False)),
      "prompt_hash": _sha256(head),
      "target_hash": _sha256(str(target)),
  }
  sample.update(outcome)
  return sample


def task_hash(samples: Sequence[dict[str, Any]]) -> str:
  """lm-eval's `task_hashes` entry: over its samples' three hashes."""
  return _sha256("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"]
                         for s in samples))


def _sha256(text: str) -> str:
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fmt(x: float | None) -> str:
  return str(x) if x is not None else "None"


def _nan_to_na(x: float):
  # lm-eval writes "N/A" for an undefined stderr.
  return "N/A" if x is None or (isinstance(x, float) and math.isnan(x)) else x
