"""lm-evaluation-harness itself on ftgen's export: runs from another
directory, reproduces ftgen's numbers, and writes the layout ftgen writes.

Needs the torch extra (`lm_eval[hf]`, torch); one harness run (~20 s).
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from ftgen import configs
from ftgen.checkpoints import hf
from ftgen.checkpoints import registry
from ftgen.data import lm_eval
from ftgen.data import pipeline
from ftgen.eval import evaluate

pytest.importorskip("torch")
pytest.importorskip("lm_eval")

# Facts of the harness's run that ftgen cannot state (its environment,
# version, torch model), so ftgen's file leaves them out.
_HARNESS_ONLY = {"pretty_env_info", "transformers_version", "lm_eval_version"}
_HARNESS_ONLY_CONFIG = {"model_num_parameters", "model_dtype",
                        "model_revision", "model_sha"}
# The harness's expansion of the task YAML that ftgen does not repeat.
_HARNESS_ONLY_TASK_CONFIG = {"fewshot_config"}


def _close(ours, theirs, path=""):
  """Equal structures, floats within 1e-3 (the issue's bound)."""
  if isinstance(theirs, dict):
    assert isinstance(ours, dict) and set(ours) == set(theirs), (
        path, sorted(set(ours) ^ set(theirs)))
    for k in theirs:
      _close(ours[k], theirs[k], f"{path}/{k}")
  elif isinstance(theirs, list):
    assert isinstance(ours, list) and len(ours) == len(theirs), path
    for i, (a, b) in enumerate(zip(ours, theirs)):
      _close(a, b, f"{path}[{i}]")
  elif isinstance(theirs, float) and not isinstance(theirs, bool):
    assert ours == pytest.approx(theirs, abs=1e-3), path
  else:
    assert ours == theirs, path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A tiny reversals dataset, the tiny model's HF export, ftgen's and the
  harness's evaluation of it."""
  root = tmp_path_factory.mktemp("lm_eval_layout")
  data = pipeline.generate_to_dir(configs.load("data:reversals,tiny"),
                                  root / "data")
  loaded = registry.load_model("tiny", dtype="float32")
  export = root / "export"
  hf.save_hf(export, loaded.config, jax.tree.map(np.asarray, loaded.params))
  loaded.tokenizer.save(export)

  cfg = configs.load("evaluate:pretrained,tiny")
  cfg.model = f"hf:{export}"
  cfg.data = str(data)
  cfg.progress = False
  summary = evaluate.run_evaluation(cfg, root / "ftgen")

  prefix = lm_eval.task_prefix_of(data)
  elsewhere = root / "elsewhere"  # Not the dataset's directory.
  elsewhere.mkdir()
  env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
             HF_DATASETS_CACHE=str(root / "hf_datasets"),
             TOKENIZERS_PARALLELISM="false")
  proc = subprocess.run(
      [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
       f"pretrained={export},dtype=float32", "--include_path",
       str(data / "lm_eval"), "--tasks", prefix, "--output_path",
       str(root / "harness"), "--log_samples", "--device", "cpu",
       "--batch_size", "8"],
      cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  [harness_dir] = list((root / "harness").iterdir())
  return dict(prefix=prefix, summary=summary, ours=root / "ftgen",
              theirs=harness_dir)


def _results(directory):
  [path] = list(directory.glob("results_*.json"))
  return json.loads(path.read_text())


def _samples(directory, task):
  [path] = list(directory.glob(f"samples_{task}_*.jsonl"))
  return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.torch
def test_harness_numbers_equal_ftgens(setup):
  prefix, summary = setup["prefix"], setup["summary"]
  theirs = _results(setup["theirs"])["results"]
  for split in ("reversal", "rephrase"):
    entry = theirs[f"{prefix}_{split}"]
    ours = summary["splits"][split]
    assert entry["acc,none"] == pytest.approx(ours["acc"], abs=1e-3)
    assert entry["acc_norm,none"] == pytest.approx(ours["acc_per_byte"],
                                                   abs=1e-3)
    assert entry["acc_mutual_info,none"] == pytest.approx(
        ours["acc_calibrated"], abs=1e-3)
  # Per question: each choice's log-likelihood, and the neutral prompt's.
  for split in ("reversal", "rephrase"):
    task = f"{prefix}_{split}"
    for a, b in zip(_samples(setup["ours"], task),
                    _samples(setup["theirs"], task)):
      assert a["doc"] == b["doc"]
      assert np.allclose([float(r[0]) for r in a["filtered_resps"]],
                         [float(r[0]) for r in b["filtered_resps"]],
                         atol=1e-3)


@pytest.mark.slow
@pytest.mark.torch
def test_results_file_has_the_harness_keys_and_values(setup):
  prefix = setup["prefix"]
  ours, theirs = _results(setup["ours"]), _results(setup["theirs"])
  assert set(theirs) - set(ours) == _HARNESS_ONLY
  for key in ("results", "groups", "group_subtasks", "versions", "n-shot",
              "higher_is_better", "n-samples", "task_hashes"):
    _close(ours[key], theirs[key], key)
  assert set(ours["groups"]) == {prefix}
  assert set(theirs["config"]) - set(ours["config"]) == _HARNESS_ONLY_CONFIG
  for task, config in theirs["configs"].items():
    ours_config = ours["configs"][task]
    assert set(config) - set(ours_config) == _HARNESS_ONLY_TASK_CONFIG
    for key, value in ours_config.items():
      if key == "custom_dataset":  # The harness writes the function's repr.
        assert value.split(".")[-1] in value and "load" in config[key]
      elif key == "metadata":
        assert value["version"] == config[key]["version"]
      else:
        assert value == config[key], (task, key)
  for key in ("model_name", "max_length", "eot_token_id",
              "tokenizer_eos_token", "tokenizer_bos_token",
              "tokenizer_pad_token"):
    assert type(ours[key]) is type(theirs[key]), key
  assert ours["eot_token_id"] == theirs["eot_token_id"]
  assert ours["tokenizer_eos_token"] == theirs["tokenizer_eos_token"]
  # Samples: the same keys and the same per-question outcomes.
  for task in ours["group_subtasks"][prefix]:
    for a, b in zip(_samples(setup["ours"], task),
                    _samples(setup["theirs"], task)):
      assert set(a) == set(b)
      for key in ("doc_id", "doc", "target", "metrics", "doc_hash",
                  "prompt_hash", "target_hash", "acc", "acc_norm",
                  "acc_mutual_info", "filter"):
        assert a[key] == b[key], (task, key)
      assert a["arguments"] == b["arguments"]
