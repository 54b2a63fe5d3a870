"""In-context data augmentation, local and global.

Why and how it is checked: docs/design.md#purpose and #reliability.

local: for each training sentence (or document, `unit`), prompt the model
with worked examples of restatements and ask for several restatements.
global: put the training documents in context (a seeded subsample when they
exceed `max_context_tokens`), then for each document ask for the inferences
linking it with the rest.

Both build every prompt as shared head + per-item tail: the head (chat
header, instructions, worked examples and, for global, the whole in-context
training set) is prefilled once into a prefix cache that every row of every
batch reads; each row holds only its item and the answer cue. Generations
go through `postprocess.clean`; the leakage guard is asserted on every
prompt; the result is a dataset directory whose train.jsonl holds the
augmentations (provenance in `meta`) plus report.json.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from typing import Any, Callable, Sequence

from etils import epath

from ftgen.augment import postprocess
from ftgen.augment import prompts
from ftgen.checkpoints import registry as model_registry
from ftgen.checkpoints import sources
from ftgen.checkpoints import tokenizer as tokenizer_lib
from ftgen.data import checks
from ftgen.data import io
from ftgen.data import records
from ftgen.data import registry
from ftgen.data import rng
from ftgen.data import splitting
from ftgen.data import workdir as workdir_lib
from ftgen.models import flops as flops_lib
from ftgen.models.decoder import Decoder
from ftgen.parallel import distributed
from ftgen.parallel import mesh as mesh_lib
from ftgen.sample import sampler as sampler_lib
from ftgen.train import tiny_writer

UNITS = ("sentence", "document")
# Marks where the per-item text goes while the head is split off.
_SLOT = "\u27e6FTGEN_ITEM\u27e7"
Log = Callable[[str], None]


@dataclasses.dataclass
class Request:
  """One row to sample: an item's prompt tail and where it came from."""

  source_id: str
  prompt: str  # The full prompt text (head + tail) as the model sees it.
  tail_ids: list[int]
  sample_index: int
  row_id: int


@dataclasses.dataclass
class PromptParts:
  """A prompt split into a shared head and a per-item tail template."""

  head: str  # Ends without whitespace (so the tail tokenizes naturally).
  tail: str  # Contains _SLOT; starts with the whitespace cut off the head.

  def fill(self, item: str) -> tuple[str, str]:
    """(full prompt, tail text) for one item."""
    tail = self.tail.replace(_SLOT, item)
    return self.head + tail, tail


def check_config(config) -> None:
  """Clear errors for bad settings (the dotted key and the allowed values)."""
  if config.strategy not in prompts.REQUIRED_FIELDS:
    raise ValueError(f"config.strategy={config.strategy!r}; allowed:"
                     f" {', '.join(prompts.REQUIRED_FIELDS)}")
  prompts.validate_template(config.template, config.strategy, "config.template")
  if config.unit not in UNITS:
    raise ValueError(
        f"config.unit={config.unit!r}; allowed: {', '.join(UNITS)}")
  for key in ("num_samples", "max_new_tokens", "batch_size"):
    if int(config[key]) < 1:
      raise ValueError(f"config.{key} must be >= 1, got {config[key]}")
  if int(config.max_items) < 0:
    raise ValueError("config.max_items must be >= 0 (0: every item), got"
                     f" {config.max_items}")
  if config.strategy == "global" and int(config.max_context_tokens) < 1:
    raise ValueError("config.max_context_tokens must be >= 1, got"
                     f" {config.max_context_tokens}")


def sampling_params(config) -> sampler_lib.SamplingParams:
  return sampler_lib.SamplingParams(
      max_new_tokens=int(config.max_new_tokens),
      temperature=float(config.temperature), top_k=int(config.top_k),
      top_p=float(config.top_p))


# --- items and context ------------------------------------------------------


def local_items(documents: Sequence[records.Document],
                unit: str) -> list[tuple[str, str]]:
  """(source id, text) per distinct sentence or document, in order."""
  items, seen = [], set()
  for doc in documents:
    texts = (splitting.split_sentences(doc.text) if unit == "sentence"
             else [doc.text])
    for k, text in enumerate(texts):
      text = text.strip()
      if not text or text in seen:
        continue
      seen.add(text)
      items.append((f"{doc.id}#s{k}" if unit == "sentence" else doc.id, text))
  return items


def subsample(items: list, max_items: int, seed: int, name: str) -> list:
  """A seeded subset of `max_items` in the original order (0: all)."""
  if not max_items or len(items) <= max_items:
    return list(items)
  keep = sorted(rng.stream(seed, name).permutation(len(items))[:max_items])
  return [items[i] for i in keep]


def select_context(documents: Sequence[records.Document],
                   token_counts: Sequence[int], budget: int,
                   seed: int) -> list[records.Document]:
  """The documents that go in context: all if they fit, else a seeded subset.

  A subset is drawn by a seeded shuffle, adding documents while they fit
  (`token_counts` include each document's separator), then put back in
  their original order.
  """
  if not documents:
    raise ValueError("no training documents to put in context")
  if sum(token_counts) <= budget:
    return list(documents)
  if min(token_counts) > budget:
    raise ValueError(
        f"config.max_context_tokens={budget} cannot fit even one training"
        f" document (the shortest has {min(token_counts)} tokens); raise it")
  chosen, used = [], 0
  for i in rng.stream(seed, "augment/context").permutation(len(documents)):
    if used + token_counts[i] <= budget:
      chosen.append(int(i))
      used += token_counts[i]
  return [documents[i] for i in sorted(chosen)]


# --- prompts -----------------------------------------------------------------


def prompt_parts(tokenizer, filled: str,
                 use_chat_template: bool) -> PromptParts:
  """Wraps a template filled with the slot marker and splits it at the slot."""
  text = filled
  if use_chat_template and getattr(tokenizer, "chat_template", None):
    text = tokenizer.apply_chat_template([{"role": "user", "content": filled}])
  if _SLOT not in text:
    raise ValueError("the chat template dropped the prompt text")
  head, tail = text.split(_SLOT, 1)
  stripped = head.rstrip()
  return PromptParts(stripped, head[len(stripped):] + _SLOT + tail)


def _echo_text(template: str, strategy: str) -> str:
  """The template's own text (instructions, worked examples)."""
  return template.format(**{f: "" for f in prompts.REQUIRED_FIELDS[strategy]})


# --- the run -----------------------------------------------------------------


def augment(
    config, documents: Sequence[records.Document],
    questions: Sequence[records.Question], loaded,
    log: Log = print
) -> tuple[list[postprocess.Augmentation], dict[str, Any], list[dict]]:
  """Generates, cleans and checks augmentations.

  Returns:
    (kept augmentations, report, raw generations with provenance).

  Args:
    config: a `configs/augment.py` ConfigDict.
    documents: the training documents (the only text prompts may hold).
    questions: the test questions (for the leakage guard and overlap count).
    loaded: a `ftgen.checkpoints.registry.LoadedModel`.
    log: progress lines.
  """
  start = time.perf_counter()
  check_config(config)
  documents = list(documents)
  if not documents:
    raise ValueError("no training documents to augment (empty document set)")
  tok = loaded.tokenizer
  strategy, seed = config.strategy, int(config.seed)
  chat = bool(config.use_chat_template) and bool(tok.chat_template)
  report: dict[str, Any] = {"dataset": config.dataset, "strategy": strategy,
                            "model": loaded.name, "seed": seed,
                            "chat_template": chat}

  # Items and the shared head.
  if strategy == "local":
    all_items = local_items(documents, config.unit)
    items = subsample(all_items, int(config.max_items), seed, "augment/items")
    filled = prompts.local_prompt(config.template, _SLOT)
    report["unit"] = config.unit
  else:
    counts = [len(ids) + 2 for ids in
              tok.encode_batch([d.text.strip() for d in documents],
                               add_bos=False)]
    context = select_context(documents, counts,
                             int(config.max_context_tokens), seed)
    all_items = [(d.id, d.text.strip()) for d in documents]
    items = subsample(all_items, int(config.max_items), seed, "augment/items")
    filled = prompts.global_prompt(config.template,
                                   [d.text for d in context], _SLOT)
    report["context"] = {"documents_in_context": len(context),
                         "documents_total": len(documents),
                         "subsampled": len(context) < len(documents)}
  parts = prompt_parts(tok, filled, chat)
  # The formatting rule of training and evaluation: start tokens per the
  # tokenizer (a chat template that spells out BOS keeps just one).
  head_ids = list(tokenizer_lib.encode_head(tok, parts.head))
  report["prefix_tokens"] = len(head_ids)
  # Room for an item's tail, as the sampler pads prompt and answer
  # (ftgen/sample/sampler.py: Sampler.generate); an item that cannot fit the
  # model's context is skipped and counted, so one huge document does not
  # abort the run (docs/design.md#reliability).
  room = (int(loaded.config.max_seq_len) - len(head_ids) - sampler_lib.bucket(
      int(config.max_new_tokens), sampler_lib.OUTPUT_BUCKETS))

  # One request per (item, sample); the guard checks every prompt.
  requests: list[Request] = []
  too_long: list[str] = []
  for i, (source_id, text) in enumerate(items):
    prompt, tail = parts.fill(text)
    tail_ids = tok.encode(tail, add_bos=False)
    if sampler_lib.bucket(len(tail_ids)) > room:
      too_long.append(source_id)
      continue
    prompts.assert_only_training_text(prompt, config.template, documents,
                                      questions)
    for j in range(int(config.num_samples)):
      requests.append(Request(source_id, prompt, tail_ids, j,
                              i * int(config.num_samples) + j))
  report["items"] = {"total": len(all_items),
                     "used": len(items) - len(too_long),
                     "skipped_too_long": len(too_long),
                     "skipped_ids": too_long[:20]}
  if too_long:
    log(f"[warn] {strategy} augmentation: skipped {len(too_long)} of"
        f" {len(items)} items too long for {loaded.name}'s"
        f" {loaded.config.max_seq_len}-token context (shared prefix"
        f" {len(head_ids)} tokens + max_new_tokens"
        f" {config.max_new_tokens}): {', '.join(too_long[:5])}"
        + (" ..." if len(too_long) > 5 else ""))
  report["prompts"] = len(requests)

  # Each batch's rows are split over every device of every process.
  smp = sampler_lib.Sampler(
      Decoder(loaded.config), loaded.params,
      eos_ids=tok.eos_ids, tokenizer=tok,
      stop_strings=tuple(config.stop_strings), pad_id=tok.pad_id,
      mesh=mesh_lib.data_mesh())
  t0 = time.perf_counter()
  # Nothing fits: no prefill (the head alone may exceed the context); the
  # result is empty and says why (report["items"]).
  prefix = smp.make_prefix(head_ids) if head_ids and requests else None
  report["prefix_seconds"] = round(time.perf_counter() - t0, 3)
  log(f"{strategy} augmentation: {len(items)} items x {config.num_samples}"
      f" samples; shared prefix {len(head_ids)} tokens"
      f" ({report['prefix_seconds']:.1f} s)")

  # Similar lengths share a batch (less padding, fewer length buckets).
  order = sorted(range(len(requests)), key=lambda r: len(requests[r].tail_ids))
  sp = sampling_params(config)
  bs = int(config.batch_size)
  texts: dict[int, str] = {}
  finish: collections.Counter = collections.Counter()
  num_batches = -(-len(order) // bs)
  for b in range(num_batches):
    batch = [requests[r] for r in order[b * bs:(b + 1) * bs]]
    outs = smp.generate([r.tail_ids for r in batch], sp, seed=seed,
                        row_ids=[r.row_id for r in batch], prefix=prefix,
                        batch_size=bs)
    for r, c in zip(batch, outs):
      texts[r.row_id] = c.text
      finish[c.finish] += 1
    s = smp.stats
    log(f"batch {b + 1}/{num_batches}: {s.generated_tokens} tokens,"
        f" {s.tokens_per_s:.1f} tokens/s")

  generations = [
      (texts[r.row_id], r.source_id, r.prompt, r.sample_index, strategy)
      for r in requests]
  kept, clean_report = postprocess.clean(
      generations, [d.text for d in documents],
      echo_texts=[_echo_text(config.template, strategy)],
      min_words=int(config.min_words))
  report["finish"] = dict(sorted(finish.items()))
  report["postprocess"] = clean_report.to_json()
  report["test_overlap"] = checks.test_overlap([a.text for a in kept],
                                              questions)
  report["correctness"] = correctness(config.dataset, documents, kept)
  report["sampling"] = sampler_lib.describe(smp)
  report["tokens_per_s"] = report["sampling"]["tokens_per_s"]
  # The run's cost, for the experiment's cost ledger.
  report["tokens"] = {"prefix_tokens": len(head_ids),
                      "prompts": len(requests),
                      "prompt_tokens": smp.stats.prompt_tokens,
                      "generated_tokens": smp.stats.generated_tokens}
  report["flops"] = flops_lib.augmentation_flops(loaded.config,
                                                 **report["tokens"])
  report["seconds"] = round(time.perf_counter() - start, 3)
  report["examples"] = [{"text": a.text, "source_id": a.source_id}
                        for a in kept[:10]]
  raw = [{"row_id": r.row_id, "source_id": r.source_id,
          "sample_index": r.sample_index,
          "prompt_hash": postprocess.prompt_hash(r.prompt),
          "text": texts[r.row_id]} for r in requests]
  return kept, report, raw


def correctness(dataset: str, documents: Sequence[records.Document],
                kept: Sequence[postprocess.Augmentation]) -> dict[str, Any]:
  """Share of kept statements the dataset's checker judges correct."""
  spec = registry.SPECS.get(dataset)
  check = (spec.checker(documents)
           if spec is not None and spec.checker is not None else None)
  if check is None:
    return {"checker": None, "note": f"no checker for dataset {dataset!r}"}
  restates = spec.restatement_checker(documents)
  verdicts = collections.Counter()
  new_correct = 0
  for a in kept:
    v = check(a.text)
    verdicts[{True: "correct", False: "wrong", None: "unjudged"}[v]] += 1
    if v and not restates(a.text):
      new_correct += 1
  judged = verdicts["correct"] + verdicts["wrong"]
  return {"checker": dataset, "statements": len(kept), "judged": judged,
          "correct": verdicts["correct"], "wrong": verdicts["wrong"],
          "unjudged": verdicts["unjudged"],
          "share_correct": (round(verdicts["correct"] / judged, 4) if judged
                            else None),
          "new_correct": new_correct}


def run(config, data_dir: epath.PathLike, out_dir: epath.PathLike,
        *, loaded=None, log: Log = print) -> dict[str, Any]:
  """Augments the dataset in `data_dir`; writes the augmented set to `out_dir`.

  Under `jax.distributed` every process calls it (the sampling is sharded
  over all devices) and process 0 writes `out_dir`; on return every process
  sees it.

  `out_dir` gets train.jsonl (one augmentation per line, provenance in
  `meta`), an empty test.jsonl, manifest.json, README.md, report.json and
  generations.jsonl (every raw generation with its provenance).
  """
  check_config(config)
  # `out_dir` is replaced whole: a user's directory there, or an input inside
  # it, is refused before any sampling; one run at a time, its lock beside
  # it (docs/design.md#reliability).
  out_dir = workdir_lib.as_path(out_dir)
  workdir_lib.check_replaceable(out_dir)
  workdir_lib.check_inputs_outside(
      {"data_dir": str(data_dir), **config.to_dict()}, [out_dir])
  distributed.primary_first(
      lambda: workdir_lib.make_dir(out_dir.parent, "augmentation workdir"),
      "augmentation workdir made")
  with workdir_lib.locked(out_dir,
                          lock_file=out_dir.with_name(f".{out_dir.name}.lock"),
                          enabled=distributed.is_primary()):
    return _run(config, data_dir, out_dir, loaded, log)


def _run(config, data_dir: epath.PathLike, out_dir: workdir_lib.AnyPath,
         loaded, log: Log) -> dict[str, Any]:
  """`run` once `out_dir` is checked and locked."""
  # Questions are optional (your own documents); when present, the leakage
  # guard keeps them out of the prompts.
  documents, questions = io.load_dataset_dir(data_dir, need_questions=False)
  if loaded is None:
    if config.model == sources.TINY_WRITER:
      tiny_writer.ensure(log)
    loaded = model_registry.load_model(config.model, dtype=config.dtype)
  kept, report, raw = augment(config, documents, questions, loaded, log)
  report["data_dir"] = str(data_dir)
  docs = [a.to_document(i) for i, a in enumerate(kept)]
  card = {"description": (
      f"Augmentations of {config.dataset} ({strategy_name(config.strategy)})"
      f" generated by {loaded.name}; provenance (source_id, prompt_hash,"
      " sample_index, strategy) in each row's meta. See report.json.")}
  dataset = records.Dataset(
      name=f"{config.dataset}-augmented-{config.strategy}", train=docs, test=[],
      card=card, extra_files={
          "report.json":
              json.dumps(report, indent=1, ensure_ascii=False) + "\n",
          "generations.jsonl": "".join(io.dumps(row) + "\n" for row in raw)})
  # Every process sampled its share; process 0 writes what they all hold,
  # and the others return once it is on disk.
  distributed.primary_only(
      lambda: io.write_dataset(dataset, out_dir, seed=int(config.seed),
                               config=config.to_dict()),
      "augmentations written")
  path = out_dir
  pp = report["postprocess"]
  log(f"wrote {path}: {pp['kept']} augmentations kept of {pp['generated']}"
      f" statements; share correct"
      f" {report['correctness'].get('share_correct')};"
      f" {report['seconds']:.1f} s")
  return report


def strategy_name(strategy: str) -> str:
  return {
      "local": "local restatements",
      "global": "global inferences with the training set in context",
  }[strategy]
