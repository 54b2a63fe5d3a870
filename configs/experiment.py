r"""Experiment configs: `configs/experiment.py:NAME` or `NAME,tiny`.

One dataset, one model, every condition of the paper
(docs/design.md#purpose, #experiment-summary):

  python launch/run_experiment.py --config=configs/experiment.py:reversals \
      --workdir=runs/reversals

NAME is reversals, syllogisms, semantic, celebrities or process. `tiny` uses
the random tiny model and the tiny dataset (1-3 minutes on 2 CPU cores).
`user` runs your own documents: set `--config.data.generator.documents=PATH`
(and optionally `.questions=PATH`) or `--config.data_dir=DATASET_DIR`.

The stage configs are embedded whole (`data`, `augment_local`,
`augment_global`, `finetune`, `evaluate`), so their fields can be
overridden per stage, e.g. `--config.finetune.lora.rank=8`,
`--config.augment_global.num_samples=2` or `--config.evaluate.batch_size=8`.
The fields that tie the stages together (model, dataset, seed, `steps`,
`split_mode`, augmented data path/ratio, question subsampling) are
set from this config's own keys and are empty (None) in the embedded
configs; setting one, e.g. `--config.finetune.seed=3`, is an error that
names the key to use instead (`--config.seeds`).
"""

import pathlib

import ml_collections

from ftgen import configs
from ftgen.data import registry
from ftgen.experiments import conditions
from ftgen.experiments import stage_configs

DATASETS = registry.DATASETS
VARIANTS = ("tiny",)
CONDITIONS = conditions.CONDITIONS


# The stage configs are this file's siblings (configs/ is no package).
_HERE = pathlib.Path(__file__).resolve().parent


def _real_defaults(c: ml_collections.ConfigDict, name: str):
  """CPU-sized defaults for the real model (see docs/launching.md)."""
  c.epochs = 3.0
  c.finetune.batch_size = 8
  c.finetune.lora.rank = 16
  c.finetune.lr = 1e-3
  c.finetune.warmup_steps = 10
  # Longest example + 1 at the default sizes (SmolLM2 tokens): semantic's
  # cumulative splits reach 458, process documents 255, the others < 64.
  c.finetune.data.max_len = dict(semantic=512, process=256).get(name, 128)
  c.finetune.checkpoint_every = 50
  c.evaluate.batch_size = 16
  for a in (c.augment_local, c.augment_global):
    a.max_items = 0  # Every training item is augmented.
    a.num_samples = 2
    a.max_new_tokens = 48
  if name == "reversals":
    # The Quickstart: sized to finish within 15 minutes on a 2-core CPU.
    # 24 balanced facts x 3 articles (72 documents, ~1k tokens in context),
    # each augmented once by each strategy; 3 epochs of LoRA over each
    # condition's own training set (original documents plus its
    # augmentations), batches of 8 at a higher rate.
    c.data.generator.num_facts = 24
    c.data.generator.articles_per_fact = 3
    c.finetune.lr = 2e-3
    c.finetune.warmup_steps = 3
    c.finetune.data.max_len = 64
    c.finetune.checkpoint_every = 20
    for a in (c.augment_local, c.augment_global):
      a.num_samples = 1
      a.max_new_tokens = 40 if a is c.augment_local else 32


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the locked experiment config for `NAME[,tiny]`."""
  if not arg:
    raise ValueError(
        "configs/experiment.py needs a dataset name: configs/experiment.py:NAME"
        f" with NAME in {', '.join(DATASETS)} (optionally ',tiny')")
  name, *variants = [p.strip() for p in arg.split(",")]
  if name not in DATASETS:
    raise ValueError(
        f"unknown dataset {name!r} in configs/experiment.py:{arg}; allowed:"
        f" {', '.join(DATASETS)}")
  for v in variants:
    if v not in VARIANTS:
      raise ValueError(
          f"unknown variant {v!r} in configs/experiment.py:{arg}; allowed:"
          f" {', '.join(VARIANTS)}")
  tiny = "tiny" in variants
  suffix = ",tiny" if tiny else ""

  c = ml_collections.ConfigDict()
  c.name = name
  c.model = "tiny" if tiny else "smollm2-135m"
  # Fine-tuning seeds (data order, LoRA init) and ICL shuffle seeds; the
  # deterministic conditions (pretrained, retrieval) run once. Three by
  # default, so results carry seed-to-seed spread; the tiny plumbing runs
  # one. Seeds can be added to a finished workdir (same first seed): only
  # the new seeds' stages run.
  c.seeds = (0,) if tiny else (0, 1, 2)
  # Your own documents have no rule-written (oracle) augmentation.
  spec = registry.get(name)
  c.conditions = CONDITIONS if spec.synthetic else tuple(
      x for x in CONDITIONS if x != conditions.ORACLE)
  # Dataset: generated from `data` into WORKDIR/data unless `data_dir` names
  # an existing dataset directory.
  c.data = configs.load(f"data:{name}{suffix}", _HERE)
  c.data_dir = ""
  # Sentence splitting of training documents and augmentations
  # (ftgen.data.splitting): "paper" splits as the paper does (the plain
  # fine-tuning baseline unsplit where the paper says so, the dataset's own
  # rule otherwise: `DatasetSpec.split_mode`, `baseline_split_mode`); none,
  # independent or cumulative apply to every fine-tuning condition (the
  # splitting ablation).
  c.split_mode = "paper"
  # Optimizer steps: 0 follows each condition's training-set size, `epochs`
  # passes over its own data (original documents plus its augmentations),
  # as the paper picks steps from dataset size; a positive value gives every
  # fine-tuning condition that many steps (the matched-steps design).
  c.steps = 0
  c.epochs = 2.0 if tiny else 3.0
  # Augmented data is added to the training set and sampled uniformly from
  # the union (0); a share in (0, 1) fixes that share of every batch instead.
  c.augmented_ratio = 0.0
  # Who writes the augmentations: "" is the model being fine-tuned (the
  # paper's setting); a stronger model may write them for a smaller one.
  c.augment_model = ""
  # Questions scored per split (0: all), the same seeded subset in every
  # condition so paired comparisons line up.
  c.max_questions_per_split = 0
  c.question_seed = 0
  # Per-stage configs (any field can be overridden).
  c.augment_local = configs.load(f"augment:{name},local{suffix}", _HERE)
  c.augment_global = configs.load(f"augment:{name},global{suffix}", _HERE)
  c.finetune = configs.load(f"finetune:{name}{suffix}", _HERE)
  # One evaluation config for every condition; `instruction` applies to the
  # in-context conditions (icl, retrieval), `plain_instruction` to the rest.
  c.evaluate = configs.load(f"evaluate:icl{suffix}", _HERE)
  # No lm-eval samples files: the in-context conditions' would repeat the
  # whole training set per choice (hundreds of MB on semantic); the
  # harness's results_*.json and ftgen's results.jsonl stay
  # (--config.evaluate.lm_eval_samples=True writes them).
  c.evaluate.lm_eval_samples = False
  c.plain_instruction = ""
  # Conditions compared item by item in summary.md.
  # When the whole training set does not fit the model's context, raise
  # evaluate.icl_subsample to the smallest factor that fits (recorded in
  # summary.json); False makes an overflow an error.
  c.icl_fit_context = True
  c.paired_baseline = "pretrained"
  c.figure_name = "figure"
  c.progress = not tiny
  # A workdir resumes only with the config recorded in its config.json
  # (ftgen/experiments/runner.py RESUME_FREE lists what may change); True
  # reuses its finished stages anyway (and continues its fine-tuning runs).
  c.force_resume = False

  # Plumbing defaults of the stage configs the runner relies on.
  c.finetune.eval.every = -1  # The runner evaluates every condition itself.
  if tiny:
    c.finetune.checkpoint_every = 6
    # A random tiny model writes no sentence; the tiny llama trained on
    # English sentences does (ftgen/train/tiny_writer.py), so every
    # augmented condition runs on real, post-processed samples.
    c.augment_model = "tiny-writer"
    for a in (c.augment_local, c.augment_global):
      a.max_items = 6
      a.num_samples = 2
      a.max_new_tokens = 24
  else:
    _real_defaults(c, name)
  # Fields that tie the stages together are the experiment's: empty here,
  # filled by the runner, an error when set (ftgen/experiments/
  # stage_configs.py).
  stage_configs.leave_to_experiment(c)
  c.lock()
  return c
