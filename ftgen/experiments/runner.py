"""The paper's experiment end to end, as resumable stages in one workdir.

For one dataset and one model (`configs/experiment.py`):

  data -> augment (local, global, oracle) -> fine-tune per condition and
  seed -> evaluate per condition and seed -> results, summary, figure, costs

Each stage writes into its own directory under the workdir and, when it
succeeds, a marker `stages/STAGE.json` (with its wall time and FLOPs). A
stage whose marker exists is skipped; a stage directory without a marker is
partial and is redone from scratch, except fine-tuning, whose library resumes
from its last orbax checkpoint. So a killed experiment rerun with the same
command continues where it stopped. The report stage (tables, figure, costs)
is cheap and always rerun.

Under `jax.distributed` (launch/run_experiment.py --multihost) every
process runs the same stages on one shared workdir: each takes part in the
sharded sampling, training and scoring, and process 0 alone writes the
dataset, the augmentations, the stage markers and the report; the others
wait at a barrier for what they then read (`ftgen.parallel.distributed`).

Layout of WORKDIR:

  data/NAME/                      the dataset (docs/design.md#dataset-files)
  augment/{local,global,both,oracle}/train.jsonl
  finetune/COND/seed_S/           fine-tuning workdir (checkpoints, export/)
  eval/COND/seed_S/               evaluation workdir (results.jsonl, ...)
  stages/STAGE.json               completion markers
  results.{jsonl,parquet,csv} summary.json summary.md costs.json
  figure.{png,svg} config.json
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from typing import Any, Callable

from etils import epath
import jax

from ftgen import configs
from ftgen.augment import run as augment
from ftgen.checkpoints import registry
from ftgen.data import checks as data_checks
from ftgen.data import io as data_io
from ftgen.data import pipeline
from ftgen.data import records
from ftgen.data import registry as data_registry
from ftgen.data import splitting
from ftgen.data import validity as validity_lib
from ftgen.data import workdir as workdir_lib
from ftgen.eval import evaluate as eval_lib
from ftgen.experiments import conditions as conditions_lib
from ftgen.experiments import costs as costs_lib
from ftgen.experiments import plots
from ftgen.experiments import provenance
from ftgen.experiments import results as results_lib
from ftgen.experiments import stage_configs
from ftgen.experiments import stages as stages_lib
from ftgen.parallel import distributed
from ftgen.train import data as train_data
from ftgen.train import loop
from ftgen.train import validate

# Augmentation sets built from others.
_BOTH = ("local", "global")


# "paper": the dataset's own rule (ftgen.data.registry: split_mode, and
# baseline_split_mode for plain fine-tuning); the others apply to every
# fine-tuning condition.
SPLIT_MODES = ("paper",) + splitting.MODES


def split_mode(config: Any, cond: str) -> str:
  """The sentence splitting of fine-tuning condition `cond`."""
  if config.split_mode != "paper":
    return config.split_mode
  spec = data_registry.get(config.data.name)
  if cond in conditions_lib.PLAIN and spec.baseline_split_mode:
    return spec.baseline_split_mode
  return spec.split_mode


class ExperimentConfigError(ValueError):
  """A config value is invalid; the message names the key and allowed values."""


class StageUnavailable(RuntimeError):
  """A stage cannot run here (missing library, no oracle); its conditions are
  skipped with this message."""


# ------------------------------------------------------------ stage calls
# Thin wrappers around the other libraries, looked up at call time so that
# tests can replace them.


def generate_data(data_config: Any, parent: workdir_lib.AnyPath) -> workdir_lib.AnyPath:
  return pipeline.ensure_dataset(data_config, parent)


def run_augmentation(config: Any, data_dir: workdir_lib.AnyPath,
                     workdir: workdir_lib.AnyPath) -> dict[str, Any]:
  """Runs the model-written augmentation library; returns its report."""
  return augment.run(config, data_dir, workdir) or {}


def run_finetune(config: Any, workdir: workdir_lib.AnyPath) -> dict[str, Any]:
  return loop.finetune(config, workdir)


def run_evaluation(config: Any, workdir: workdir_lib.AnyPath) -> dict[str, Any]:
  return eval_lib.run_evaluation(config, workdir)


# ------------------------------------------------------------ the runner


@dataclasses.dataclass
class Outcome:
  """What `run_experiment` returns."""

  summary: dict[str, Any]
  workdir: workdir_lib.AnyPath
  figure: workdir_lib.AnyPath | None
  table: str
  ran: list[str]
  skipped_stages: list[str]
  skipped_conditions: dict[str, str]


def _check(config: Any):
  allowed = conditions_lib.CONDITIONS
  bad = [c for c in config.conditions if c not in allowed]
  if bad:
    raise ExperimentConfigError(
        f"config.conditions has {bad}; allowed: {', '.join(allowed)}")
  if not config.conditions:
    raise ExperimentConfigError("config.conditions is empty")
  if not config.seeds:
    raise ExperimentConfigError("config.seeds is empty; give e.g. (0,)")
  if config.split_mode not in SPLIT_MODES:
    raise ExperimentConfigError(
        f"config.split_mode={config.split_mode!r}; allowed:"
        f" {', '.join(SPLIT_MODES)}")
  if int(config.steps) < 0:
    raise ExperimentConfigError(
        f"config.steps={config.steps} must be >= 0 (0: config.epochs passes"
        " over each condition's training set)")
  if int(config.steps) == 0 and not float(config.epochs) > 0:
    raise ExperimentConfigError(
        f"config.epochs={config.epochs} must be > 0 when config.steps is 0")
  if not 0.0 <= float(config.augmented_ratio) < 1.0:
    raise ExperimentConfigError(
        f"config.augmented_ratio={config.augmented_ratio} must be 0 (sample"
        " the union of original and augmented examples) or lie in (0, 1)")
  overridden = stage_configs.overridden(config)
  if overridden:
    more = f" (and {len(overridden) - 1} more)" if len(overridden) > 1 else ""
    raise ExperimentConfigError(overridden[0] + more)


def _stage_error(stage: str, e: Exception) -> ExperimentConfigError:
  """A stage validator's message with its keys as the experiment's flags
  (`config.batch_size` of the evaluate stage -> `config.evaluate.batch_size`)."""
  return ExperimentConfigError(
      re.sub(r"\bconfig\.", f"config.{stage}.", str(e)))


def _check_stages(config: Any, workdir: workdir_lib.AnyPath):
  """Validates the model name and every stage config the conditions will run,
  each with its stage's own validator, before any stage
  (docs/reliability.md#validation-before-work)."""
  for key in ("model", "augment_model"):
    if key == "augment_model" and not config.augment_model:
      continue
    try:
      registry.validate_name(config[key])
    except ValueError as e:
      raise ExperimentConfigError(f"config.{key}: {e}") from e
  if (config.data_dir
      and not workdir_lib.as_path(config.data_dir).is_dir()):
    raise ExperimentConfigError(
        f"config.data_dir={config.data_dir!r} is not a directory; give a"
        " dataset directory (train.jsonl, test.jsonl) or leave it empty")
  data_dir = config.data_dir or str(workdir / "data" / config.data.name)
  seed = int(config.seeds[0])
  kinds = {conditions_lib.AUGMENTATION.get(c) for c in config.conditions}
  for kind in _BOTH:
    if kind in kinds or "both" in kinds:
      try:
        augment.check_config(
            stage_configs.augment_config(config, kind, data_dir))
      except ValueError as e:
        raise _stage_error(f"augment_{kind}", e) from e
  if any(c in conditions_lib.AUGMENTATION for c in config.conditions):
    try:
      validate.check_config(stage_configs.finetune_config(
          config, seed=seed, data_dir=data_dir, augmented_path="",
          steps=max(1, int(config.steps)),
          split_mode=split_mode(config, "finetune")))
    except ValueError as e:
      raise _stage_error("finetune", e) from e
  for mode in sorted({conditions_lib.EVAL_MODE[c] for c in config.conditions}):
    # Any path: the export exists only once its fine-tuning has run.
    checkpoint = (str(workdir / "finetune" / "export")
                  if mode == "finetuned" else "")
    try:
      eval_lib.check_config(stage_configs.eval_config(
          config, mode=mode, seed=seed, data_dir=data_dir,
          checkpoint=checkpoint))
    except ValueError as e:
      raise _stage_error("evaluate", e) from e


def _write_docs(path: workdir_lib.AnyPath, texts: list[str], prefix: str):
  if not distributed.is_primary():
    return  # Process 0 writes the shared workdir.
  with data_io.atomic_path(path) as tmp:
    data_io.write_jsonl(tmp, ({"id": f"{prefix}-{i:05d}", "text": t}
                              for i, t in enumerate(texts)))


def _find_augmented(outdir: workdir_lib.AnyPath) -> workdir_lib.AnyPath:
  """The augmented documents written by the augmentation library."""
  for name in ("augmented.jsonl", "train.jsonl"):
    if (outdir / name).is_file():
      return outdir / name
  if workdir_lib.is_remote(outdir):  # No recursive glob on an object store.
    found = [outdir / f for f in workdir_lib.remote_files(outdir)
             if f.endswith(".jsonl")]
  else:
    found = sorted(outdir.rglob("*.jsonl"))
  if not found:
    raise StageUnavailable(f"augmentation wrote no JSONL under {outdir}")
  return found[0]


class _Experiment:
  """State shared by the stages of one `run_experiment` call."""

  def __init__(self, config: Any, workdir: workdir_lib.AnyPath,
               log: Callable[[str], None]):
    self.c = config
    self.workdir = workdir
    self.log = log
    self.stages = stages_lib.Stages(workdir, log)
    self.skipped: dict[str, str] = {}
    self.model_config = None
    self.dataset_dir: workdir_lib.AnyPath | None = None
    self.questions: list[records.Question] = []
    self.documents: list[records.Document] = []
    self.aug_paths: dict[str, workdir_lib.AnyPath] = {}
    # Fine-tuning condition -> steps, examples, epochs, split mode.
    self.plan: dict[str, dict[str, Any]] = {}

  # -- model facts for the cost ledger
  def load_model_config(self):
    try:
      self.model_config = registry.model_config(self.c.model)
    except Exception as e:  # pylint: disable=broad-except
      self.log(f"cost ledger: no model config for {self.c.model!r} ({e});"
               " FLOPs omitted")

  # -- data
  def data(self):
    c = self.c
    if c.data_dir:
      self.dataset_dir = workdir_lib.as_path(c.data_dir)
    else:
      parent = self.workdir / "data"
      self.dataset_dir = parent / c.data.name
      # Process 0 generates; the others then find its dataset.
      self.stages.run("data", self.dataset_dir, lambda: {"path": str(
          distributed.primary_first(lambda: generate_data(c.data, parent),
                                    "dataset generated"))})
    # Your own documents may come without questions.
    self.documents, self.questions = data_io.load_dataset_dir(
        self.dataset_dir, need_questions=False)

  def check_max_len(self):
    """Fails before the costly stages when a training example is too long.

    Augmentations are checked by the fine-tuning batcher once they exist.
    """
    if not any(cond in conditions_lib.AUGMENTATION
               for cond in self.c.conditions):
      return
    data_cfg = self.c.finetune.data
    modes = {split_mode(self.c, cond) for cond in self.c.conditions
             if cond in conditions_lib.AUGMENTATION}
    for mode in sorted(modes):
      pool = train_data.tokenize_examples(
          splitting.make_examples(self.documents, mode),
          registry.load_tokenizer(self.c.model),
          append_eos=data_cfg.append_eos)
      # Inputs drop the last token: an example of n tokens needs length
      # n - 1.
      if pool.max_len - 1 > data_cfg.max_len:
        raise ExperimentConfigError(
            f"the longest training example of {self.dataset_dir} has"
            f" {pool.max_len} tokens (split mode {mode!r}) but"
            f" config.finetune.data.max_len={data_cfg.max_len}; set"
            f" --config.finetune.data.max_len={pool.max_len - 1} or more, or"
            " a --config.split_mode that makes shorter examples (none,"
            " independent, cumulative)")

  # -- augmentation
  def needed_augmentations(self) -> list[str]:
    need = []
    for cond in self.c.conditions:
      kind = conditions_lib.AUGMENTATION.get(cond)
      if kind == "both":
        need += list(_BOTH) + ["both"]
      elif kind:
        need.append(kind)
    return list(dict.fromkeys(need))

  def augment(self):
    for kind in self.needed_augmentations():
      outdir = self.workdir / "augment" / kind
      try:
        if kind == "oracle":
          info = self.stages.run(f"augment/{kind}", outdir, self._oracle)
        elif kind == "both":
          missing = [k for k in _BOTH if k not in self.aug_paths]
          if missing:
            raise StageUnavailable(
                f"needs the {' and '.join(missing)} augmentation")
          info = self.stages.run(f"augment/{kind}", outdir, self._both)
        else:
          info = self.stages.run(f"augment/{kind}", outdir,
                                 lambda k=kind, o=outdir: self._model_aug(k, o))
        if info.get("unavailable"):  # Finished, with nothing to train on.
          raise StageUnavailable(info["unavailable"])
        self.aug_paths[kind] = workdir_lib.as_path(info["path"])
      except (StageUnavailable, records.OracleUnavailable) as e:
        for cond, k in conditions_lib.AUGMENTATION.items():
          if k == kind and cond in self.c.conditions:
            self.skipped[cond] = f"augmentation {kind!r} unavailable: {e}"
        self.log(f"[n/a ] augment/{kind}: {e}")

  def _oracle(self) -> dict[str, Any]:
    dataset = records.Dataset(self.c.data.name, self.documents, self.questions)
    texts = data_registry.oracle_augmentations(self.c.data.name, dataset)
    # The overlap model-written augmentations report; the oracle must have
    # none, or its condition measures memorised test strings.
    overlap = data_checks.test_overlap(texts, self.questions)
    if overlap["coincide_with_test_answer"]:
      raise StageUnavailable(
          f"the rule-written augmentation states"
          f" {overlap['coincide_with_test_answer']} test items in the test's"
          f" own words (per split: {overlap['per_split']}; e.g."
          f" {overlap['examples'][0]['text']!r}); its condition would"
          " measure memorising test strings, so it is not reported")
    path = self.workdir / "augment" / "oracle" / "train.jsonl"
    _write_docs(path, texts, "oracle")
    return {"path": str(path), "num_documents": len(texts), "flops": 0.0,
            "test_overlap": overlap,
            "items": {"total": len(self.documents),
                      "used": len(self.documents)}}

  def _both(self) -> dict[str, Any]:
    texts = []
    for k in _BOTH:
      texts += [d.text for d in data_io.read_documents(self.aug_paths[k])]
    path = self.workdir / "augment" / "both" / "train.jsonl"
    _write_docs(path, texts, "both")
    parts = [self.stages.info(f"augment/{k}") or {} for k in _BOTH]
    return {"path": str(path), "num_documents": len(texts), "flops": 0.0,
            "test_overlap": data_checks.test_overlap(texts, self.questions),
            "from": [str(self.aug_paths[k]) for k in _BOTH],
            "note": "concatenation; its cost is that of its parts",
            "parts_wall_s": sum(p.get("wall_s", 0) for p in parts)}

  def _model_aug(self, kind: str, outdir: workdir_lib.AnyPath) -> dict[str, Any]:
    cfg = stage_configs.augment_config(self.c, kind, str(self.dataset_dir))
    report = run_augmentation(cfg, self.dataset_dir, outdir)
    path = _find_augmented(outdir)
    n = sum(1 for _ in data_io.iter_jsonl(path))
    info = {"path": str(path), "num_documents": n,
            "model": cfg.model, "items": report.get("items"),
            "correctness": report.get("correctness"),
            "test_overlap": report.get("test_overlap")}
    if n == 0:
      # A finished stage with nothing in it: its marker records why, so a
      # rerun skips the dependent conditions instead of sampling again
      # (see `augment`).
      info["unavailable"] = f"the {kind} augmentation produced no statements"
      skipped = (report.get("items") or {}).get("skipped_too_long")
      if skipped:
        info["unavailable"] += (f" ({skipped} items too long for the model's"
                                " context were skipped)")
    # The augmentation run counts its own tokens and FLOPs.
    for key in ("tokens", "flops"):
      if key in report:
        info[key] = report[key]
    return info

  # -- fine-tuning
  def finetune_dir(self, cond: str, seed: int) -> workdir_lib.AnyPath:
    return self.workdir / "finetune" / cond / f"seed_{seed}"

  def finetune(self):
    self.plan_steps()
    for cond in self.c.conditions:
      if cond not in conditions_lib.AUGMENTATION or cond in self.skipped:
        continue
      for seed in self.c.seeds:
        outdir = self.finetune_dir(cond, seed)
        cfg = self._finetune_config(cond, seed)
        self.stages.run(f"finetune/{cond}/seed_{seed}", outdir,
                        lambda cfg=cfg, o=outdir: self._finetune(cfg, o),
                        resumable=True)

  def plan_steps(self):
    """Each fine-tuning condition's optimizer steps (`self.plan`).

    With `config.steps` 0, a condition trains `config.epochs` passes over its
    own training set (the original examples plus its augmentations, counted
    by the batcher the loop builds), so the augmented conditions see every
    original document as often as plain fine-tuning does; the compute
    control trains the original documents for as many steps as the longest
    augmented condition. A positive `config.steps` gives every condition
    those steps (the matched-steps design).
    """
    c = self.c
    tok = registry.load_tokenizer(c.model)
    for cond in c.conditions:
      if (cond not in conditions_lib.AUGMENTATION or cond in self.skipped
          or cond == conditions_lib.COMPUTE_CONTROL):
        continue
      batcher = self._batcher(cond, tok)
      steps = int(c.steps) or max(
          1, math.ceil(float(c.epochs) * batcher.epoch_steps()))
      self.plan[cond] = {
          "steps": steps, "train_examples": len(batcher.train),
          "original_examples": len(batcher.original),
          "epochs": round(steps / batcher.epoch_steps(), 3),
          "split_mode": split_mode(c, cond)}
    control = conditions_lib.COMPUTE_CONTROL
    if control in c.conditions and control not in self.skipped:
      augmented = {k: v["steps"] for k, v in self.plan.items()
                   if conditions_lib.AUGMENTATION[k]}
      if not augmented:
        self.skipped[control] = (
            "no augmented condition ran to match its steps (add one of"
            " finetune_aug_local, finetune_aug_global, finetune_aug,"
            " finetune_aug_oracle to config.conditions)")
        return
      longest = max(augmented, key=augmented.get)
      batcher = self._batcher(control, tok)
      self.plan[control] = {
          "steps": augmented[longest], "train_examples": len(batcher.train),
          "original_examples": len(batcher.original),
          "epochs": round(augmented[longest] / batcher.epoch_steps(), 3),
          "split_mode": split_mode(c, control), "matches": longest}

  def _batcher(self, cond: str, tokenizer: Any) -> train_data.Batcher:
    """The batcher condition `cond`'s fine-tuning will build (its training
    set, as the loop counts it)."""
    cfg = self._finetune_config(cond, int(self.c.seeds[0]), steps=1)
    try:
      return train_data.build_batcher(self.documents, tokenizer, cfg.data,
                                      cfg.batch_size, cfg.seed)
    except ValueError as e:
      raise ExperimentConfigError(
          f"fine-tuning condition {cond}: {e} (experiment keys:"
          " --config.finetune.data.max_len, --config.split_mode)") from e

  def _finetune_config(self, cond: str, seed: int, steps: int | None = None):
    kind = conditions_lib.AUGMENTATION[cond]
    return stage_configs.finetune_config(
        self.c, seed=seed, data_dir=str(self.dataset_dir),
        augmented_path=str(self.aug_paths[kind]) if kind else "",
        steps=self.plan[cond]["steps"] if steps is None else steps,
        split_mode=split_mode(self.c, cond))

  def _finetune(self, cfg: Any, outdir: workdir_lib.AnyPath) -> dict[str, Any]:
    summary = run_finetune(cfg, outdir)
    if summary.get("preempted"):
      raise KeyboardInterrupt(
          f"fine-tuning in {outdir} was preempted at step {summary['steps']};"
          " rerun the same command to resume")
    export = summary.get("export_dir") or str(outdir / "export")
    info = {"steps": summary.get("steps"),
            "final_loss": summary.get("final_loss"),
            "params_digest": summary.get("params_digest"),
            "export_dir": export,
            "train_wall_s": summary.get("wall_s")}
    # The loop counts the FLOPs and tokens of the batches it ran.
    for key in ("flops", "train_tokens"):
      if key in summary:
        info[key] = summary[key]
    return info

  # -- evaluation
  def eval_dir(self, cond: str, seed: int) -> workdir_lib.AnyPath:
    return self.workdir / "eval" / cond / f"seed_{seed}"

  def eval_seeds(self, cond: str) -> list[int]:
    seeds = [int(s) for s in self.c.seeds]
    return seeds[:1] if cond in conditions_lib.SEED_FREE else seeds

  def evaluate(self):
    if not self.questions:
      for cond in self.c.conditions:
        self.skipped.setdefault(
            cond, f"the dataset in {self.dataset_dir} has no test questions"
            " (give --config.data.generator.questions=PATH to evaluate)")
      return
    for cond in self.c.conditions:
      if cond in self.skipped:
        continue
      for seed in self.eval_seeds(cond):
        outdir = self.eval_dir(cond, seed)
        self.stages.run(
            f"eval/{cond}/seed_{seed}", outdir,
            lambda c=cond, s=seed, o=outdir: self._evaluate(
                self._eval_config(c, s), o))

  def fit_icl_subsample(self, cfg: Any) -> int:
    """The smallest icl_subsample >= cfg's whose ICL prompts fit the model
    (exact: the evaluation's own prompt builder and tokenizer); recorded in
    the eval stage marker and the summary."""
    max_len = self.model_config.max_seq_len
    k = eval_lib.fit_icl_subsample(cfg, registry.load_tokenizer(cfg.model),
                                   self.questions, self.documents, max_len)
    if k != int(cfg.icl_subsample):
      self.log(f"icl: the full training set does not fit {cfg.model!r}'s"
               f" {max_len} tokens; using 1/{k} of the documents"
               " (config.icl_fit_context)")
    return k

  def _eval_config(self, cond: str, seed: int):
    c = self.c
    mode = conditions_lib.EVAL_MODE[cond]
    checkpoint = ""
    if mode == "finetuned":
      info = self.stages.info(f"finetune/{cond}/seed_{seed}") or {}
      checkpoint = info.get("export_dir") or str(
          self.finetune_dir(cond, seed) / "export")
    cfg = stage_configs.eval_config(c, mode=mode, seed=seed,
                                    data_dir=str(self.dataset_dir),
                                    checkpoint=checkpoint)
    if mode == "icl" and c.icl_fit_context and self.model_config is not None:
      cfg.icl_subsample = self.fit_icl_subsample(cfg)
    return cfg

  def _evaluate(self, cfg: Any, outdir: workdir_lib.AnyPath) -> dict[str, Any]:
    summary = run_evaluation(cfg, outdir)
    if not (outdir / "results.jsonl").is_file():
      raise RuntimeError(f"evaluation wrote no {outdir / 'results.jsonl'}")
    rows = results_lib.read_jsonl(outdir / "results.jsonl")
    info = {"num_questions": len(rows), "condition": cfg.condition,
            "icl_subsample": int(cfg.icl_subsample),
            "seconds_scoring": summary.get("seconds_scoring"),
            "prefix_tokens_cached":
                int(summary.get("prefix_tokens_cached") or 0)}
    info.update(costs_lib.query_costs(
        self.model_config, rows, info["prefix_tokens_cached"],
        per_context=summary.get("prefix_mode") == "per_context"))
    return info

  # -- report
  def report(self) -> Outcome:
    c = self.c
    rows = []
    for cond in c.conditions:
      if cond in self.skipped:
        continue
      for seed in self.eval_seeds(cond):
        eval_rows = results_lib.read_jsonl(
            self.eval_dir(cond, seed) / "results.jsonl")
        rows += results_lib.make_rows(
            eval_rows, self.questions, dataset=c.data.name, model=c.model,
            condition=cond, seed=seed,
            cluster_key=data_registry.get(c.data.name).cluster_key)
    results_lib.write_table(rows, self.workdir)
    ledger = self.ledger()
    results_lib.write_json(self.workdir / "costs.json", ledger)
    summary = results_lib.summarize(
        rows, dataset=c.data.name, model=c.model, costs=ledger,
        baseline=c.paired_baseline,
        extra={"skipped": dict(self.skipped),
               "icl_subsample": (self.stages.info(
                   f"eval/icl/seed_{c.seeds[0]}") or {}).get("icl_subsample"),
               "augment_model": stage_configs.augment_model(c),
               "step_rule": ("matched" if int(c.steps) else
                             f"{float(c.epochs):g} epochs per condition"),
               "training": {k: v for k, v in self.plan.items()
                            if k not in self.skipped},
               "split_mode": c.split_mode,
               "coverage": self.coverage(),
               **self.validity()})
    figure = None
    if rows:
      figure = plots.plot_summary(summary, self.workdir / c.figure_name)["png"]
    results_lib.write_json(self.workdir / "summary.json", summary)
    md = results_lib.summary_markdown(
        summary, costs_markdown=costs_lib.costs_markdown(ledger),
        figure=figure.name if figure else "")
    if self.skipped:
      md += "\n## Skipped conditions\n\n" + "\n".join(
          f"* `{k}`: {v}" for k, v in self.skipped.items()) + "\n"
    data_io.atomic_write_text(self.workdir / "summary.md", md)
    return Outcome(summary, self.workdir, figure,
                   results_lib.comparison_table(summary), self.stages.ran,
                   self.stages.skipped, dict(self.skipped))

  def read_report(self) -> Outcome:
    """The report process 0 wrote (the other processes' `Outcome`)."""
    path = self.workdir / "summary.json"
    if not path.is_file():
      raise RuntimeError(f"process 0 wrote no {path}; see its log")
    summary = json.loads(path.read_text())
    figure = self.workdir / f"{self.c.figure_name}.png"
    return Outcome(summary, self.workdir,
                   figure if figure.is_file() else None,
                   results_lib.comparison_table(summary), self.stages.ran,
                   self.stages.skipped, dict(self.skipped))

  def coverage(self) -> dict[str, dict[str, Any]]:
    """Per augmented condition: training items augmented / items, per
    augmentation it trains on."""
    out = {}
    for cond in self.c.conditions:
      kind = conditions_lib.AUGMENTATION.get(cond)
      if not kind or cond in self.skipped:
        continue
      out[cond] = {}
      for k in (_BOTH if kind == "both" else (kind,)):
        items = (self.stages.info(f"augment/{k}") or {}).get("items") or {}
        out[cond][k] = {"augmented": items.get("used"),
                        "items": items.get("total")}
    return out

  def validity(self) -> dict[str, Any]:
    """The dataset's forced shortcut heuristics (baseline rows of the
    tables, from its manifest) and how to read its control splits."""
    manifest = self.dataset_dir / "manifest.json"
    section = {}
    if manifest.is_file():
      section = json.loads(manifest.read_text()).get("validity") or {}
    forced = section.get("forced") or {}
    baselines: dict[str, dict[str, float]] = {}
    for name, accs in (section.get("heuristics") or {}).items():
      for split, acc in accs.items():
        if validity_lib.is_forced(forced, name, split):
          baselines.setdefault(name, {})[split] = acc
    spec = data_registry.SPECS.get(self.c.data.name)
    return {"baselines": baselines, "baseline_reasons": dict(forced),
            "controls": dict(spec.controls) if spec is not None else {}}

  def ledger(self) -> dict[str, Any]:
    c = self.c
    stages = self.stages.all()
    one_time, per_query, stage_costs = {}, {}, {}
    for name, info in stages.items():
      stage_costs[name] = {"wall_s": info.get("wall_s", 0.0),
                           "flops": info.get("flops", 0.0) or 0.0}
    for cond in c.conditions:
      if cond in self.skipped:
        continue
      seeds = self.eval_seeds(cond)
      once = []
      if cond in conditions_lib.AUGMENTATION:
        kind = conditions_lib.AUGMENTATION[cond]
        if kind:
          parts = list(_BOTH) if kind == "both" else [kind]
          once += [f"augment/{k}" for k in parts]
        # One fine-tuning run (of the first seed) per condition.
        once.append(f"finetune/{cond}/seed_{seeds[0]}")
      one_time[cond] = once
      evals = [stages.get(f"eval/{cond}/seed_{s}") or {} for s in seeds]
      e = evals[0]
      n = max(int(e.get("num_questions") or 0), 1)
      pq = {"wall_s": float(e.get("seconds_scoring") or e.get("wall_s", 0))
                      / n,
            "context_tokens": e.get("context_tokens", 0.0)}
      if "query_flops" in e:
        pq["flops"] = e["query_flops"]
      if "query_flops_prefix_cached" in e:
        pq["flops_prefix_cached"] = e["query_flops_prefix_cached"]
        pq["prefill_flops"] = e["prefill_flops"]
      per_query[cond] = pq
    num_params = (self.model_config.num_params()
                  if self.model_config is not None else 0)
    ledger = costs_lib.build_ledger(
        model=c.model, num_params=num_params, one_time=one_time,
        stages=stage_costs, per_query=per_query, device=_device())
    # The augmentation stages' FLOPs are the writing model's (its own
    # report); say which model that was.
    ledger["augment_model"] = stage_configs.augment_model(c)
    return ledger


def _device() -> str:
  try:
    d = jax.devices()[0]
    return f"{jax.device_count()} x {d.device_kind} ({d.platform})"
  except Exception:  # pylint: disable=broad-except
    return ""


# Experiment fields a rerun may change without redoing finished stages: the
# report's choices (always rerun), which conditions run (each has its own
# stages), progress bars, and the fine-tuning fields a resume may change
# (ftgen/train/validate.py). Any other change refuses to reuse the workdir
# unless config.force_resume (docs/reliability.md#resume-only-the-same-run).
RESUME_FREE = ("progress", "force_resume", "figure_name", "paired_baseline",
               "conditions", "evaluate.batch_size",
               "evaluate.max_batch_tokens", "evaluate.lm_eval_samples") + tuple(
                   f"finetune.{k}" for k in validate.RESUME_FREE)


def _check_same_run(config: Any, cfg_path: workdir_lib.AnyPath,
                    new_cfg: dict[str, Any], log: Callable[[str], None]):
  """Refuses a workdir whose recorded config differs (see RESUME_FREE)."""
  if not cfg_path.is_file():
    return
  old_cfg = json.loads(cfg_path.read_text())
  # Seeds may be added or dropped (each seed has its own stages) as long as
  # the first, which seeds the augmentation stages, stays.
  ignore = RESUME_FREE
  old_seeds, new_seeds = old_cfg.get("seeds") or [], new_cfg.get("seeds") or []
  if old_seeds and new_seeds and int(old_seeds[0]) == int(new_seeds[0]):
    ignore += ("seeds",)
  changed = configs.changes(old_cfg, new_cfg, ignore=ignore)
  if not changed:
    return
  keys = ", ".join(changed[:8]) + (
      f" and {len(changed) - 8} more" if len(changed) > 8 else "")
  if not config.force_resume:
    raise ExperimentConfigError(
        f"{cfg_path.parent} holds a run with another config (differs in"
        f" {keys}); its finished stages would mix two runs. Use a new"
        " workdir, the recorded values (config.json), or"
        " --config.force_resume=True to reuse them anyway")
  log(f"warning: config differs from {cfg_path} in {keys}; finished stages"
      " are reused (config.force_resume)")


def run_experiment(config: Any, workdir: epath.PathLike, *,
                   log: Callable[[str], None] = print,
                   command: str = "") -> Outcome:
  """Runs (or resumes) every stage of the experiment in `workdir`.

  `command` (the launcher's command line) is recorded with the commit and
  machine in `workdir/provenance.json` (ftgen/experiments/provenance.py).
  """
  # Everything checkable without data before any directory is made
  # (docs/reliability.md#validation-before-work).
  _check(config)
  workdir = workdir_lib.as_path(workdir)  # Local or gs://.
  _check_stages(config, workdir)
  data_io.check_writable_dir(workdir)
  workdir_lib.check_inputs_outside(config.to_dict(),
                                   _replaced_dirs(config, workdir))
  cfg_path = workdir / "config.json"
  new_cfg = json.loads(config.to_json_best_effort())
  _check_same_run(config, cfg_path, new_cfg, log)
  distributed.primary_first(
      lambda: workdir_lib.make_dir(workdir, "experiment workdir"),
      "experiment workdir made")
  # One run per workdir; host-local, taken by process 0 only under
  # jax.distributed, none on gs:// (docs/design.md#reliability).
  with workdir_lib.locked(workdir, enabled=distributed.is_primary()):
    return _run(config, workdir, cfg_path, new_cfg, log, command)


def _replaced_dirs(config: Any, workdir: workdir_lib.AnyPath) -> list[workdir_lib.AnyPath]:
  """The directories of `workdir` that a (re)done stage removes or replaces:
  no input may lie inside them."""
  out = [workdir / d for d in ("augment", "finetune", "eval", "stages")]
  if not config.data_dir:
    out.append(workdir / "data" / config.data.name)
  return out


def _run(config: Any, workdir: workdir_lib.AnyPath, cfg_path: workdir_lib.AnyPath,
         new_cfg: dict[str, Any], log: Callable[[str], None],
         command: str = "") -> Outcome:
  """`run_experiment` once the checks passed and the workdir is locked."""
  exp = _Experiment(config, workdir, log)
  t0 = time.perf_counter()
  record = provenance.start(command, _device())
  exp.load_model_config()
  exp.data()
  exp.check_max_len()
  # Recorded once the config passed every check, so a run that failed one
  # does not block the corrected rerun.
  if distributed.is_primary():
    results_lib.write_json(cfg_path, new_cfg)
  exp.augment()
  exp.finetune()
  exp.evaluate()
  # Process 0 writes the report (host work only); the others read it.
  outcome = distributed.primary_only(exp.report, "report written")
  if outcome is None:
    outcome = exp.read_report()
  if distributed.is_primary():
    provenance.finish(workdir, record, time.perf_counter() - t0, outcome.ran)
  seeds = [int(x) for x in config.seeds]
  log(f"\n{config.data.name} with {config.model}, seeds {seeds}"
      f" ({time.perf_counter() - t0:.0f} s this run); accuracy [95%"
      f" interval]{', sd over seeds' if len(seeds) > 1 else ''}:\n")
  log(outcome.table)
  sig = [r for r in outcome.summary.get("comparisons") or []
         if r["metric"] == "accuracy" and r.get("significant")]
  log("\nPaired accuracy comparisons significant after Holm's correction: "
      + ("; ".join(f"{results_lib.comparison_id(r)} {r['diff']:+.3f}"
                   f" (p_Holm {results_lib.fmt_p(r['p_holm'])})"
                   for r in sig) if sig else "none")
      + " (all of them: summary.md).")
  if len(seeds) == 1:
    log(f"\nOne seed: no seed-to-seed spread. The real experiments default"
        f" to three; rerunning with --config.seeds='({seeds[0]},"
        f"{seeds[0] + 1},{seeds[0] + 2})' in this workdir adds the other two"
        " (finished stages are kept).")
  for cond, why in outcome.skipped_conditions.items():
    log(f"skipped {cond}: {why}")
  if outcome.figure is not None:
    log(f"\nfigure: {outcome.figure}")
  log(f"summary: {workdir / 'summary.md'}")
  return outcome
