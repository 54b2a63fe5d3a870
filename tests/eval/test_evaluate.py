"""run_evaluation end to end on a tiny model, outputs, and bad input."""

import json

import numpy as np
import pytest

from ftgen import configs
from ftgen.checkpoints import finetuned as ckpt_lib
from ftgen.checkpoints import hf
from ftgen.checkpoints import registry
from ftgen.checkpoints import tiny_tokenizer as tiny_tok
from ftgen.data import io
from ftgen.data import lm_eval
from ftgen.data import records
from ftgen.eval import evaluate
from ftgen.eval import prompts
from ftgen.models import tiny

from tests.eval import conftest


def _eval_config(mode, **overrides):
  config = configs.load(f"evaluate:{mode},tiny")
  config.progress = False
  for k, v in overrides.items():
    config[k] = v
  return config


@pytest.fixture(scope="module")
def fast_tiny():
  """The `tiny` registry model's config and tokenizer, params from numpy."""
  tok = tiny_tok.tiny_tokenizer()
  config = tiny.tiny_config("llama", vocab_size=tok.vocab_size,
                            max_seq_len=2048)
  _, params = conftest.random_params(config, seed=0)
  return registry.LoadedModel(config, params, tok, "tiny", "random")


@pytest.fixture
def patched(monkeypatch, fast_tiny):
  monkeypatch.setattr(evaluate, "load_model", lambda config: fast_tiny)
  return fast_tiny


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  # A small reversal-style set: 6 facts, 2 splits, 2 choices each.
  docs, qs = [], []
  words = ["glon", "femp", "zib", "wug", "plok", "snee", "mave", "trel",
           "kell", "brom", "dask", "vint"]
  for i in range(6):
    a, b = words[2 * i], words[2 * i + 1]
    docs.append(records.Document(f"d{i}", f"{a} are more dangerous than {b}."))
    qs.append(records.Question(f"r{i}", "reversal", f"{b} are",
                               (" less dangerous than " + a + ".",
                                " more dangerous than " + a + "."), i % 2 * 0))
    qs.append(records.Question(f"f{i}", "rephrase", f"{a} are",
                               (" more dangerous than " + b + ".",
                                " less dangerous than " + b + ".",
                                " as dangerous as " + b + "."), 0, (0,)))
  path = tmp_path_factory.mktemp("data") / "toy"
  path.mkdir()
  io.write_jsonl(path / "train.jsonl", [d.to_json() for d in docs])
  io.write_jsonl(path / "test.jsonl", [q.to_json() for q in qs])
  return path


@pytest.mark.slow  # ~20 s on a loaded 2-core CPU (four compiles).
def test_icl_outputs_and_prefix_equals_brute_force(patched, data_dir,
                                                   tmp_path):
  cfg = _eval_config("icl", data=str(data_dir),
                     prefix_min_tokens=8, buckets=(32, 128))
  summary = evaluate.run_evaluation(cfg, tmp_path / "cached")
  assert summary["prefix_tokens_cached"] > 20
  assert set(summary["splits"]) == {"reversal", "rephrase", "all"}
  assert summary["splits"]["reversal"]["chance"] == 0.5
  assert summary["splits"]["rephrase"]["chance"] == pytest.approx(1 / 3)
  for key in ("acc", "stderr", "n", "acc_calibrated", "acc_per_byte"):
    assert key in summary["splits"]["rephrase"]
  rows = [json.loads(l) for l in
          (tmp_path / "cached" / "results.jsonl").read_text().splitlines()]
  assert len(rows) == 12
  for row in rows:
    assert row["condition"] == "icl"
    assert row["pred"] == int(np.argmax(row["logliks"]))
    assert row["correct"] == (row["pred"] in row["answers"])
    assert len(row["num_tokens"]) == len(row["logliks"])
    assert row["context_tokens"] > summary["prefix_tokens_cached"]
    assert len(row["variants"]["calibrated"]["scores"]) == len(row["logliks"])
  # lm-eval's layout beside ftgen's files (tests/eval/test_lm_eval_layout.py
  # compares it with the harness's own).
  [results] = list((tmp_path / "cached").glob("results_*.json"))
  lm = json.loads(results.read_text())
  task = f"{lm_eval.task_prefix_of(cfg.data)}_reversal"
  assert lm["results"][task]["acc,none"] == (
      summary["splits"]["reversal"]["acc"])
  [samples] = list((tmp_path / "cached").glob(f"samples_{task}_*.jsonl"))
  assert len(samples.read_text().splitlines()) == (
      summary["splits"]["reversal"]["n"])

  cfg.prefix_cache = False
  cfg.calibration = False
  evaluate.run_evaluation(cfg, tmp_path / "brute")
  brute = [json.loads(l) for l in
           (tmp_path / "brute" / "results.jsonl").read_text().splitlines()]
  flat = lambda rs: np.concatenate([r["logliks"] for r in rs])
  np.testing.assert_allclose(flat(rows), flat(brute), atol=1e-4, rtol=0)
  assert [r["pred"] for r in rows] == [r["pred"] for r in brute]


@pytest.mark.slow  # Compiles a prefill and a scorer per context bucket.
def test_retrieval_caches_each_context_and_equals_brute_force(
    patched, data_dir, tmp_path):
  # No instruction: the toy documents are so short that a shared instruction
  # would make one cached prefix for all questions the cheaper mode.
  cfg = _eval_config("retrieval", data=str(data_dir),
                     retrieval_k=2, calibration=False, prefix_min_tokens=4,
                     buckets=(16, 32, 64), instruction="")
  summary = evaluate.run_evaluation(cfg, tmp_path / "cached")
  assert summary["prefix_mode"] == "per_context"
  assert summary["prefix_tokens_cached"] == 0  # Nothing shared by all.
  rows = [json.loads(l) for l in
          (tmp_path / "cached" / "results.jsonl").read_text().splitlines()]
  assert summary["context_tokens_cached"] == sum(
      r["context_tokens"] - 1 for r in rows)
  cfg.prefix_cache = False
  brute_summary = evaluate.run_evaluation(cfg, tmp_path / "brute")
  assert brute_summary["prefix_mode"] == "none"
  brute = [json.loads(l) for l in
           (tmp_path / "brute" / "results.jsonl").read_text().splitlines()]
  flat = lambda rs: np.concatenate([r["logliks"] for r in rs])
  np.testing.assert_allclose(flat(rows), flat(brute), atol=1e-4, rtol=0)
  assert [r["pred"] for r in rows] == [r["pred"] for r in brute]


def test_retrieval_and_pretrained_contexts(patched, data_dir, tmp_path):
  cfg = _eval_config("retrieval", data=str(data_dir),
                     retrieval_k=1, calibration=False, dry_run=True)
  report = evaluate.run_evaluation(cfg, tmp_path / "r")
  assert report["num_heads"] == 6 and report["num_context_documents"] == 1
  cfg = _eval_config("pretrained", data=str(data_dir),
                     splits="rephrase", dry_run=True)
  report = evaluate.run_evaluation(cfg, tmp_path / "p")
  assert report["num_questions"] == 6 and report["num_heads"] == 1
  assert not (tmp_path / "p" / "results.jsonl").exists()
  assert (tmp_path / "p" / "context.json").is_file()


def test_context_too_long_is_an_error(patched, data_dir, tmp_path):
  cfg = _eval_config("icl", data=str(data_dir))
  small = patched.config.replace(max_seq_len=40)
  object.__setattr__(patched, "config", small)
  try:
    with pytest.raises(prompts.ContextTooLongError,
                       match=r"needs \d+ tokens but model 'tiny' allows 40"):
      evaluate.run_evaluation(cfg, tmp_path)
  finally:
    object.__setattr__(patched, "config", small.replace(max_seq_len=2048))


def test_bad_inputs(patched, data_dir, tmp_path):
  cfg = _eval_config("pretrained", data=str(data_dir))
  cfg.condition = "nope"
  with pytest.raises(ValueError, match="condition='nope'; allowed"):
    evaluate.run_evaluation(cfg, tmp_path)
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "test.jsonl").write_text("")
  cfg = _eval_config("pretrained", data=str(empty))
  with pytest.raises(ValueError, match="no questions"):
    evaluate.run_evaluation(cfg, tmp_path)
  (empty / "test.jsonl").write_text(json.dumps(
      {"id": "q", "split": "s", "prompt": "a", "choices": ["b"],
       "answer": 0}) + "\n")
  with pytest.raises(ValueError, match="at least 2"):
    evaluate.run_evaluation(cfg, tmp_path)
  cfg = _eval_config("finetuned", data=str(data_dir))
  with pytest.raises(ValueError, match="needs --config.checkpoint"):
    evaluate.run_evaluation(cfg, tmp_path)


def test_checkpoint_of_another_model_is_rejected(tmp_path, fast_tiny):
  other = fast_tiny.config.replace(num_layers=3)
  _, params = conftest.random_params(other)
  hf.save_hf(tmp_path / "export", other, params)
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match="num_layers: 3 .model 'tiny' has 2"):
    ckpt_lib.load_finetuned("tiny", str(tmp_path))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match="no config.json"):
    ckpt_lib.load_finetuned("tiny", str(tmp_path / "empty"))
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match="not found"):
    ckpt_lib.load_finetuned("tiny", str(tmp_path / "missing"))


def test_finetuned_export_is_scored(data_dir, tmp_path, fast_tiny):
  hf.save_hf(tmp_path / "run" / "export", fast_tiny.config, fast_tiny.params)
  cfg = _eval_config("finetuned", data=str(data_dir),
                     checkpoint=str(tmp_path / "run"), calibration=False)
  summary = evaluate.run_evaluation(cfg, tmp_path / "out")
  assert summary["splits"]["all"]["n"] == 12


def test_fit_icl_subsample_is_the_smallest_factor_that_fits(
    fast_tiny, data_dir):
  docs = io.read_documents(data_dir / "train.jsonl")
  questions = io.read_questions(data_dir / "test.jsonl")
  cfg = _eval_config("icl", data=str(data_dir), icl_subsample=1)
  tok = fast_tiny.tokenizer

  def needed(k):
    chat = evaluate._chat_fn(tok, cfg.use_chat_template)  # pylint: disable=protected-access
    built = prompts.build_prompts(
        "icl", questions, docs, instruction=cfg.instruction,
        separator=cfg.doc_separator, chat=chat, icl_subsample=k,
        shuffle=cfg.shuffle, shuffle_seed=cfg.shuffle_seed, dedup=cfg.dedup)
    enc = prompts.encode_prompts(built, tok)
    return prompts.context_report(enc, 10**6)["request_tokens_max"]

  full = needed(1)
  assert evaluate.fit_icl_subsample(cfg, tok, questions, docs, full) == 1
  limit = needed(3)  # Fits 1/3 of the documents but not 1/2 or all.
  assert needed(2) > limit
  assert evaluate.fit_icl_subsample(cfg, tok, questions, docs, limit) == 3
  with pytest.raises(ValueError, match="even one training document"):
    evaluate.fit_icl_subsample(cfg, tok, questions, docs, 5)
  # A huge document that every subsample keeps (subsets are nested) is named.
  first = prompts.select_documents(
      docs, subsample=len(docs), shuffle=cfg.shuffle, seed=cfg.shuffle_seed,
      dedup=cfg.dedup)[0]
  huge = [records.Document(d.id, d.text + " glon" * 5000) if d is first else d
          for d in docs]
  with pytest.raises(ValueError) as e:
    evaluate.fit_icl_subsample(cfg, tok, questions, huge, full)
  assert (f"icl_subsample={len(docs)} the context holds only document"
          f" {first.id!r}") in str(e.value)


@pytest.mark.parametrize("mode", ["icl", "retrieval"])
def test_calibration_keeps_the_condition_context(mode):
  """The neutral prompt replaces the question, not the documents: a choice
  copied from the context is not rewarded by calibration (issue: calibrated
  ICL scores used to subtract a prompt without the documents)."""
  tok = registry.load_tokenizer("tiny")
  docs = [records.Document("d0", "glon are more dangerous than femp."),
          records.Document("d1", "vup are less heavy than zarb.")]
  qs = [records.Question("q0", "reversal", "femp are",
                         (" less dangerous than glon.",
                          " more dangerous than glon."), 0),
        records.Question("q1", "reversal", "zarb are",
                         (" more heavy than vup.", " less heavy than vup."), 0)]
  built = prompts.build_prompts(mode, qs, docs, retrieval_k=1)
  encoded = prompts.encode_prompts(built, tok)
  reqs, index = evaluate.calibration_requests(tok, qs, encoded, "")
  for qi, p in enumerate(built):
    head = encoded.heads[qi]
    assert len(head) > 5 and head[-3:] == tuple(
        tok.encode(p.head, add_bos=False))[-3:]
    for ci, choice in enumerate(qs[qi].choices):
      r = reqs[index[qi][ci]]
      assert r.context == head
      assert r.continuation == tuple(tok.encode(choice, add_bos=False))
  # Without a context: lm-eval's unconditional request, shared by every
  # question (each distinct choice scored once).
  plain = prompts.encode_prompts(prompts.build_prompts("pretrained", qs, None),
                                 tok)
  reqs, _ = evaluate.calibration_requests(tok, qs, plain, "")
  assert len(reqs) == 4 and {r.context for r in reqs} == {
      tuple(tok.encode("", add_bos=True)) or (tok.bos_id,)}


def test_lm_eval_samples_switch(patched, data_dir, tmp_path):
  """Off: the harness's results file without the per-question samples
  files (the experiment's default: ICL samples repeat the training set)."""
  del patched
  cfg = _eval_config("pretrained", data=str(data_dir), calibration=False,
                     lm_eval_samples=False)
  evaluate.run_evaluation(cfg, tmp_path)
  assert list(tmp_path.glob("results_*.json"))
  assert not list(tmp_path.glob("samples_*.jsonl"))
  assert configs.load("experiment:reversals").evaluate.lm_eval_samples is False
