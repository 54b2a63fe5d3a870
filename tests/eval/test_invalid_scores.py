"""A non-finite log-likelihood marks an evaluation invalid, never a score
(docs/design.md#reliability)."""

import json
import math

import jax
import numpy as np
import pytest

from ftgen import configs
from ftgen.checkpoints import registry
from ftgen.checkpoints import tiny_tokenizer
from ftgen.data import io
from ftgen.data import records
from ftgen.eval import evaluate
from ftgen.eval import metrics
from ftgen.models import tiny

from tests.eval import conftest


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  docs = [records.Document("d0", "glon are more dangerous than femp.")]
  qs = [records.Question("r0", "reversal", "femp are",
                         (" less dangerous than glon.",
                          " more dangerous than glon."), 0),
        records.Question("f0", "rephrase", "glon are",
                         (" more dangerous than femp.",
                          " less dangerous than femp.",
                          " as dangerous as femp."), 0)]
  path = tmp_path_factory.mktemp("data") / "toy"
  path.mkdir()
  io.write_jsonl(path / "train.jsonl", [d.to_json() for d in docs])
  io.write_jsonl(path / "test.jsonl", [q.to_json() for q in qs])
  return path


def _model(nan: bool) -> registry.LoadedModel:
  tok = tiny_tokenizer.tiny_tokenizer()
  config = tiny.tiny_config("llama", vocab_size=tok.vocab_size,
                            max_seq_len=256)
  _, params = conftest.random_params(config, seed=0)
  if nan:  # What a diverged fine-tune leaves: every logit NaN.
    params = jax.tree.map(lambda x: x, params)
    params["final_norm"]["scale"] = params["final_norm"]["scale"] * np.nan
  return registry.LoadedModel(config, params, tok, "tiny", "random")


def _strict(text):
  def refuse(name):
    raise ValueError(f"non-strict JSON constant {name}")
  return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("nan", [False, True])
def test_nan_logliks_mark_the_evaluation_invalid(nan, data_dir, tmp_path,
                                                 monkeypatch):
  model = _model(nan)
  assert ("final_norm" in model.params
          and "scale" in model.params["final_norm"])
  monkeypatch.setattr(evaluate, "load_model", lambda config: model)
  config = configs.load("evaluate:pretrained,tiny")
  config.progress = False
  config.data = str(data_dir)
  summary = evaluate.run_evaluation(config, tmp_path)
  saved = _strict((tmp_path / "summary.json").read_text())
  rows = [_strict(line) for line in
          (tmp_path / "results.jsonl").read_text().splitlines()]
  lm_eval_files = sorted(p.name for p in tmp_path.glob("results_*.json"))
  if not nan:
    assert "invalid" not in saved
    assert all(isinstance(r["correct"], bool) for r in rows)
    assert saved["splits"]["reversal"]["acc"] in (0.0, 1.0)
    assert len(lm_eval_files) == 1
    return
  assert summary["invalid"] == "5 of 5 log-likelihoods are not finite"
  # No lm-eval results a tool could take for scores.
  assert not lm_eval_files and not list(tmp_path.glob("samples_*.jsonl"))
  assert saved["lm_eval_layout"] == "not written: the evaluation is invalid"
  assert saved["invalid"] == summary["invalid"]
  for split in ("reversal", "rephrase", "all"):
    entry = saved["splits"][split]
    assert entry["acc"] is None and entry["stderr"] is None
    assert entry["invalid"] == summary["invalid"]
    assert not any(k.startswith("acc_") for k in entry)
  assert saved["splits"]["rephrase"]["chance"] == pytest.approx(1 / 3)
  for r in rows:
    assert r["correct"] is None and r["pred"] is None
    assert all(x is None for x in r["logliks"]) and r["variants"] == {}


def test_invalid_reason_counts_nan_and_null_of_every_row():
  rows = [{"logliks": [-1.0, -2.0]}, {"logliks": [math.nan, None, -3.0]}]
  assert metrics.invalid_reason(rows) == (
      "2 of 5 log-likelihoods are not finite")
  assert metrics.invalid_reason(rows[:1]) is None
  assert metrics.invalid_reason([{"logliks": [math.inf]}]) == (
      "1 of 1 log-likelihoods are not finite")
