"""Tests for the lm-evaluation-harness export."""

import json

import pytest

from ftgen.data import lm_eval
from ftgen.data import records

yaml = pytest.importorskip("yaml")


def _dataset():
  test = [
      records.Question("q0", "reversal", "A is ", ("b", "c"), 0),
      records.Question("q1", "reversal", "D is ", ("e", "f"), 1),
      records.Question("q2", "syllogism odd/split", "G is ", ("h", "i", "j"),
                       1, (1, 2)),
  ]
  return records.Dataset("demo", [records.Document("d0", "x")], test)


def test_one_task_per_split_with_harness_fields():
  files = lm_eval.task_files(_dataset())
  rev = yaml.safe_load(files["lm_eval/ftgen_demo_reversal.yaml"])
  assert rev["task"] == "ftgen_demo_reversal"
  assert rev["dataset_path"] == "json"
  assert rev["dataset_kwargs"]["data_files"]["test"] == "lm_eval/reversal.jsonl"
  assert rev["test_split"] == "test"
  assert rev["output_type"] == "multiple_choice"
  assert (rev["doc_to_text"], rev["doc_to_choice"], rev["doc_to_target"]) == (
      "prompt", "choices", "answer")
  assert rev["target_delimiter"] == ""
  assert [m["metric"] for m in rev["metric_list"]] == ["acc", "acc_norm"]
  # Several correct choices: the target is the list of gold indices.
  syl = yaml.safe_load(files["lm_eval/ftgen_demo_syllogism_odd_split.yaml"])
  assert syl["doc_to_target"] == "answers"
  group = yaml.safe_load(files["lm_eval/ftgen_demo.yaml"])
  assert group["task"] == ["ftgen_demo_reversal",
                           "ftgen_demo_syllogism_odd_split"]


def test_split_files_hold_exactly_their_questions():
  files = lm_eval.task_files(_dataset())
  rows = [json.loads(l) for l in files["lm_eval/reversal.jsonl"].splitlines()]
  assert [r["id"] for r in rows] == ["q0", "q1"]
  assert rows[1] == {"id": "q1", "prompt": "D is ", "choices": ["e", "f"],
                     "answer": 1, "answers": [1]}
  other = files["lm_eval/syllogism_odd_split.jsonl"]
  assert json.loads(other)["answers"] == [1, 2]
  # Every data file a YAML names is exported.
  for path, text in files.items():
    if path.endswith(".yaml") and "dataset_kwargs" in text:
      assert (yaml.safe_load(text)["dataset_kwargs"]["data_files"]["test"]
              in files)


def test_deterministic_and_colliding_splits_rejected():
  assert lm_eval.task_files(_dataset()) == lm_eval.task_files(_dataset())
  ds = _dataset()
  ds.test.append(records.Question("q3", "Reversal", "K", ("l", "m"), 0))
  with pytest.raises(ValueError, match="collide"):
    lm_eval.task_files(ds)
