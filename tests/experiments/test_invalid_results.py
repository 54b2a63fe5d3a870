"""The report shows a condition with non-finite log-likelihoods as invalid,
never as an accuracy (docs/design.md#reliability; issue 15: a diverged run
printed `finetune 0.500 ± 0.151`)."""

import json
import math

from ftgen.data import records
from ftgen.experiments import plots
from ftgen.experiments import results


def _questions():
  return [records.Question(f"r{i}", "reversal", "p", ("a", "b"), i % 2)
          for i in range(6)]


def _eval_rows(questions, logliks):
  rows = []
  for q in questions:
    ll = logliks(q)
    pred = int(max(range(len(ll)), key=lambda i: ll[i]))
    rows.append(dict(id=q.id, split=q.split, condition="x", logliks=ll,
                     pred=pred, correct=pred in q.answers))
  return rows


def _rows():
  qs = _questions()
  good = _eval_rows(qs, lambda q: [-1.0 if i == q.answer else -2.0
                                   for i in range(2)])
  # Written by an evaluator before invalid marking: NaN logliks, a guessed
  # pred and a "correct" for half of the questions (acc 0.500).
  diverged = _eval_rows(qs, lambda q: [math.nan, math.nan])
  # One NaN among finite values in one seed is enough.
  partial = _eval_rows(qs, lambda q: [-1.0 if i == q.answer else -2.0
                                      for i in range(2)])
  partial[3]["logliks"] = [None, -1.0]
  partial[3].update(pred=None, correct=None)
  rows = results.make_rows(good, qs, dataset="d", model="m",
                           condition="pretrained", seed=0)
  rows += results.make_rows(diverged, qs, dataset="d", model="m",
                            condition="finetune", seed=0)
  for seed in (0, 1):
    rows += results.make_rows(good if seed else partial, qs, dataset="d",
                              model="m", condition="icl", seed=seed)
  return rows


def test_nan_rows_have_no_prediction():
  rows = [r for r in _rows() if r["condition"] == "finetune"]
  assert all(r["correct"] is None and r["pred"] is None for r in rows)
  assert all(math.isnan(r["margin"]) for r in rows)


def test_summary_table_markdown_and_figure_say_invalid(tmp_path):
  summary = results.summarize(_rows(), dataset="d", model="m")
  conds = summary["conditions"]
  assert conds["pretrained"]["reversal"]["acc"] == 1.0
  assert "invalid" not in conds["pretrained"]["reversal"]
  ft = conds["finetune"]["reversal"]
  assert ft["acc"] is None and ft["stderr"] is None
  assert ft["invalid"] == "12 of 12 log-likelihoods are not finite"
  assert ft["n"] == 6 and ft["chance"] == 0.5
  assert conds["icl"]["reversal"]["invalid"] == (
      "1 of 24 log-likelihoods are not finite")
  # No paired shifts for or against an invalid condition.
  assert set(summary["paired"]) == set()
  results.write_json(tmp_path / "summary.json", summary)
  saved = json.loads((tmp_path / "summary.json").read_text())
  assert saved["conditions"]["finetune"]["reversal"]["acc"] is None

  table = results.comparison_table(summary)
  lines = table.splitlines()
  # The whole row: no accuracy (the diverged run's guess was 0.500).
  assert "| finetune | invalid (n=6) |" in lines
  assert "| icl | invalid (n=6) |" in lines
  assert ("Invalid (no accuracy): `finetune`: 12 of 12 log-likelihoods are"
          " not finite.") in lines
  md = results.summary_markdown(summary)
  assert table in md

  paths = plots.plot_summary(summary, tmp_path / "figure")
  svg = paths["svg"].read_text()
  assert "invalid" in svg
  assert paths["png"].stat().st_size > 0


def test_table_file_keeps_null_predictions(tmp_path):
  paths = results.write_table(_rows(), tmp_path)
  lines = [json.loads(l) for l in paths["jsonl"].read_text().splitlines()]
  ft = [r for r in lines if r["condition"] == "finetune"]
  assert all(r["correct"] is None and r["logliks"] == [None, None]
             for r in ft)
