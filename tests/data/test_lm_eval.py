"""Tests for the lm-evaluation-harness export."""

import importlib.util
import json
import re

import pytest

from ftgen.data import io
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


class _Loader(yaml.SafeLoader):
  pass


# The harness's YAML tag for a Python function (beside the YAML).
_Loader.add_constructor("!function",
                        lambda loader, node: ("!function", node.value))


def _yaml(text):
  return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)


def test_one_task_per_split_with_harness_fields():
  files = lm_eval.task_files(_dataset(), "demo")
  rev = _yaml(files["lm_eval/demo_reversal.yaml"])
  assert rev["task"] == "demo_reversal"
  assert rev["custom_dataset"] == ("!function", "ftgen_lm_eval_data.load")
  assert rev["dataset_kwargs"]["data_files"]["test"] == "reversal.jsonl"
  assert rev["test_split"] == "test"
  assert rev["output_type"] == "multiple_choice"
  assert (rev["doc_to_text"], rev["doc_to_choice"], rev["doc_to_target"]) == (
      "prompt", "choices", "answer")
  assert rev["target_delimiter"] == ""
  assert [m["metric"] for m in rev["metric_list"]] == [
      "acc", "acc_norm", "acc_mutual_info"]
  # Several correct choices: the target is the list of gold indices.
  syl = _yaml(files["lm_eval/demo_syllogism_odd_split.yaml"])
  assert syl["doc_to_target"] == "answers"
  group = _yaml(files["lm_eval/demo.yaml"])
  assert group["group"] == "demo"
  assert group["task"] == ["demo_reversal", "demo_syllogism_odd_split"]
  assert [(m["metric"], m["weight_by_size"])
          for m in group["aggregate_metric_list"]] == [
              ("acc", True), ("acc_norm", True), ("acc_mutual_info", True)]


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
      name = _yaml(text)["dataset_kwargs"]["data_files"]["test"]
      assert f"lm_eval/{name}" in files


def test_deterministic_and_colliding_splits_rejected():
  assert lm_eval.task_files(_dataset()) == lm_eval.task_files(_dataset())
  ds = _dataset()
  ds.test.append(records.Question("q3", "Reversal", "K", ("l", "m"), 0))
  with pytest.raises(ValueError, match="collide"):
    lm_eval.task_files(ds)


def test_default_prefix_is_the_data_digest_and_users_can_set_one(tmp_path):
  ds = _dataset()
  files = lm_eval.task_files(ds)
  prefix = lm_eval.dataset_task_prefix(ds)
  assert re.fullmatch(r"ftgen_demo_[0-9a-f]{8}", prefix)
  assert f"lm_eval/{prefix}.yaml" in files
  assert f"lm_eval/{prefix}_reversal.yaml" in files
  # The digest is of train.jsonl and test.jsonl as written (the manifest's
  # sha256), not of the manifest, which digests these YAMLs.
  out = io.write_dataset(records.Dataset(ds.name, ds.train, ds.test,
                                         extra_files=files),
                         tmp_path / "demo", seed=0)
  manifest = json.loads((out / "manifest.json").read_text())
  assert prefix == lm_eval.default_task_prefix(
      "demo", manifest["sha256"]["train.jsonl"],
      manifest["sha256"]["test.jsonl"])
  assert lm_eval.task_prefix_of(out) == prefix
  (out / "manifest.json").unlink()  # Questions of your own: digests files.
  assert lm_eval.task_prefix_of(out) == prefix
  # Other data, other names; so two builds load side by side.
  other = _dataset()
  other.test[0] = records.Question("q0", "reversal", "A is ", ("b", "x"), 0)
  assert lm_eval.dataset_task_prefix(other) != prefix
  assert "lm_eval/mine_reversal.yaml" in lm_eval.task_files(ds, "mine")
  with pytest.raises(ValueError, match=r"task_prefix='My-run'; allowed"):
    lm_eval.task_files(ds, "My-run")


def test_loader_reads_split_files_relative_to_itself(tmp_path, monkeypatch):
  datasets = pytest.importorskip("datasets")
  files = lm_eval.task_files(_dataset(), "demo")
  for rel, text in files.items():
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(text, encoding="utf-8")
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  monkeypatch.chdir(elsewhere)
  monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
  spec = importlib.util.spec_from_file_location(
      "ftgen_lm_eval_data_test", tmp_path / "lm_eval" / "ftgen_lm_eval_data.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  loaded = module.load(data_files={"test": "reversal.jsonl"}, version=1.0)
  assert isinstance(loaded, datasets.DatasetDict)
  assert [r["id"] for r in loaded["test"]] == ["q0", "q1"]
