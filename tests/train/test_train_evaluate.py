"""Evaluation during fine-tuning is the final evaluation of the export."""

import json

import numpy as np
import pytest

from ftgen import configs
from ftgen.data import records
from ftgen.eval import evaluate
from ftgen.train import evaluate as train_evaluate
from ftgen.train import loop


def _rows(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def test_last_evaluation_rows_equal_launch_evaluate_on_the_export(tmp_path):
  config = configs.load("finetune:reversals,tiny")
  config.steps = 2
  config.progress = False
  config.num_devices = 1
  config.eval.every = 0  # Only at the end.
  config.eval.max_questions_per_split = 3
  config.eval.seed = 5
  config.export_hf = True
  run = tmp_path / "run"
  summary = loop.finetune(config, run)

  cfg = configs.load("evaluate:finetuned,tiny")
  cfg.progress = False
  cfg.data = str(run / "data" / "reversals")
  cfg.checkpoint = summary["export_dir"]
  cfg.max_questions_per_split = 3
  cfg.seed = 5
  final = evaluate.run_evaluation(cfg, tmp_path / "eval")

  ours = _rows(run / "eval_results.jsonl")
  theirs = _rows(tmp_path / "eval" / "results.jsonl")
  assert [r["id"] for r in ours] == [r["id"] for r in theirs]
  assert len(ours) == 6  # 3 per split, the same seeded subset.
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a["logliks"], b["logliks"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(a["neutral_logliks"], b["neutral_logliks"],
                               atol=1e-4, rtol=0)
    assert (a["pred"], a["correct"]) == (b["pred"], b["correct"])
  for split, entry in summary["eval"].items():
    assert entry["acc"] == final["splits"][split]["acc"]


def test_selection_is_the_final_evaluators():
  qs = [records.Question(f"{s}{i}", s, "p", ("a", "b"), 0)
        for s in ("x", "y") for i in range(10)]
  eval_cfg = configs.load("finetune:reversals,tiny").eval
  eval_cfg.max_questions_per_split = 4
  eval_cfg.seed = 3
  eval_cfg.splits = "y"
  picked = train_evaluate.select_questions(qs, eval_cfg)
  assert picked == evaluate.select_questions(qs, ["y"], 4, 3)
  assert len(picked) == 4 and {q.split for q in picked} == {"y"}
  # Seeded, not the first four in file order.
  assert [q.id for q in picked] != ["y0", "y1", "y2", "y3"]
  eval_cfg.splits = "x,nope"
  with pytest.raises(ValueError, match=r"config.eval.splits names \['nope'\]"):
    train_evaluate.select_questions(qs, eval_cfg)
