"""Each stage's config, built from the experiment config.

`configs/experiment.py` embeds every stage config whole (`augment_local`,
`augment_global`, `finetune`, `evaluate`), so any field a stage has can be
tuned per experiment. The fields that tie the stages together (model,
dataset, seed, matched steps, ...) are the experiment's to set: the
embedded configs hold them as empty placeholders (`None`), the builders
below fill them in, and a value a user gave one of them is an error that
names the experiment-level key to use instead, e.g. `config.finetune.seed`
-> `--config.seeds`. So no override is ever accepted and silently replaced.
"""

from __future__ import annotations

import copy
from typing import Any

import ml_collections
from ml_collections import config_dict

from ftgen import configs

# Per embedded stage config: field -> what to set instead (a flag or a word
# on which experiment setting decides it).
_DATA_DIR = "--config.data_dir (or --config.data.* to generate it)"
SET_BY_EXPERIMENT: dict[str, dict[str, str]] = {
    "finetune": {
        "name": "the NAME of --config=configs/experiment.py:NAME",
        "model": "--config.model",
        "seed": "--config.seeds",
        "steps": "--config.steps (0: --config.epochs passes over each"
                 " condition's own training set)",
        "data.dir": _DATA_DIR,
        "data.source": _DATA_DIR,
        "data.split_mode": "--config.split_mode",
        "data.augmented_path": "--config.conditions (each finetune_aug*"
                               " condition trains on its own augmentation)",
        "data.augmented_ratio": "--config.augmented_ratio",
        "export_hf": "nothing: every fine-tuned condition is exported for"
                     " its evaluation",
        "progress": "--config.progress",
        "force_resume": "--config.force_resume",
    },
    **{stage: {
        "dataset": "the NAME of --config=configs/experiment.py:NAME",
        "strategy": "the stage: augment_local or augment_global",
        "data": _DATA_DIR,
        "data_root": _DATA_DIR,
        "data_variant": _DATA_DIR,
        "model": "--config.augment_model (default: --config.model)",
        "seed": "--config.seeds (the first seed)",
    } for stage in ("augment_local", "augment_global")},
    "evaluate": {
        "condition": "--config.conditions",
        "model": "--config.model",
        "data": _DATA_DIR,
        "checkpoint": "--config.conditions (each fine-tuned condition is"
                      " scored from its own export)",
        "max_questions_per_split": "--config.max_questions_per_split",
        "seed": "--config.question_seed",
        "shuffle_seed": "--config.seeds",
        "progress": "--config.progress",
    },
}


def leave_to_experiment(config: ml_collections.ConfigDict) -> None:
  """Empties the experiment-set fields of the embedded stage configs.

  Each becomes a typed placeholder (`None`), so a command-line override is
  still parsed with the field's type and then reported by `overridden`.
  Call before `config.lock()`.
  """
  for stage, fields in SET_BY_EXPERIMENT.items():
    for dotted in fields:
      node, leaf = configs.parent(config[stage], dotted)
      value = node[leaf]
      kind = (ml_collections.ConfigDict
              if isinstance(value, ml_collections.ConfigDict) else type(value))
      node[leaf] = config_dict.placeholder(kind)


def overridden(config: Any) -> list[str]:
  """One message per experiment-set stage field that holds a value."""
  out = []
  for stage, fields in SET_BY_EXPERIMENT.items():
    for dotted, instead in fields.items():
      node, leaf = configs.parent(config[stage], dotted)
      if node[leaf] is not None:
        out.append(f"config.{stage}.{dotted} is set by the experiment; use"
                   f" {instead}")
  return out


def _fill(embedded: Any, stage: str, values: dict[str, Any]) -> Any:
  """A copy of `embedded` with every experiment-set field of `stage`."""
  missing = set(SET_BY_EXPERIMENT[stage]) ^ set(values)
  if missing:
    raise AssertionError(f"{stage}: fields {sorted(missing)} are not both"
                         " listed and filled")
  cfg = copy.deepcopy(embedded)
  for dotted, value in values.items():
    node, leaf = configs.parent(cfg, dotted)
    node[leaf] = value
  return cfg


def augment_config(c: Any, kind: str, data_dir: str) -> Any:
  """The `kind` (local or global) augmentation stage's config."""
  stage = f"augment_{kind}"
  return _fill(c[stage], stage, {
      "dataset": c.data.name, "strategy": kind, "data": str(data_dir),
      "data_root": "", "data_variant": "", "model": augment_model(c),
      "seed": int(c.seeds[0])})


def augment_model(c: Any) -> str:
  """The model that writes the augmentations (default: the fine-tuned one)."""
  return c.augment_model or c.model


def finetune_config(c: Any, *, seed: int, data_dir: str,
                    augmented_path: str, steps: int, split_mode: str) -> Any:
  """The fine-tuning stage's config for one seed ("" : no augmentation),
  `steps` and `split_mode` as the runner resolved them for its condition."""
  return _fill(c.finetune, "finetune", {
      "name": c.data.name, "model": c.model, "seed": int(seed),
      "steps": int(steps), "data.dir": str(data_dir),
      "data.source": copy.deepcopy(c.data),
      "data.split_mode": split_mode,
      "data.augmented_path": str(augmented_path),
      "data.augmented_ratio": float(c.augmented_ratio),
      "export_hf": True, "progress": bool(c.progress),
      "force_resume": bool(c.force_resume)})


def eval_config(c: Any, *, mode: str, seed: int, data_dir: str,
                checkpoint: str) -> Any:
  """The evaluation stage's config for one mode (configs/evaluate.py) and
  seed; `checkpoint` is the fine-tuned export ("" for the other modes)."""
  cfg = _fill(c.evaluate, "evaluate", {
      "condition": mode, "model": c.model, "data": str(data_dir),
      "checkpoint": str(checkpoint),
      "max_questions_per_split": int(c.max_questions_per_split),
      "seed": int(c.question_seed), "shuffle_seed": int(seed),
      "progress": bool(c.progress)})
  if mode not in ("icl", "retrieval"):
    cfg.instruction = c.plain_instruction
  return cfg
