"""Results table, summary.json, summary.md and the figure.

summary.json is a contract: docs/design.md#experiment-summary.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from ftgen.data import records
from ftgen.experiments import plots
from ftgen.experiments import results


def _questions():
  qs = [records.Question(f"r{i}", "reversal", "p", ("a", "b"), i % 2)
        for i in range(6)]
  qs += [records.Question(f"s{i}", "syllogism", "p", ("a", "b", "c", "d"),
                          0, answers=(0, 2)) for i in range(4)]
  return qs


def _eval_rows(questions, correct_ids, bonus=0.0):
  rows = []
  for q in questions:
    ll = [-2.0] * len(q.choices)
    good = q.answer if q.id in correct_ids else (q.answer + 1) % len(q.choices)
    if q.id not in correct_ids and good in q.answers:
      good = next(i for i in range(len(q.choices)) if i not in q.answers)
    ll[good] = -1.0 + bonus
    pred = int(np.argmax(ll))
    rows.append(dict(id=q.id, split=q.split, condition="x", logliks=ll,
                     pred=pred, correct=pred in q.answers))
  return rows


def _rows():
  qs = _questions()
  out = []
  out += results.make_rows(_eval_rows(qs, {"r0", "s0"}), qs, dataset="d",
                           model="m", condition="pretrained", seed=0)
  for seed, ids in ((0, {"r0", "r1", "r2", "s0", "s1"}),
                    (1, {"r0", "r1", "s0", "s1", "s2"})):
    out += results.make_rows(_eval_rows(qs, ids), qs, dataset="d", model="m",
                             condition="finetune_aug", seed=seed)
  return out


def test_rows_carry_answers_chance_and_margin():
  rows = _rows()
  s0 = next(r for r in rows if r["id"] == "s0")
  assert s0["answers"] == [0, 2] and s0["chance"] == 0.5
  assert s0["margin"] == pytest.approx(1.0) and s0["correct"]
  r1 = next(r for r in rows
            if r["id"] == "r1" and r["condition"] == "pretrained")
  assert r1["margin"] == pytest.approx(-1.0) and not r1["correct"]


def test_make_rows_rejects_unknown_question():
  with pytest.raises(KeyError, match="nope"):
    results.make_rows([dict(id="nope", logliks=[0, 1], pred=1, correct=True)],
                      _questions(), dataset="d", model="m", condition="c",
                      seed=0)


def test_summary_schema_and_seed_averaging():
  s = results.summarize(_rows(), dataset="d", model="m", costs={"x": 1})
  assert set(s) >= {"dataset", "model", "conditions", "costs"}
  assert s["dataset"] == "d" and s["model"] == "m" and s["costs"] == {"x": 1}
  assert list(s["conditions"]) == ["pretrained", "finetune_aug"]
  pre = s["conditions"]["pretrained"]["reversal"]
  assert pre["acc"] == pytest.approx(1 / 6) and pre["n"] == 6
  assert pre["chance"] == 0.5
  assert pre["stderr"] == pytest.approx(np.std([1, 0, 0, 0, 0, 0], ddof=1)
                                        / math.sqrt(6))
  aug = s["conditions"]["finetune_aug"]["reversal"]
  # Per question over 2 seeds: r0 1, r1 1, r2 0.5, others 0 -> n stays 6.
  per_q = [1, 1, 0.5, 0, 0, 0]
  assert aug["n"] == 6 and aug["n_seeds"] == 2
  assert aug["acc"] == pytest.approx(np.mean(per_q))
  assert aug["stderr"] == pytest.approx(np.std(per_q, ddof=1) / math.sqrt(6))
  assert s["conditions"]["finetune_aug"]["syllogism"]["chance"] == 0.5
  shift = s["paired"]["finetune_aug"]["reversal"]
  # Margins move from -1 to +1 (r1) and to 0 (r2, half the seeds).
  assert shift["mean_shift"] == pytest.approx((2 + 1) / 6)
  assert shift["improved"] == 2 and shift["n"] == 6


def test_write_table_round_trips(tmp_path):
  rows = _rows()
  paths = results.write_table(rows, tmp_path)
  back = results.read_jsonl(paths["jsonl"])
  assert len(back) == len(rows) == 30
  assert back[3]["logliks"] == rows[3]["logliks"]
  frame = pd.read_parquet(paths["parquet"])
  assert len(frame) == 30 and set(results.COLUMNS) <= set(frame.columns)
  assert frame["correct"].sum() == sum(r["correct"] for r in rows)
  csv = pd.read_csv(paths["csv"])
  assert json.loads(csv["answers"][20]) == rows[20]["answers"]


def test_markdown_and_figure(tmp_path):
  s = results.summarize(_rows(), dataset="d", model="m")
  md = results.summary_markdown(s, figure="figure.png")
  assert "| finetune_aug | 0.417 ± 0.201 (n=6) |" in md
  assert "*chance* | 0.500 | 0.500" in md
  assert "Paired comparison" in md
  out = plots.plot_summary(s, tmp_path / "figure")
  assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  svg = out["svg"].read_text()
  assert "<svg" in svg and "syllogism" in svg
  json.dumps(s)  # Serializable as is.


def test_figure_legend_names_the_icl_subsample(tmp_path):
  qs = _questions()
  rows = _rows() + results.make_rows(
      _eval_rows(qs, {"r0"}), qs, dataset="d", model="m", condition="icl",
      seed=0)
  s = results.summarize(rows, dataset="d", model="m",
                        extra={"icl_subsample": 3})
  svg = plots.plot_summary(s, tmp_path / "figure")["svg"].read_text()
  assert "ICL (1/3 of docs)" in svg and "ICL (all docs)" not in svg
  s = results.summarize(rows, dataset="d", model="m")
  svg = plots.plot_summary(s, tmp_path / "figure")["svg"].read_text()
  assert "ICL (all docs)" in svg
