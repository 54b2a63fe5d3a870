"""A fine-tuning config's checks: its values, and whether a resume may go on.

`check_config` runs before anything costly, in the loop (`loop.finetune`) and in
the experiment runner, which checks each fine-tuning stage's config before
its first stage (docs/reliability.md#validation-before-work).

`check_resume` compares the config a workdir's checkpoint was saved with
against the current one (docs/reliability.md#resume-only-the-same-run).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ftgen import configs
from ftgen.checkpoints import gguf_export
from ftgen.checkpoints import registry
from ftgen.data import splitting
from ftgen.models import attention_ops
from ftgen.models import decoder
from ftgen.train import optim

DTYPES = ("auto",) + registry.DTYPES

# Fields that change how, when or where a run computes, not what: progress
# and logging, checkpoint and evaluation timing (evaluation reads the
# params, never changes them), the device layout and memory knobs (the same
# arithmetic, possibly another reduction order), and paths (a moved dataset
# or workdir). A resume may change these; any other field must match.
RESUME_FREE = ("progress", "log_every", "eval", "checkpoint_every",
               "max_to_keep", "async_checkpointing", "peak_flops", "export_hf",
               "export_gguf", "export_gguf_type",
               "force_resume", "mesh", "num_devices", "remat", "attention",
               "loss_chunk_tokens", "data.dir", "data.augmented_path")


class ResumeMismatchError(ValueError):
  """The workdir holds a run started with another config."""


def _fail(key: str, value: Any, rule: str):
  raise ValueError(f"config.{key}={value!r} {rule}")


def check_config(config: Any) -> None:
  """Raises ValueError (one line naming the key) for a bad setting.

  Only what the config alone decides; what needs the devices (batch size
  divisible by the data-parallel size) or the data (longest example) is
  checked where those are known (`loop.build`, the batcher).
  """
  registry.validate_name(config.model)
  for key in ("dtype", "param_dtype"):
    allowed = DTYPES if key == "dtype" else registry.DTYPES
    if config[key] not in allowed:
      _fail(key, config[key], f"is not one of {', '.join(allowed)}")
  for key in ("batch_size", "accum_steps", "steps", "checkpoint_every",
              "max_to_keep", "log_every"):
    if int(config[key]) < 1:
      _fail(key, config[key], "must be >= 1")
  if config.batch_size % config.accum_steps:
    _fail("accum_steps", config.accum_steps,
          f"must divide config.batch_size={config.batch_size}")
  if not (math.isfinite(float(config.lr)) and float(config.lr) > 0):
    _fail("lr", config.lr, "must be a finite number > 0")
  if config.schedule not in optim.SCHEDULES:
    _fail("schedule", config.schedule,
          f"is not one of {', '.join(optim.SCHEDULES)}")
  for key in ("warmup_steps", "weight_decay", "grad_clip",
              "loss_chunk_tokens", "num_devices", "model_seed"):
    if config[key] < 0:
      _fail(key, config[key], "must be >= 0")
  for key in ("end_lr_fraction", "b1", "b2"):
    if not 0 <= float(config[key]) <= 1:
      _fail(key, config[key], "must lie in [0, 1]")
  if not float(config.eps) > 0:
    _fail("eps", config.eps, "must be > 0")
  if int(config.lora.rank) < 0:
    _fail("lora.rank", config.lora.rank, "must be >= 0 (0: full fine-tuning)")
  if config.lora.rank and not float(config.lora.alpha) > 0:
    _fail("lora.alpha", config.lora.alpha, "must be > 0")
  if config.lora.rank and not config.lora.targets:
    _fail("lora.targets", config.lora.targets, "must name at least one module")
  mesh = dict(config.mesh)
  if (any(v == 0 or v < -1 for v in mesh.values())
      or list(mesh.values()).count(-1) > 1):
    _fail("mesh", mesh, "needs sizes >= 1 and at most one -1")
  try:
    decoder.remat_mode(config.remat)
  except ValueError:
    _fail("remat", config.remat,
          f"is not one of {', '.join(decoder.REMAT_POLICIES)}")
  if config.attention not in attention_ops.IMPLEMENTATIONS:
    _fail("attention", config.attention,
          f"is not one of {', '.join(attention_ops.IMPLEMENTATIONS)}")
  data = config.data
  if data.split_mode not in splitting.MODES:
    _fail("data.split_mode", data.split_mode,
          f"is not one of {', '.join(splitting.MODES)}")
  for key in ("max_len", "num_buckets"):
    if int(data[key]) < 1:
      _fail(f"data.{key}", data[key], "must be >= 1")
  if data.augmented_path and not 0 <= float(data.augmented_ratio) < 1:
    _fail("data.augmented_ratio", data.augmented_ratio,
          "must be 0 (sample the union of original and augmented examples)"
          " or lie in (0, 1) (that share of every batch is augmented)")
  if int(config.eval.every) < -1:
    _fail("eval.every", config.eval.every,
          "must be >= -1 (0: only at the end; -1: never)")
  if int(config.eval.batch_size) < 1:
    _fail("eval.batch_size", config.eval.batch_size, "must be >= 1")
  if int(config.eval.max_questions_per_split) < 0:
    _fail("eval.max_questions_per_split", config.eval.max_questions_per_split,
          "must be >= 0 (0: all)")
  if config.get("export_gguf") and (config.export_gguf_type
                                    not in gguf_export.TYPES):
    _fail("export_gguf_type", config.export_gguf_type,
          f"is not one of {', '.join(gguf_export.TYPES)}")


def resume_changes(saved: dict[str, Any], config: Any) -> list[str]:
  """The dotted keys outside RESUME_FREE where `config` differs from `saved`
  (a config in JSON form, as a checkpoint's meta holds it)."""
  return configs.changes(saved, json.loads(config.to_json_best_effort()),
                         ignore=RESUME_FREE)


def check_resume(saved: dict[str, Any] | None, config: Any,
                 where: str) -> None:
  """Raises ResumeMismatchError unless `config` continues the run `saved`
  started, or `config.force_resume` is set.

  Args:
    saved: the config the run was started with (JSON form), or None when
      unknown (nothing is checked then).
    config: the current fine-tuning config.
    where: the checkpoint, for the message.
  """
  if not saved:
    return
  changed = resume_changes(saved, config)
  if not changed or config.get("force_resume"):
    return
  shown = ", ".join(f"{k} ({_value(saved, k)!r} -> {_value_of(config, k)!r})"
                    for k in changed[:6])
  more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
  raise ResumeMismatchError(
      f"{where} was saved by a run with another config: {shown}{more};"
      " resuming would mix two runs. Use a new workdir, the saved values, or"
      " --config.force_resume=True to continue anyway")


def _value(tree: dict[str, Any], dotted: str) -> Any:
  for part in dotted.split("."):
    tree = tree[part]
  return tree


def _value_of(config: Any, dotted: str) -> Any:
  return _value(json.loads(config.to_json_best_effort()), dotted)
