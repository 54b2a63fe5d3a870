"""The evaluation entry point: `run_evaluation(config, workdir)`.

Loads a dataset directory and a model, builds one prompt per question for the
condition (pretrained, icl, retrieval, finetuned), scores every choice as a
continuation of its prompt (through a shared-prefix KV cache when all prompts
share a long head), and writes to `workdir`:

* `results.jsonl`: one row per question
  (docs/design.md#evaluation-outputs): id, split, condition, logliks,
  pred, correct, plus answers, token and byte counts, the
  normalized and calibrated variants, and the margin (best correct minus best
  wrong score, a per-item log-odds for paired comparisons);
* `summary.json`: per split acc, stderr, n, chance for every variant; when
  any log-likelihood is not finite, `"invalid": "N of M log-likelihoods are
  not finite"` and no accuracy (those rows: null logliks, pred, correct);
* `results_<time>.json` and `samples_<task>_<time>.jsonl`: the same as
  lm-evaluation-harness writes it for the dataset's exported tasks
  (`write_lm_eval_layout`);
* `context.json`: token counts of the prompts (also all a dry run writes).

Under `jax.distributed` every process calls `run_evaluation` (the scoring is
sharded over all devices) and process 0 writes the files; on return every
process sees them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import re
import time
from typing import Any, Sequence

from etils import epath
import jax
import numpy as np

from ftgen.checkpoints import finetuned as ckpt_lib
from ftgen.checkpoints import registry
from ftgen.checkpoints import tokenizer as tokenizer_lib
from ftgen.data import io as data_io
from ftgen.data import lm_eval
from ftgen.data import records
from ftgen.data import workdir as workdir_lib
from ftgen.eval import metrics
from ftgen.eval import prefix as prefix_lib
from ftgen.eval import prompts as prompts_lib
from ftgen.eval import scoring
from ftgen.models import decoder
from ftgen.parallel import distributed
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding as sharding_lib

_log = logging.getLogger(__name__)

ADD_BOS = ("auto", "yes", "no")


class EvalConfigError(ValueError):
  """A config value is invalid; the message names the key and allowed values."""


def check_config(config: Any):
  """Raises EvalConfigError (one line naming the key) for a bad setting."""
  if config.condition not in prompts_lib.CONDITIONS:
    raise EvalConfigError(
        f"config.condition={config.condition!r}; allowed:"
        f" {', '.join(prompts_lib.CONDITIONS)}")
  if not config.data:
    raise EvalConfigError("config.data is empty: give a dataset directory"
                          " (--config.data=DIR/NAME)")
  if config.add_bos not in ADD_BOS:
    raise EvalConfigError(
        f"config.add_bos={config.add_bos!r}; allowed: {', '.join(ADD_BOS)}")
  if config.condition == "finetuned" and not config.checkpoint:
    raise EvalConfigError(
        "condition 'finetuned' needs --config.checkpoint=DIR (an HF-style"
        " export directory of the fine-tuned model)")
  if config.condition != "finetuned" and config.checkpoint:
    raise EvalConfigError(
        f"config.checkpoint is set but condition is {config.condition!r};"
        " use configs/evaluate.py:finetuned")
  for key in ("batch_size", "icl_subsample", "retrieval_k", "prefill_chunk"):
    if int(config[key]) < 1:
      raise EvalConfigError(f"config.{key}={config[key]} must be >= 1")


def select_questions(questions: Sequence[records.Question],
                     splits: Sequence[str], max_per_split: int, seed: int,
                     *, key: str = "config.splits"
                     ) -> list[records.Question]:
  """The questions scored: those of `splits` (all when empty) and, when
  `max_per_split` > 0, a seeded random subset of that many per split.

  Training's evaluation and this evaluator both select with it, so the same
  settings score the same questions (in file order).

  Raises:
    EvalConfigError: naming `key` when a split is not in the test set.
  """
  if splits:
    present = sorted({q.split for q in questions})
    unknown = [s for s in splits if s not in present]
    if unknown:
      raise EvalConfigError(
          f"{key} names {unknown}; the dataset has {present}")
    questions = [q for q in questions if q.split in splits]
  questions = list(questions)
  if max_per_split > 0:
    rng = np.random.default_rng(seed)
    by_split: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
      by_split.setdefault(q.split, []).append(i)
    keep = set()
    for split in sorted(by_split):
      idx = by_split[split]
      chosen = rng.choice(len(idx), size=min(max_per_split, len(idx)),
                          replace=False)
      keep.update(idx[j] for j in chosen)
    questions = [q for i, q in enumerate(questions) if i in keep]
  return questions


def load_questions(config: Any) -> tuple[list[records.Document] | None,
                                         list[records.Question]]:
  """Dataset documents (in-context conditions only) and selected questions."""
  need_train = config.condition in ("icl", "retrieval")
  docs, questions = data_io.load_dataset_dir(config.data, need_train=need_train)
  wanted = [s.strip() for s in config.splits.split(",") if s.strip()]
  return docs, select_questions(questions, wanted,
                                int(config.max_questions_per_split),
                                config.seed)


def load_model(config: Any):
  """The model to evaluate: `config.model`, or the fine-tuned checkpoint."""
  kwargs = {"dtype": config.dtype} if config.dtype else {}
  if config.condition != "finetuned":
    return registry.load_model(config.model, **kwargs)
  return ckpt_lib.load_finetuned(config.model, config.checkpoint, **kwargs)


def _config_and_tokenizer(config: Any):
  """(ModelConfig, tokenizer) without loading params (for dry runs)."""
  if config.condition == "finetuned":
    loaded = load_model(config)
    return loaded.config, loaded.tokenizer
  tok = registry.load_tokenizer(config.model)
  model_config = ckpt_lib.base_config(config.model)
  if config.model == "tiny" or config.model.startswith("tiny:"):
    model_config = model_config.replace(max_seq_len=registry.TINY_MAX_SEQ_LEN)
  return model_config, tok


def _model_parts(loaded):
  """(Decoder, params on device once, tokenizer, mesh).

  The params are replicated on a data mesh of every device of every
  process, over which the scorer splits its rows.
  """
  # Host numpy params would be copied to the device on every jitted call.
  mesh = mesh_lib.data_mesh()
  params = sharding_lib.replicate(loaded.params, mesh)
  return decoder.Decoder(loaded.config), params, loaded.tokenizer, mesh


def _chat_fn(tokenizer, use: bool):
  if not use:
    return None
  def chat(body: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": body}], add_generation_prompt=True)
  return chat


def _add_bos(tokenizer, add_bos: str) -> bool | None:
  """`config.add_bos` as an override of the tokenizer's convention."""
  if add_bos == "yes" and tokenizer.bos_id is None:
    raise EvalConfigError("config.add_bos='yes' but the tokenizer has no BOS")
  return {"auto": None, "yes": True, "no": False}[add_bos]


def fit_icl_subsample(config: Any, tokenizer,
                      questions: Sequence[records.Question],
                      documents: Sequence[records.Document],
                      max_len: int) -> int:
  """The smallest `icl_subsample` >= `config.icl_subsample` whose ICL prompts
  fit `max_len` tokens.

  Builds and encodes the prompts exactly as `run_evaluation` does, so the
  answer is exact; the longest questions decide it.

  Raises:
    ValueError: if not even one training document fits.
  """
  add_bos = _add_bos(tokenizer, config.add_bos)
  chat = _chat_fn(tokenizer, config.use_chat_template)
  longest = sorted(questions, key=lambda q: -len(q.prompt) - max(
      len(c) for c in q.choices))[:8]

  def report(k: int) -> tuple[dict[str, Any], tuple[str, ...]]:
    prompts = prompts_lib.build_prompts(
        "icl", longest, documents, instruction=config.instruction,
        separator=config.doc_separator, chat=chat, icl_subsample=k,
        shuffle=config.shuffle, shuffle_seed=config.shuffle_seed,
        dedup=config.dedup)
    enc = prompts_lib.encode_prompts(prompts, tokenizer, add_bos=add_bos)
    return (prompts_lib.context_report(enc, max_len),
            prompts[0].documents if prompts else ())

  def fits(k: int) -> bool:
    return report(k)[0]["fits"]

  lo, hi = int(config.icl_subsample), max(len(documents), 1)
  if fits(lo):
    return lo
  smallest, ids = report(hi)
  if not smallest["fits"]:
    # The smallest context holds one document: name it (often one huge
    # document that no subsample can leave out, since subsets are nested).
    raise ValueError(
        f"even one training document does not fit the {max_len}-token"
        f" context of {config.model!r}: with icl_subsample={hi} the context"
        f" holds only document {', '.join(map(repr, ids))} and the longest"
        f" prompt needs {smallest['request_tokens_max']} tokens; shorten or"
        " remove that document, or use a model with a longer context")
  while hi - lo > 1:  # Invariant: fits(hi) and not fits(lo).
    mid = (lo + hi) // 2
    if fits(mid):
      hi = mid
    else:
      lo = mid
  return hi


def run_evaluation(config: Any, workdir: epath.PathLike) -> dict[str, Any]:
  """Evaluates one condition and writes the outputs listed above.

  Returns:
    The summary dict (also written to summary.json); for a dry run, the
    context report.
  """
  t0 = time.time()
  check_config(config)
  docs, questions = load_questions(config)
  workdir = distributed.primary_first(
      lambda: workdir_lib.make_dir(workdir, "evaluation workdir"),
      "evaluation workdir made")
  # One run per workdir; process 0 of a multi-host job takes the lock
  # (docs/design.md#reliability).
  try:
    with workdir_lib.locked(workdir, enabled=distributed.is_primary()):
      return _evaluate(config, workdir, docs, questions, t0)
  finally:
    # The others return once process 0's files are on disk (or it failed).
    distributed.barrier("evaluation written")


def _evaluate(config: Any, workdir: workdir_lib.AnyPath,
              docs: list[records.Document] | None,
              questions: list[records.Question], t0: float) -> dict[str, Any]:
  """`run_evaluation` once its inputs are read and the workdir is locked."""
  if config.dry_run:
    # Token counts need only the tokenizer and the context length.
    model_config, tok = _config_and_tokenizer(config)
  else:
    model, params, tok, mesh = _model_parts(load_model(config))
    model_config = model.config
  add_bos = _add_bos(tok, config.add_bos)
  prompts = prompts_lib.build_prompts(
      config.condition, questions, docs, instruction=config.instruction,
      separator=config.doc_separator,
      chat=_chat_fn(tok, config.use_chat_template),
      icl_subsample=config.icl_subsample, shuffle=config.shuffle,
      shuffle_seed=config.shuffle_seed, dedup=config.dedup,
      retrieval_k=config.retrieval_k, retrieval_query=config.retrieval_query)
  encoded = prompts_lib.encode_prompts(prompts, tok, add_bos=add_bos)
  report = prompts_lib.context_report(encoded, model_config.max_seq_len)
  report.update(condition=config.condition, model=config.model,
                num_questions=len(questions),
                num_context_documents=max(len(p.documents) for p in prompts))
  primary = distributed.is_primary()
  if primary:
    _write_json(workdir / "context.json", report)
  if config.dry_run:
    print(_dry_run_text(report))
    return report
  prompts_lib.check_fits(report, config.model)

  t_score = time.time()
  scored = score_encoded(
      model, params, tok, config.condition, questions, encoded,
      add_bos=add_bos,
      calibration_prompt=(config.calibration_prompt if config.calibration
                          else None),
      batch_size=config.batch_size, buckets=tuple(config.buckets),
      max_batch_tokens=config.max_batch_tokens,
      prefix_cache=config.prefix_cache,
      prefix_min_tokens=config.prefix_min_tokens,
      prefill_chunk=config.prefill_chunk, progress=config.progress,
      mesh=mesh)
  seconds_scoring = time.time() - t_score
  rows, scores = scored.rows, scored.scores
  per_split = summarize(questions, rows)
  dataset_name = workdir_lib.as_path(config.data).name
  summary = {
      "dataset": dataset_name,
      "model": config.model,
      "condition": config.condition,
      "splits": per_split,
      "context": report,
      "prefix_tokens_cached": scored.prefix_tokens_cached,
      # "shared": one prefix of all questions was cached; "per_context":
      # each question's own context, `context_tokens_cached` in all.
      "prefix_mode": scored.prefix_mode,
      "context_tokens_cached": scored.context_tokens_cached,
      "num_batches": scores.num_batches,
      "batch_shapes": [list(s) for s in scores.shapes],
      "seconds_scoring": seconds_scoring,
      "seconds_total": time.time() - t0,
  }
  reason = metrics.invalid_reason(rows)
  if reason:  # docs/design.md#reliability: a mark, never a number.
    summary["invalid"] = reason
    _log.warning("%s evaluation is invalid: %s", config.condition, reason)
    # lm-eval's layout has no invalid mark: no file rather than "None"s
    # that a tool reading it would take for scores.
    summary["lm_eval_layout"] = "not written: the evaluation is invalid"
  if not primary:
    return summary  # Process 0 writes the files.
  write_results(workdir / "results.jsonl", rows)
  _write_json(workdir / "summary.json", summary)
  if not reason:
    write_lm_eval_layout(workdir, config, questions, prompts, rows, per_split,
                         tok, model_config, time.time() - t0)
  return summary


@dataclasses.dataclass
class Scored:
  """Per-question result rows and how the requests were scored."""

  rows: list[dict[str, Any]]  # results.jsonl rows, question order.
  scores: scoring.Scores
  # "shared": one prefix of all questions was cached (`prefix_tokens_cached`
  # tokens); "per_context": each question's own context
  # (`context_tokens_cached` in all); "none".
  prefix_mode: str
  prefix_tokens_cached: int = 0
  context_tokens_cached: int = 0


def score_encoded(model: Any, params: Any, tokenizer: Any, condition: str,
                  questions: Sequence[records.Question],
                  encoded: prompts_lib.Encoded, *,
                  add_bos: bool | None = None,
                  calibration_prompt: str | None = "",
                  batch_size: int = 16,
                  buckets: Sequence[int] = scoring.DEFAULT_BUCKETS,
                  max_batch_tokens: int = 0, prefix_cache: bool = True,
                  prefix_min_tokens: int = 32, prefill_chunk: int = 512,
                  progress: bool = False,
                  mesh: jax.sharding.Mesh | None = None) -> Scored:
  """Scores `encode_prompts` requests; one row per question.

  The final evaluation (`run_evaluation`) and the evaluation during
  fine-tuning (`ftgen.train.evaluate`) both score through here.

  Args:
    model, params: the decoder and its params (on device).
    tokenizer: its tokenizer (pad id; the calibration prompt's encoding).
    condition: written into every row.
    questions: the questions of `encoded`, in order.
    encoded: from `prompts_lib.encode_prompts`.
    add_bos: the BOS override the prompts were encoded with.
    calibration_prompt: also score each choice after this neutral prompt
      (lm-eval's acc_mutual_info); None skips calibration.
    batch_size, buckets, max_batch_tokens: see `scoring.make_batches`.
    prefix_cache: prefill what the requests share (`prefix_lib.choose_mode`:
      at least `prefix_min_tokens`) once, `prefill_chunk` tokens at a time.
    progress: show progress bars.
    mesh: split the rows over this mesh's batch axes
      (`scoring.score_requests`); the params already lie on it.
  """
  kwargs = dict(batch_size=batch_size, buckets=tuple(buckets),
                max_batch_tokens=max_batch_tokens, pad_id=tokenizer.pad_id,
                progress=progress, mesh=mesh)
  cache = dict(prefix_cache=prefix_cache, prefix_min_tokens=prefix_min_tokens,
               prefill_chunk=prefill_chunk)
  scores, prefix_mode, cached, per_context_cached = _score(
      model, params, encoded.requests, condition, cache, kwargs)
  neutral = None
  if calibration_prompt is not None:
    reqs, index = calibration_requests(tokenizer, questions, encoded,
                                       calibration_prompt, add_bos)
    neutral_scores = _score(model, params, reqs, "calibration", cache,
                            kwargs)[0]
    neutral = [[float(neutral_scores.logliks[i]) for i in idx]
               for idx in index]
  rows = _rows(condition, questions, encoded, scores, neutral)
  return Scored(rows, scores, prefix_mode, cached, per_context_cached)


def _score(model, params, requests, desc: str, cache: dict[str, Any],
           kwargs) -> tuple[scoring.Scores, str, int, int]:
  """Scores requests, caching what they share: one prefix of all (icl),
  each context once (retrieval), or nothing (`prefix_lib.choose_mode`).

  Returns (scores, prefix mode, shared tokens cached, per-context tokens
  cached).
  """
  prefix_mode = (prefix_lib.choose_mode(requests, cache["prefix_min_tokens"])
                 if cache["prefix_cache"] else "none")
  cached, per_context_cached = 0, 0
  common = dict(chunk=cache["prefill_chunk"],
                min_prefix=cache["prefix_min_tokens"], desc=desc, **kwargs)
  if prefix_mode == "per_context":
    scores, per_context_cached = prefix_lib.score_per_context(
        model, params, requests, **common)
  elif prefix_mode == "shared":
    scores, cached = prefix_lib.score_with_prefix(model, params, requests,
                                                  **common)
  else:
    scores = scoring.score_requests(model, params, requests, desc=desc,
                                    **kwargs)
  return scores, prefix_mode, cached, per_context_cached


def write_results(path: workdir_lib.AnyPath, rows: Sequence[dict[str, Any]]):
  """Writes results.jsonl rows (also fine-tuning's eval_results.jsonl)."""
  data_io.atomic_write_text(path,
                            "".join(json.dumps(row) + "\n" for row in rows))


def summarize(questions: Sequence[records.Question],
              rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
  """Per split (and "all" for several): acc, stderr, n, chance, variants.

  When any log-likelihood is not finite, every entry has `acc` and
  `stderr` None and `invalid` (`metrics.invalid_reason`) instead of variants.
  """
  chance: dict[str, list[float]] = {}
  for q in questions:
    chance.setdefault(q.split, []).append(q.chance)
  chance_of = {s: float(np.mean(v)) for s, v in chance.items()}
  reason = metrics.invalid_reason(rows)
  if reason is None:
    return metrics.summarize(rows, chance_of)
  groups: dict[str, list[dict[str, Any]]] = {}
  for row in rows:
    groups.setdefault(row["split"], []).append(row)
  if len(groups) > 1:
    groups["all"] = list(rows)
  return {s: {"acc": None, "stderr": None, "n": len(g),
              "chance": float(np.mean([chance_of[r["split"]] for r in g])),
              "invalid": reason} for s, g in groups.items()}


def calibration_requests(tokenizer: Any,
                         questions: Sequence[records.Question],
                         encoded: prompts_lib.Encoded, prompt: str,
                         add_bos: bool | None = None
                         ) -> tuple[list[scoring.Request], list[list[int]]]:
  """Requests scoring each choice after the neutral `prompt` in its
  question's context, and each (question, choice)'s request index.

  The neutral prompt replaces the question, not the context: an ICL or
  retrieval question is calibrated against the same documents, so
  calibration removes the context's pull toward a choice (a choice copied
  from the documents is likely whatever the question) instead of rewarding
  it. Without a context (pretrained, fine-tuned) this is lm-eval's
  `acc_mutual_info` (its unconditional request). Identical (context, choice)
  pairs are scored once.
  """
  unique: dict[tuple[tuple[int, ...], str], int] = {}
  reqs, index = [], []
  for qi, q in enumerate(questions):
    head = encoded.heads[qi] if encoded.heads else None
    row = []
    for c in q.choices:
      key = (head or (), c)
      if key not in unique:
        unique[key] = len(reqs)
        reqs.append(scoring.Request(*tokenizer_lib.encode_pair(
            tokenizer, prompt, c, head=head, add_bos=add_bos)))
      row.append(unique[key])
    index.append(row)
  return reqs, index


def _rows(condition: str, questions: Sequence[records.Question],
          encoded: prompts_lib.Encoded, scores: scoring.Scores,
          neutral: list[list[float]] | None) -> list[dict[str, Any]]:
  per_q: list[list[int]] = [[] for _ in questions]
  for r, (qi, _) in enumerate(encoded.owner):
    per_q[qi].append(r)
  rows = []
  for qi, q in enumerate(questions):
    idx = per_q[qi]
    logliks = [float(scores.logliks[i]) for i in idx]
    num_tokens = [len(encoded.requests[i].continuation) for i in idx]
    num_bytes = [len(c.encode("utf-8")) for c in q.choices]
    variants = metrics.variant_scores(logliks, num_tokens, num_bytes,
                                      neutral[qi] if neutral else None)
    pred = metrics.argmax(logliks)
    row = {
        "id": q.id,
        "split": q.split,
        "condition": condition,
        "logliks": logliks,
        "pred": pred,
        "correct": pred in q.answers,
        "answers": list(q.answers),
        "margin": _finite(metrics.margin(logliks, q.answers)),
        "context_tokens": len(encoded.requests[idx[0]].context),
        "num_tokens": num_tokens,
        "num_bytes": num_bytes,
        "greedy": [bool(scores.greedy[i]) for i in idx],
        "variants": {},
    }
    for name, vals in variants.items():
      if name == "raw" or not np.isfinite(vals).all():
        continue  # No prediction from a NaN score (e.g. calibration's).
      p = metrics.argmax(vals)
      row["variants"][name] = {"scores": vals, "pred": p,
                               "correct": p in q.answers}
    if neutral is not None:
      row["neutral_logliks"] = [_finite(x) for x in neutral[qi]]
    if not np.isfinite(logliks).all():
      # argmax over NaN is a guess, not a prediction: null logliks, pred and
      # correct mark the row, and the evaluation is invalid
      # (`metrics.invalid_reason`, docs/design.md#reliability).
      row.update(logliks=[_finite(x) for x in logliks], pred=None,
                 correct=None, margin=None, variants={})
    rows.append(row)
  return rows


def write_lm_eval_layout(workdir: workdir_lib.AnyPath, config: Any,
                         questions: Sequence[records.Question],
                         prompts: Sequence[prompts_lib.QuestionPrompt],
                         rows: Sequence[dict[str, Any]],
                         per_split: dict[str, dict[str, Any]], tokenizer: Any,
                         model_config: Any, seconds: float
                         ) -> list[workdir_lib.AnyPath]:
  """Writes lm-evaluation-harness 0.4's output beside ftgen's files.

  `results_<time>.json` and one `samples_<task>_<time>.jsonl` per task, as
  the harness writes them for the dataset's exported tasks
  (ftgen/data/lm_eval.py: the task prefix, group and task configs), so the
  tools that read the harness's output read this evaluation too; the
  `results`/`groups` values are those the harness computes from the same
  per-question outcomes (tests/eval/test_lm_eval_layout.py compares).

  Returns:
    The files written.
  """
  prefix = lm_eval.task_prefix_of(config.data)
  by_split: dict[str, list[int]] = {}
  for i, q in enumerate(questions):
    by_split.setdefault(q.split, []).append(i)
  tasks = {s: lm_eval.task_name(prefix, s) for s in by_split}
  configs = {
      tasks[s]: lm_eval.task_config(
          prefix, s, any(len(questions[i].answers) > 1 for i in idx))
      for s, idx in by_split.items()}
  original: dict[str, int] = {}
  for q in data_io.read_questions(
      workdir_lib.as_path(config.data) / "test.jsonl"):
    original[q.split] = original.get(q.split, 0) + 1
  out = metrics.lm_eval_results(per_split, tasks, lm_eval.task_name(prefix),
                                configs=configs, original_sizes=original)
  neutral = config.calibration_prompt if config.calibration else None
  samples: dict[str, list[dict[str, Any]]] = {}
  for split, idx in by_split.items():
    samples[tasks[split]] = []
    for doc_id, i in enumerate(idx):
      # The context: the condition's head (documents, instruction) and the
      # question's prompt (prompts_lib.encode_prompts).
      sample = metrics.lm_eval_samples(
          rows[i], lm_eval.doc(questions[i]),
          prompts[i].head + questions[i].prompt,
          None if neutral is None else prompts[i].head + neutral)
      sample["doc_id"] = doc_id
      samples[tasks[split]].append(sample)
  model = config.checkpoint or config.model
  out["config"] = {
      "model": "ftgen",
      "model_args": {"pretrained": model, "dtype": config.dtype or None,
                     "ftgen_model": config.model,
                     "condition": config.condition},
      "batch_size": config.batch_size, "batch_sizes": [],
      "device": jax.devices()[0].platform, "use_cache": None,
      "limit": int(config.max_questions_per_split) or None,
      # Standard errors are closed-form (metrics.mean_stderr), as the
      # harness's for means; nothing is bootstrapped.
      "bootstrap_iters": None, "gen_kwargs": {},
      "random_seed": config.seed, "numpy_seed": None, "torch_seed": None,
      "fewshot_seed": None,
  }

  def token(i):
    return None if i is None else [tokenizer.token(i), str(i)]

  template = (tokenizer.chat_template if config.use_chat_template else None)
  out.update({
      "git_hash": None, "date": time.time(), "upper_git_hash": None,
      "task_hashes": {t: metrics.task_hash(s) for t, s in samples.items()},
      "model_source": "ftgen", "model_name": model,
      # The harness's sanitize_model_name.
      "model_name_sanitized": re.sub(r"[\"<>:/|\\?*\[\]]+", "__", model),
      "tokenizer_pad_token": token(tokenizer.pad_id),
      "tokenizer_eos_token": token(tokenizer.eos_ids[0]),
      "tokenizer_bos_token": token(tokenizer.bos_id),
      "eot_token_id": tokenizer.eos_ids[0],
      "max_length": model_config.max_seq_len,
      "system_instruction": None, "system_instruction_sha": None,
      "fewshot_as_multiturn": None, "chat_template": template,
      "chat_template_sha": (hashlib.sha256(template.encode()).hexdigest()
                            if template else None),
      "total_evaluation_time_seconds": str(seconds),
  })
  # The harness's file-name timestamp.
  date_id = datetime.datetime.now().isoformat().replace(":", "-")
  paths = [workdir / f"results_{date_id}.json"]
  data_io.atomic_write_json(paths[0], _clean(out), indent=2,
                            ensure_ascii=False, default=_json_default)
  for task, lines in samples.items():
    if not config.lm_eval_samples:
      break
    paths.append(workdir / f"samples_{task}_{date_id}.jsonl")
    data_io.atomic_write_text(paths[-1], "".join(
        json.dumps(_clean(s), ensure_ascii=False, default=_json_default)
        + "\n" for s in lines))
  return paths


def _dry_run_text(report: dict[str, Any]) -> str:
  fits = "fits" if report["fits"] else "DOES NOT FIT"
  return (
      f"dry run ({report['condition']}, {report['model']}):"
      f" {report['num_questions']} questions, {report['num_requests']}"
      f" (question, choice) pairs; context {report['head_tokens_max']} tokens"
      f" ({report['num_context_documents']} documents); longest prompt"
      f" {report['request_tokens_max']} of {report['max_seq_len']} allowed"
      f" tokens: {fits}")


def _finite(x: float) -> float | None:
  return float(x) if np.isfinite(x) else None


def _clean(obj: Any) -> Any:
  """NaN/inf -> None so the files are strict JSON."""
  if isinstance(obj, dict):
    return {k: _clean(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_clean(v) for v in obj]
  if isinstance(obj, float) and not np.isfinite(obj):
    return None
  return obj


def _write_json(path: workdir_lib.AnyPath, obj: Any):
  data_io.atomic_write_json(path, _clean(obj), indent=1,
                            default=_json_default)


def _json_default(x):
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  if isinstance(x, np.ndarray):
    return x.tolist()
  raise TypeError(f"not JSON serializable: {type(x).__name__}")
