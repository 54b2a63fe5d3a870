"""Real models: evaluation during fine-tuning equals launch/evaluate.py on the
export, and training and evaluation start sequences by the same rule."""

import json

import numpy as np
import pytest

from ftgen import configs
from ftgen.checkpoints import registry
from ftgen.checkpoints import sources
from ftgen.checkpoints import tokenizer as tokenizer_lib
from ftgen.data import io
from ftgen.data import splitting
from ftgen.eval import evaluate
from ftgen.train import data
from ftgen.train import evaluate as train_evaluate
from ftgen.train import loop

pytestmark = [pytest.mark.slow, pytest.mark.real_model]


def _rows(path):
  return [json.loads(line) for line in path.read_text().splitlines()]


def _finetune_config(name):
  config = configs.load("finetune:reversals")
  config.model = name
  config.data.source = configs.load("data:reversals,tiny")
  config.dtype = "float32"
  config.steps = 3
  config.batch_size = 2
  config.warmup_steps = 1
  config.lr = 1e-3
  config.lora.rank = 4
  config.data.max_len = 64
  config.data.num_buckets = 1
  config.checkpoint_every = 1000
  config.log_every = 1
  config.eval.every = 0  # Only after the last step.
  config.eval.max_questions_per_split = 2
  config.eval.batch_size = 8
  config.export_hf = True
  config.progress = False
  config.num_devices = 1
  return config


@pytest.mark.parametrize("name,adds_bos", [("smollm2-135m", False),
                                           ("gemma3-270m", True)])
def test_in_training_evaluation_equals_launch_evaluate(name, adds_bos,
                                                       tmp_path):
  try:
    tok = registry.load_tokenizer(name)
  except sources.ModelNotAvailable as e:
    pytest.skip(str(e))
  run = tmp_path / "run"
  summary = loop.finetune(_finetune_config(name), run)

  cfg = configs.load("evaluate:finetuned")
  cfg.model = name
  cfg.data = str(run / "data" / "reversals")
  cfg.checkpoint = summary["export_dir"]
  cfg.max_questions_per_split = 2
  cfg.batch_size = 8
  cfg.progress = False
  final = evaluate.run_evaluation(cfg, tmp_path / "eval")

  ours = _rows(run / "eval_results.jsonl")
  theirs = _rows(tmp_path / "eval" / "results.jsonl")
  assert [r["id"] for r in ours] == [r["id"] for r in theirs]
  assert len(ours) == 2 * len(final["splits"].keys() - {"all"})
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a["logliks"], b["logliks"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(a["neutral_logliks"], b["neutral_logliks"],
                               atol=1e-4, rtol=0)
    assert a["pred"] == b["pred"]

  # The rule: BOS first iff the tokenizer adds one (the export's tokenizer,
  # which lm-eval reads, says the same); a training document and an
  # evaluation prompt both start with the start tokens and then their own
  # text (SmolLM2: no <|im_start|> before either).
  exported = registry.load_tokenizer(f"hf:{summary['export_dir']}")
  start = tokenizer_lib.start_ids(tok)
  assert start == tokenizer_lib.start_ids(exported)
  assert tokenizer_lib.prefix_id(tok) == tokenizer_lib.prefix_id(exported)
  assert bool(start) == adds_bos
  docs, questions = io.load_dataset_dir(run / "data" / "reversals")
  example = data.tokenize_examples(
      splitting.make_examples(docs[:1], "none"), tok).tokens[0].tolist()
  doc_ids = tok.encode(docs[0].text, add_bos=False)
  assert example[:len(start)] == list(start)
  assert example[len(start):][:len(doc_ids)] == doc_ids
  request = train_evaluate.encode_questions(questions[:1], tok).requests[0]
  prompt_ids = tok.encode(questions[0].prompt, add_bos=False)
  assert list(request.tokens[:len(start) + 2]) == list(start) + prompt_ids[:2]
  if not adds_bos:  # SmolLM2: nothing before a prompt, as lm-eval scores it.
    assert request.tokens[0] != tok.bos_id
