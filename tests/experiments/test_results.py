"""Results table, summary.json, summary.md and the figure.

summary.json is a contract: docs/design.md#experiment-summary.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from ftgen.data import records
from ftgen.experiments import conditions
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
  aug = s["conditions"]["finetune_aug"]["reversal"]
  lo, hi = aug["ci95"]
  assert (f"| finetune_aug | 0.417 [{lo:.2f}, {hi:.2f}] sd"
          f" {aug['seed_sd']:.2f} |") in md
  assert "| condition | reversal (n=6) | syllogism (n=4) |" in md
  assert "*chance* | 0.500 | 0.500" in md
  assert "Paired shifts against the baseline" in md
  assert "±" not in md
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


def _two_condition_rows(correct_a, correct_b, seeds=(0,), cluster_of=None):
  """Rows of conditions finetune (a) and icl (b) over len(correct_a)
  reversal questions; cluster_of: question index -> cluster meta value."""
  n = len(correct_a)
  qs = [records.Question(f"r{i}", "reversal", "p", ("a", "b"), 0,
                         meta={"fact": (cluster_of or {}).get(i, i)})
        for i in range(n)]
  rows = []
  for cond, correct in (("icl", correct_b), ("finetune", correct_a)):
    for seed in seeds:
      ids = {f"r{i}" for i, c in enumerate(correct) if c}
      rows += results.make_rows(_eval_rows(qs, ids), qs, dataset="d",
                                model="m", condition=cond, seed=seed,
                                cluster_key="fact")
  return rows


def test_rows_carry_the_datasets_cluster():
  rows = _two_condition_rows([1, 0, 1], [0, 0, 1], cluster_of={0: 7, 1: 7})
  assert [r["cluster"] for r in rows[:3]] == ["fact=7", "fact=7", "fact=2"]
  # Without a key (or without the field) each question is its own unit.
  qs = _questions()
  rows = results.make_rows(_eval_rows(qs, set()), qs, dataset="d", model="m",
                           condition="c", seed=0, cluster_key="fact")
  assert rows[0]["cluster"] == "r0"


def test_clustered_stderr_counts_units_not_questions():
  correct = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0]
  flat = results.summarize(_two_condition_rows(correct, correct),
                           dataset="d", model="m")
  # Four questions per fact, all alike within the first two facts.
  clustered = results.summarize(
      _two_condition_rows(correct, correct,
                          cluster_of={i: i // 4 for i in range(12)}),
      dataset="d", model="m")
  f = flat["conditions"]["finetune"]["reversal"]
  c = clustered["conditions"]["finetune"]["reversal"]
  assert f["acc"] == c["acc"] == 0.5
  assert f["clusters"] == 12 and c["clusters"] == 3
  assert c["stderr"] > 1.5 * f["stderr"]
  assert c["ci95"][0] < f["ci95"][0] and c["ci95"][1] > f["ci95"][1]


def test_comparison_is_mcnemar_with_one_seed_and_holm_corrected():
  # finetune right where icl is wrong on 7 questions, the reverse on 1.
  a = [1] * 7 + [0] + [1] * 4 + [0] * 4
  b = [0] * 7 + [1] + [1] * 4 + [0] * 4
  s = results.summarize(_two_condition_rows(a, b), dataset="d", model="m")
  rows = [r for r in s["comparisons"] if r["metric"] == "accuracy"]
  assert len(rows) == 1
  r = rows[0]
  assert set(r) >= {"a", "b", "split", "diff", "ci95", "p", "n"}
  assert (r["a"], r["b"], r["split"]) == ("icl", "finetune", "reversal")
  assert r["test"] == "mcnemar_exact" and r["n"] == 16
  assert r["diff"] == pytest.approx(-6 / 16)
  assert r["p"] == pytest.approx(0.0703125)  # Exact McNemar, b=1, c=7.
  assert r["ci95"][0] < r["diff"] < r["ci95"][1]
  margin = [x for x in s["comparisons"] if x["metric"] == "margin"]
  assert len(margin) == 1 and margin[0]["test"] == "paired_t"
  # One comparison per family: Holm leaves p as is.
  assert r["p_holm"] == pytest.approx(r["p"]) and not r["significant"]


def test_comparison_pools_seeds_and_clusters_with_a_t_test():
  a = [1] * 10 + [0] * 2
  b = [0] * 10 + [1] * 2
  one = results.summarize(_two_condition_rows(a, b), dataset="d", model="m")
  three = results.summarize(_two_condition_rows(a, b, seeds=(0, 1, 2)),
                            dataset="d", model="m")
  r1 = next(r for r in one["comparisons"] if r["metric"] == "accuracy")
  r3 = next(r for r in three["comparisons"] if r["metric"] == "accuracy")
  # Identical seeds add no questions: same difference, same n, t test.
  assert r3["test"] == "paired_t" and r3["n"] == r1["n"] == 12
  assert r3["diff"] == pytest.approx(r1["diff"]) and r3["seeds"] == [3, 3]
  entry = three["conditions"]["icl"]["reversal"]
  assert entry["n_seeds"] == 3 and entry["seed_sd"] == 0.0


def test_the_papers_comparisons():
  pairs = conditions.comparisons(list(conditions.CONDITIONS))
  assert ("icl", "finetune") in pairs
  for cond in ("finetune_aug_local", "finetune_aug_global", "finetune_aug",
               "finetune_aug_oracle", "finetune_compute_control"):
    assert (cond, "finetune") in pairs and (cond, "icl") in pairs
  assert ("finetune", "pretrained") in pairs
  assert ("finetune_aug", "finetune_compute_control") in pairs
  assert not any("retrieval" in p for p in pairs)
  assert conditions.comparisons(["pretrained", "icl"]) == []
