"""The experiment's long-format results table, summary.json and summary.md.

One row per question × condition × seed
(docs/design.md#experiment-summary):
`{"dataset", "model", "condition", "seed", "id", "split", "cluster",
"correct", "pred", "answers", "chance", "logliks", ...}`, written as
`results.jsonl`, `results.parquet` and `results.csv`.

Statistics (ftgen/eval/stats.py) follow the design of the measurement:
accuracy per (condition, split) averages each question over seeds first (so
seeds never inflate n), its standard error is clustered by the unit the
questions share (the dataset's `cluster_key`: fact, entity, person), its
95% interval is a Wilson interval at the clustered effective sample size,
and the seed-to-seed spread is reported beside it. `comparisons` pairs the
conditions the paper's claims compare question by question: accuracy
differences (exact McNemar or clustered paired t) and shifts of the log-odds
margin (best correct minus best wrong log-likelihood, clustered t), each
family Holm-corrected.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Sequence

from etils import epath
import numpy as np

from ftgen.data import io as data_io
from ftgen.data import workdir as workdir_lib
from ftgen.data import records
from ftgen.eval import metrics
from ftgen.eval import stats
from ftgen.experiments import conditions as conditions_lib

# Columns every row has, in table order.
COLUMNS = ("dataset", "model", "condition", "seed", "id", "split", "cluster",
           "correct", "pred", "answer", "answers", "chance", "margin",
           "logliks")


def _margin(logliks: Sequence[float], answers: Iterable[int]) -> float:
  """Best correct minus best wrong log-likelihood (> 0 iff correct)."""
  answers = set(answers)
  good = [x for i, x in enumerate(logliks) if i in answers]
  bad = [x for i, x in enumerate(logliks) if i not in answers]
  if not good or not bad:
    return math.nan
  return float(max(good) - max(bad))


def make_rows(eval_rows: Iterable[Mapping[str, Any]],
              questions: Sequence[records.Question], *, dataset: str,
              model: str, condition: str, seed: int,
              cluster_key: str | None = None) -> list[dict[str, Any]]:
  """Joins evaluation rows with their questions into long-format rows.

  Args:
    eval_rows: rows of an evaluation's results.jsonl (`id`, `split`,
      `logliks`, `pred`, `correct`, optional `variants`, ...).
    questions: the dataset's questions (for answers and chance).
    dataset, model, condition, seed: the row's keys.
    cluster_key: the question meta field whose value is the row's `cluster`
      (the dataset's `DatasetSpec.cluster_key`); None or absent: the id.

  Returns:
    Rows with `COLUMNS` plus any extra evaluation fields (e.g.
    `correct_calibrated` when the evaluation computed calibrated scores).

  Raises:
    KeyError: an evaluation row names a question that is not in the dataset.
  """
  by_id = {q.id: q for q in questions}
  out = []
  for r in eval_rows:
    if r["id"] not in by_id:
      raise KeyError(
          f"condition {condition!r}: result for question {r['id']!r} that is"
          f" not in the dataset {dataset!r}")
    q = by_id[r["id"]]
    logliks = [math.nan if x is None else float(x) for x in r["logliks"]]
    # A non-finite log-likelihood leaves no prediction (older results.jsonl
    # files still hold one: argmax over NaN); `condition_table` marks the
    # condition invalid (docs/design.md#reliability).
    valid = (r.get("correct") is not None
             and all(math.isfinite(x) for x in logliks))
    row = {
        "dataset": dataset, "model": model, "condition": condition,
        "seed": int(seed), "id": q.id, "split": r.get("split", q.split),
        "cluster": _cluster(q, cluster_key),
        "correct": bool(r["correct"]) if valid else None,
        "pred": int(r["pred"]) if valid else None,
        "answer": q.answer, "answers": list(q.answers), "chance": q.chance,
        "margin": _margin(logliks, q.answers) if valid else math.nan,
        "logliks": logliks,
    }
    # Score variants (calibrated etc.) become flat columns.
    variants = (r.get("variants") or {}) if valid else {}
    for name, v in variants.items():
      if (name != "raw" and isinstance(v, Mapping)
          and v.get("correct") is not None):
        row[f"correct_{name}"] = bool(v["correct"])
    out.append(row)
  return out


def _cluster(q: records.Question, key: str | None) -> str:
  if key and q.meta.get(key) is not None:
    return f"{key}={q.meta[key]}"
  return q.id


def read_jsonl(path: epath.PathLike) -> list[dict[str, Any]]:
  with workdir_lib.as_path(path).open(encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def write_json(path: epath.PathLike, obj: Any):
  """Atomic JSON write (NaN becomes null, so strict readers accept it)."""
  data_io.atomic_write_json(path, _nan_to_none(obj), indent=2)


def _nan_to_none(obj: Any) -> Any:
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, dict):
    return {k: _nan_to_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_nan_to_none(v) for v in obj]
  return obj


def write_table(rows: Sequence[Mapping[str, Any]],
                outdir: epath.PathLike) -> dict[str, workdir_lib.AnyPath]:
  """Writes results.jsonl, results.parquet and results.csv into `outdir`."""
  import pandas as pd  # pylint: disable=g-import-not-at-top

  outdir = workdir_lib.as_path(outdir)
  outdir.mkdir(parents=True, exist_ok=True)
  paths = {k: outdir / f"results.{k}" for k in ("jsonl", "parquet", "csv")}
  data_io.atomic_write_text(paths["jsonl"], "".join(
      json.dumps(_nan_to_none(dict(r)), ensure_ascii=False) + "\n"
      for r in rows))
  frame = pd.DataFrame(list(rows))
  if frame.empty:
    frame = pd.DataFrame(columns=list(COLUMNS))
  with data_io.atomic_path(paths["parquet"]) as tmp:
    frame.to_parquet(tmp, index=False)
  # CSV cells cannot hold lists: write them as JSON.
  flat = frame.copy()
  for col in ("answers", "logliks"):
    if col in flat:
      flat[col] = flat[col].map(json.dumps)
  with data_io.atomic_path(paths["csv"]) as tmp:
    flat.to_csv(tmp, index=False)
  return paths


def ordered_conditions(names: Iterable[str]) -> list[str]:
  names = list(dict.fromkeys(names))
  # The paper's display order; unknown conditions follow in given order.
  order = conditions_lib.CONDITIONS
  known = [c for c in order if c in names]
  return known + [c for c in names if c not in order]


def _per_question(rows: Sequence[Mapping[str, Any]], key: str
                  ) -> dict[str, list[float]]:
  """Question id -> values of `key` over seeds."""
  out: dict[str, list[float]] = {}
  for r in rows:
    out.setdefault(r["id"], []).append(float(r[key]))
  return out


def _clusters(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
  """Question id -> its cluster (rows without one: the id)."""
  return {r["id"]: r.get("cluster") or r["id"] for r in rows}


def accuracy(rows: Sequence[Mapping[str, Any]], key: str = "correct"
             ) -> dict[str, Any]:
  """One (condition, split): {"acc", "stderr", "ci95", "n", "clusters",
  "n_eff", "chance", "n_seeds", "seed_accs", "seed_sd", "seed_range"}.

  `acc` is the mean over questions of each question's mean over seeds;
  `stderr` is clustered by question unit; `ci95` the Wilson interval at the
  effective n (ftgen/eval/stats.py).
  """
  per_q = _per_question(rows, key)
  ids = list(per_q)
  cluster = _clusters(rows)
  entry = stats.accuracy_interval([float(np.mean(per_q[i])) for i in ids],
                                  [cluster[i] for i in ids])
  chance = _per_question(rows, "chance")
  per_seed: dict[int, list[float]] = {}
  for r in rows:
    per_seed.setdefault(int(r["seed"]), []).append(float(r[key]))
  entry.update(
      chance=float(np.mean([v[0] for v in chance.values()]))
      if chance else math.nan,
      n_seeds=len(per_seed),
      **stats.seed_spread({s: float(np.mean(v)) for s, v in per_seed.items()}))
  return entry


def splits_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
  return list(dict.fromkeys(r["split"] for r in rows))


def invalid_conditions(rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
  """{condition: reason} for conditions with a non-finite log-likelihood."""
  by_cond: dict[str, list[Mapping[str, Any]]] = {}
  for r in rows:
    by_cond.setdefault(r["condition"], []).append(r)
  out = {}
  for cond, group in by_cond.items():
    reason = metrics.invalid_reason(group)
    if reason:
      out[cond] = reason
  return out


def condition_table(rows: Sequence[Mapping[str, Any]]
                    ) -> dict[str, dict[str, dict[str, Any]]]:
  """{condition: {split: accuracy(...)}}, plus calibrated accuracy if any.

  A condition with a non-finite log-likelihood (any split, any seed) gets
  `acc` and `stderr` None and `invalid` (the reason) in every split.
  """
  groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
  for r in rows:
    groups.setdefault((r["condition"], r["split"]), []).append(r)
  invalid = invalid_conditions(rows)
  out: dict[str, dict[str, dict[str, Any]]] = {}
  for cond in ordered_conditions(r["condition"] for r in rows):
    out[cond] = {}
    for split in splits_of(rows):
      group = groups.get((cond, split))
      if not group:
        continue
      if cond in invalid:
        chance = _per_question(group, "chance")
        out[cond][split] = {
            "acc": None, "stderr": None, "n": len(chance),
            "chance": float(np.mean([v[0] for v in chance.values()])),
            "n_seeds": len({r["seed"] for r in group}),
            "invalid": invalid[cond]}
        continue
      entry = accuracy(group)
      if all("correct_calibrated" in r for r in group):
        cal = accuracy(group, "correct_calibrated")
        entry["acc_calibrated"] = cal["acc"]
        entry["stderr_calibrated"] = cal["stderr"]
        entry["ci95_calibrated"] = cal["ci95"]
      out[cond][split] = entry
  return out


def _seed_means(rows: Sequence[Mapping[str, Any]], cond: str, split: str,
                key: str) -> tuple[dict[str, float], dict[str, list[float]]]:
  """Question id -> mean of `key` over seeds, and the values per seed, for
  the finite values of one (condition, split)."""
  sel = [r for r in rows if r["condition"] == cond and r["split"] == split
         and r.get(key) is not None and math.isfinite(float(r[key]))]
  per_q = _per_question(sel, key)
  return {k: float(np.mean(v)) for k, v in per_q.items()}, per_q


def paired(rows: Sequence[Mapping[str, Any]], a: str, b: str, split: str,
           metric: str = "accuracy") -> dict[str, Any] | None:
  """Condition `a` minus `b` on one split, paired by question.

  `metric` "accuracy": per-question correctness (mean over seeds); "margin":
  the log-odds margin. The difference's 95% interval is a t interval with
  the standard error clustered by question unit. The accuracy p-value is the
  exact McNemar test when the pairs are independent 0/1 outcomes (one seed
  per condition, one question per unit), else the clustered paired t test,
  as for the margin (`test` says which). None when no question has both.
  """
  key = "correct" if metric == "accuracy" else "margin"
  rows = [r for r in rows if r["split"] == split
          and r["condition"] in (a, b)]
  ma, raw_a = _seed_means(rows, a, split, key)
  mb, raw_b = _seed_means(rows, b, split, key)
  ids = sorted(set(ma) & set(mb))
  if not ids:
    return None
  cluster = _clusters(rows)
  groups = [cluster[i] for i in ids]
  diffs = [ma[i] - mb[i] for i in ids]
  out = stats.paired_difference(diffs, groups)
  test = "paired_t"
  one_seed = all(len(raw_a[i]) == 1 and len(raw_b[i]) == 1 for i in ids)
  if metric == "accuracy" and one_seed and len(set(groups)) == len(ids):
    b_only = sum(d > 0 for d in diffs)  # a right, b wrong
    c_only = sum(d < 0 for d in diffs)
    out["p"] = stats.mcnemar_exact(b_only, c_only)
    test = "mcnemar_exact"
  seeds_a = {int(r["seed"]) for r in rows if r["condition"] == a}
  seeds_b = {int(r["seed"]) for r in rows if r["condition"] == b}
  return {"a": a, "b": b, "split": split, "metric": metric,
          "diff": out["diff"], "ci95": out["ci95"], "p": out["p"],
          "n": len(ids), "clusters": out["clusters"], "test": test,
          "seeds": [len(seeds_a), len(seeds_b)],
          "a_better": int(sum(d > 0 for d in diffs)),
          "b_better": int(sum(d < 0 for d in diffs))}


def comparisons(rows: Sequence[Mapping[str, Any]],
                alpha: float = 0.05) -> list[dict[str, Any]]:
  """The paper's comparisons (`conditions.comparisons`) on every split, for
  accuracy and margin, each metric's family Holm-corrected (`p_holm`,
  `significant` at `alpha`). Invalid conditions are left out."""
  conds = ordered_conditions(r["condition"] for r in rows)
  invalid = invalid_conditions(rows)
  valid = [c for c in conds if c not in invalid]
  by_split: dict[str, list[Mapping[str, Any]]] = {}
  for r in rows:
    by_split.setdefault(r["split"], []).append(r)
  out = []
  for metric in ("accuracy", "margin"):
    family = []
    for a, b in conditions_lib.comparisons(valid):
      for split, split_rows in by_split.items():
        row = paired(split_rows, a, b, split, metric)
        if row is not None:
          family.append(row)
    adjusted = stats.holm([r["p"] for r in family])
    for row, p_holm in zip(family, adjusted):
      row["p_holm"] = p_holm
      row["significant"] = bool(math.isfinite(p_holm) and p_holm < alpha)
    out += family
  return out


def paired_table(rows: Sequence[Mapping[str, Any]], baseline: str
                 ) -> dict[str, dict[str, dict[str, Any]]]:
  """Margin shifts of every other condition against `baseline`, per split
  (none for or against an invalid condition): {"baseline", "mean_shift",
  "ci95", "p", "n", "improved"} (`paired`, metric "margin")."""
  out: dict[str, dict[str, dict[str, Any]]] = {}
  conds = ordered_conditions(r["condition"] for r in rows)
  invalid = invalid_conditions(rows)
  if baseline not in conds or baseline in invalid:
    return out
  for cond in conds:
    if cond == baseline or cond in invalid:
      continue
    for split in splits_of(rows):
      row = paired(rows, cond, baseline, split, "margin")
      if row is not None:
        out.setdefault(cond, {})[split] = {
            "baseline": baseline, "mean_shift": row["diff"],
            "ci95": row["ci95"], "p": row["p"], "n": row["n"],
            "improved": row["a_better"]}
  return out


# How summary.json's statistics were computed (also printed in summary.md).
STATISTICS = (
    "acc: mean over questions of each question's mean over seeds; stderr:"
    " clustered by the dataset's question unit (CR1); ci95: Wilson interval"
    " at the clustered effective n; seed_sd: standard deviation of the"
    " split's accuracy across seeds. comparisons: a - b paired by question,"
    " 95% t intervals with clustered standard errors; p: exact McNemar"
    " (one seed, one question per unit) or clustered paired t; p_holm:"
    " Holm-corrected within each metric's family; significant: p_holm <"
    " 0.05.")


def summarize(rows: Sequence[Mapping[str, Any]], *, dataset: str, model: str,
              costs: Mapping[str, Any] | None = None,
              baseline: str = "pretrained",
              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """summary.json (docs/design.md#experiment-summary), `paired`, `splits`."""
  summary = {
      "dataset": dataset,
      "model": model,
      "conditions": condition_table(rows),
      "costs": dict(costs or {}),
      "splits": splits_of(rows),
      "seeds": sorted({int(r["seed"]) for r in rows}),
      "paired": paired_table(rows, baseline),
      "comparisons": comparisons(rows),
      "statistics": STATISTICS,
  }
  summary.update(extra or {})
  return summary


def fmt(x: Any, digits: int = 3) -> str:
  """A number for tables ("–" for None and NaN)."""
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return "–"
  return f"{x:.{digits}f}"


def cell(e: Mapping[str, Any] | None) -> str:
  """One table cell: accuracy [95% interval], plus the standard deviation
  over seeds when there are several."""
  if e is None:
    return "–"
  if e.get("invalid"):
    return f"invalid (n={e['n']})"
  lo, hi = e.get("ci95") or (None, None)
  text = f"{fmt(e['acc'])} [{fmt(lo, 2)}, {fmt(hi, 2)}]"
  if e.get("seed_sd") is not None:
    text += f" sd {fmt(e['seed_sd'], 2)}"
  return text


def _split_sizes(summary: Mapping[str, Any], splits: Sequence[str]
                 ) -> dict[str, str]:
  out = {}
  for s in splits:
    ns = {e[s]["n"] for e in summary["conditions"].values() if s in e}
    units = {e[s].get("clusters") for e in summary["conditions"].values()
             if s in e and e[s].get("clusters")}
    label = f"n={max(ns)}" if ns else ""
    if units and max(units) < max(ns):
      label += f", {max(units)} units"
    out[s] = label
  return out


def comparison_table(summary: Mapping[str, Any]) -> str:
  """Markdown: one row per condition, accuracy [95% CI] (and the spread
  over seeds) per split; chance and forced heuristics."""
  splits = list(summary.get("splits") or [])
  conds = summary["conditions"]
  if not splits:
    splits = list(dict.fromkeys(s for c in conds.values() for s in c))
  sizes = _split_sizes(summary, splits)
  lines = ["| condition | " + " | ".join(
      f"{s} ({sizes[s]})" if sizes[s] else s for s in splits) + " |",
           "| --- |" + " --- |" * len(splits)]
  for cond, per_split in conds.items():
    cells = [cell(per_split.get(s)) for s in splits]
    lines.append(f"| {cond} | " + " | ".join(cells) + " |")
  chance = []
  for s in splits:
    vals = [c[s]["chance"] for c in conds.values() if s in c]
    chance.append(fmt(vals[0]) if vals else "–")
  lines.append("| *chance* | " + " | ".join(chance) + " |")
  # No-reasoning heuristics the task lets beat chance (the dataset's
  # manifest, ftgen/data/validity.py): a condition is read against them.
  for name, accs in (summary.get("baselines") or {}).items():
    lines.append(f"| *heuristic: {name}* | "
                 + " | ".join(fmt(accs.get(s)) for s in splits) + " |")
  controls = {s: t for s, t in (summary.get("controls") or {}).items()
              if s in splits}
  if controls:
    lines += [""] + [f"Control `{s}`: {t}" for s, t in controls.items()]
  reasons = invalid_reasons(summary)
  if reasons:
    lines += [""] + [f"Invalid (no accuracy): `{cond}`: {reason}."
                     for cond, reason in reasons.items()]
  return "\n".join(lines)


def invalid_reasons(summary: Mapping[str, Any]) -> dict[str, str]:
  """{condition: reason} of the summary's invalid conditions."""
  out = {}
  for cond, per_split in summary["conditions"].items():
    for e in per_split.values():
      if e.get("invalid"):
        out[cond] = e["invalid"]
        break
  return out


def paired_markdown(summary: Mapping[str, Any]) -> str:
  paired_ = summary.get("paired") or {}
  if not paired_:
    return ""
  baseline = next(iter(next(iter(paired_.values())).values()))["baseline"]
  lines = [f"Per-question shift of the log-odds margin (best correct minus best"
           f" wrong log-likelihood) against `{baseline}`; mean [95% CI],"
           f" questions improved / n.", "",
           "| condition | split | shift | 95% CI | improved |",
           "| --- | --- | --- | --- | --- |"]
  for cond, per_split in paired_.items():
    for split, e in per_split.items():
      lo, hi = e["ci95"]
      lines.append(f"| {cond} | {split} | {fmt(e['mean_shift'], 2)} |"
                   f" [{fmt(lo, 2)}, {fmt(hi, 2)}] |"
                   f" {e['improved']}/{e['n']} |")
  return "\n".join(lines)


def fmt_p(x: Any) -> str:
  """A p-value for tables (below 0.001 as "<0.001")."""
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return "–"
  return f"{x:.3f}" if x >= 0.001 else "<0.001"


def comparison_id(row: Mapping[str, Any]) -> str:
  """A comparison row's short name, which claims cite: `a−b/split/metric`."""
  return f"{row['a']}−{row['b']}/{row['split']}/{row['metric']}"


def comparisons_markdown(summary: Mapping[str, Any],
                         metric: str = "accuracy") -> str:
  """The comparison rows of one metric as a Markdown table."""
  rows = [r for r in summary.get("comparisons") or []
          if r["metric"] == metric]
  if not rows:
    return ""
  unit = "accuracy difference" if metric == "accuracy" else (
      "log-odds margin shift")
  lines = [f"| a − b | split | {unit} [95% CI] | p | p (Holm) | test | n |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  digits = 3 if metric == "accuracy" else 2
  for r in rows:
    lo, hi = r["ci95"]
    mark = " **" if r["significant"] else " "
    lines.append(
        f"| {r['a']} − {r['b']} | {r['split']} |"
        f"{mark}{fmt(r['diff'], digits)}"
        f" [{fmt(lo, digits)}, {fmt(hi, digits)}]{mark.strip()} |"
        f" {fmt_p(r['p'])} | {fmt_p(r['p_holm'])} | {r['test']} |"
        f" {r['n']} ({r['clusters']} units) |")
  return "\n".join(lines)


def summary_markdown(summary: Mapping[str, Any], *,
                     costs_markdown: str = "", figure: str = "") -> str:
  """summary.md: the table, comparisons, paired shifts, costs, figure."""
  seeds = summary.get("seeds") or []
  parts = [
      f"# {summary['dataset']} with {summary['model']}", "",
      f"Accuracy [95% interval] per split ({len(seeds)} seed"
      f"{'s' if len(seeds) != 1 else ''}"
      f"{'; sd: standard deviation over seeds' if len(seeds) > 1 else ''}).",
      "", comparison_table(summary),
  ]
  cal = [(c, s, e) for c, d in summary["conditions"].items()
         for s, e in d.items() if "acc_calibrated" in e]
  if cal:
    parts += ["", "Calibrated scoring (minus each choice's log-prob under a"
              " neutral prompt):", "",
              "| condition | split | acc [95% CI] |",
              "| --- | --- | --- |"]
    parts += [f"| {c} | {s} | {fmt(e['acc_calibrated'])}"
              f" [{fmt((e.get('ci95_calibrated') or [None])[0], 2)},"
              f" {fmt((e.get('ci95_calibrated') or [None, None])[1], 2)}] |"
              for c, s, e in cal]
  for metric in ("accuracy", "margin"):
    table = comparisons_markdown(summary, metric)
    if table:
      parts += ["", f"## Comparisons: {metric}", "", table]
  if summary.get("statistics"):
    parts += ["", "Bold: significant after Holm's correction. "
              + summary["statistics"]]
  paired_ = paired_markdown(summary)
  if paired_:
    parts += ["", "## Paired shifts against the baseline", "", paired_]
  if costs_markdown:
    parts += ["", costs_markdown]
  if figure:
    parts += ["", f"![accuracy by condition and split]({figure})"]
  return "\n".join(parts) + "\n"
