"""The experiment's long-format results table, summary.json and summary.md.

One row per question × condition × seed
(docs/design.md#experiment-summary):
`{"dataset", "model", "condition", "seed", "id", "split", "correct", "pred",
"answers", "chance", "logliks", ...}`, written as `results.jsonl`,
`results.parquet` and `results.csv`.

Accuracy per (condition, split) averages each question over seeds first and
takes the standard error over questions, so several seeds never inflate n
(with one seed this is the usual sample-std / sqrt(n)). Paired statistics
compare two conditions item by item: the shift of each question's log-odds
margin (best correct minus best wrong log-likelihood), with a 95% CI, which
resolves effects that accuracy on 40-300 items cannot
(docs/design.md#purpose).
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
from ftgen.experiments import conditions as conditions_lib

# Columns every row has, in table order.
COLUMNS = ("dataset", "model", "condition", "seed", "id", "split", "correct",
           "pred", "answer", "answers", "chance", "margin", "logliks")


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
              model: str, condition: str, seed: int) -> list[dict[str, Any]]:
  """Joins evaluation rows with their questions into long-format rows.

  Args:
    eval_rows: rows of an evaluation's results.jsonl (`id`, `split`,
      `logliks`, `pred`, `correct`, optional `variants`, ...).
    questions: the dataset's questions (for answers and chance).
    dataset, model, condition, seed: the row's keys.

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


def accuracy(rows: Sequence[Mapping[str, Any]], key: str = "correct"
             ) -> dict[str, Any]:
  """{"acc", "stderr", "n", "chance", "n_seeds"} of one (condition, split)."""
  per_q = _per_question(rows, key)
  acc, se = metrics.mean_stderr([np.mean(v) for v in per_q.values()])
  chance = _per_question(rows, "chance")
  return {
      "acc": acc, "stderr": se, "n": len(per_q),
      "chance": float(np.mean([v[0] for v in chance.values()]))
      if chance else math.nan,
      "n_seeds": len({r["seed"] for r in rows}),
  }


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
      out[cond][split] = entry
  return out


def paired_shift(rows: Sequence[Mapping[str, Any]], condition: str,
                 baseline: str, split: str) -> dict[str, Any] | None:
  """Mean per-question shift of the log-odds margin, condition - baseline.

  Margins are averaged over seeds per question first; the CI is the normal
  95% interval of the paired mean. None when no question has both.
  """
  def margins(cond):
    sel = [r for r in rows if r["condition"] == cond and r["split"] == split
           and r.get("margin") is not None and math.isfinite(r["margin"])]
    return {k: float(np.mean(v))
            for k, v in _per_question(sel, "margin").items()}

  a, b = margins(condition), margins(baseline)
  ids = sorted(set(a) & set(b))
  if not ids:
    return None
  diff = [a[i] - b[i] for i in ids]
  mean, se = metrics.mean_stderr(diff)
  half = 1.96 * se if math.isfinite(se) else math.nan
  return {"baseline": baseline, "mean_shift": mean, "stderr": se,
          "ci95": [mean - half, mean + half], "n": len(ids),
          "improved": int(sum(d > 0 for d in diff))}


def paired_table(rows: Sequence[Mapping[str, Any]], baseline: str
                 ) -> dict[str, dict[str, dict[str, Any]]]:
  """Paired shifts of every other condition against `baseline`, per split
  (none for or against an invalid condition)."""
  out: dict[str, dict[str, dict[str, Any]]] = {}
  conds = ordered_conditions(r["condition"] for r in rows)
  invalid = invalid_conditions(rows)
  if baseline not in conds or baseline in invalid:
    return out
  for cond in conds:
    if cond == baseline or cond in invalid:
      continue
    for split in splits_of(rows):
      shift = paired_shift(rows, cond, baseline, split)
      if shift is not None:
        out.setdefault(cond, {})[split] = shift
  return out


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
  }
  summary.update(extra or {})
  return summary


def _fmt(x: Any, digits: int = 3) -> str:
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return "–"
  return f"{x:.{digits}f}"


def comparison_table(summary: Mapping[str, Any]) -> str:
  """Markdown: one row per condition, acc ± stderr (n) per split; chance."""
  splits = list(summary.get("splits") or [])
  conds = summary["conditions"]
  if not splits:
    splits = list(dict.fromkeys(s for c in conds.values() for s in c))
  lines = ["| condition | " + " | ".join(splits) + " |",
           "| --- |" + " --- |" * len(splits)]
  for cond, per_split in conds.items():
    cells = []
    for s in splits:
      e = per_split.get(s)
      if e is None:
        cells.append("–")
      elif e.get("invalid"):
        cells.append(f"invalid (n={e['n']})")
      else:
        cells.append(f"{_fmt(e['acc'])} ± {_fmt(e['stderr'])} (n={e['n']})")
    lines.append(f"| {cond} | " + " | ".join(cells) + " |")
  chance = []
  for s in splits:
    vals = [c[s]["chance"] for c in conds.values() if s in c]
    chance.append(_fmt(vals[0]) if vals else "–")
  lines.append("| *chance* | " + " | ".join(chance) + " |")
  # No-reasoning heuristics the task lets beat chance (the dataset's
  # manifest, ftgen/data/validity.py): a condition is read against them.
  for name, accs in (summary.get("baselines") or {}).items():
    lines.append(f"| *heuristic: {name}* | "
                 + " | ".join(_fmt(accs.get(s)) for s in splits) + " |")
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
  paired = summary.get("paired") or {}
  if not paired:
    return ""
  baseline = next(iter(next(iter(paired.values())).values()))["baseline"]
  lines = [f"Per-question shift of the log-odds margin (best correct minus best"
           f" wrong log-likelihood) against `{baseline}`; mean [95% CI],"
           f" questions improved / n.", "",
           "| condition | split | shift | 95% CI | improved |",
           "| --- | --- | --- | --- | --- |"]
  for cond, per_split in paired.items():
    for split, e in per_split.items():
      lo, hi = e["ci95"]
      lines.append(f"| {cond} | {split} | {_fmt(e['mean_shift'], 2)} |"
                   f" [{_fmt(lo, 2)}, {_fmt(hi, 2)}] |"
                   f" {e['improved']}/{e['n']} |")
  return "\n".join(lines)


def summary_markdown(summary: Mapping[str, Any], *,
                     costs_markdown: str = "", figure: str = "") -> str:
  """summary.md: the comparison table, paired shifts, costs, figure link."""
  seeds = summary.get("seeds") or []
  parts = [
      f"# {summary['dataset']} with {summary['model']}", "",
      f"Accuracy ± standard error over questions (seeds: {len(seeds)}"
      f"{', averaged per question' if len(seeds) > 1 else ''}).", "",
      comparison_table(summary),
  ]
  cal = [(c, s, e) for c, d in summary["conditions"].items()
         for s, e in d.items() if "acc_calibrated" in e]
  if cal:
    parts += ["", "Calibrated scoring (minus each choice's log-prob under a"
              " neutral prompt):", "",
              "| condition | split | acc | stderr |",
              "| --- | --- | --- | --- |"]
    parts += [f"| {c} | {s} | {_fmt(e['acc_calibrated'])} |"
              f" {_fmt(e['stderr_calibrated'])} |" for c, s, e in cal]
  paired = paired_markdown(summary)
  if paired:
    parts += ["", "## Paired comparison", "", paired]
  if costs_markdown:
    parts += ["", costs_markdown]
  if figure:
    parts += ["", f"![accuracy by condition and split]({figure})"]
  return "\n".join(parts) + "\n"
