r"""Fine-tuning configs: `configs/finetune.py:NAME` or `NAME,tiny`.

NAME is a dataset of `configs/data.py` (reversals, syllogisms, semantic,
celebrities, process, user). Every default lives here. The `tiny` variant
trains a tiny random model for 50 steps with a checkpoint every 10 steps.

  python launch/finetune.py --config=configs/finetune.py:reversals,tiny \
      --workdir=/tmp/ft --config.steps=20
"""

import pathlib

import ml_collections

from ftgen import configs
from ftgen.data import registry
from ftgen.models import flops

VARIANTS = ("tiny",)
# Sibling configs load from this file's directory (configs/ is no package).
_HERE = pathlib.Path(__file__).resolve().parent


def _data_config(arg: str) -> ml_collections.ConfigDict:
  return configs.load(f"data:{arg}", _HERE)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the locked fine-tuning config for `NAME[,tiny]`."""
  datasets = registry.DATASETS
  if not arg:
    raise ValueError(
        "configs/finetune.py needs a dataset name: configs/finetune.py:NAME"
        f" with NAME in {', '.join(datasets)} (optionally ',tiny')")
  name, *variants = [p.strip() for p in arg.split(",")]
  if name not in datasets:
    raise ValueError(
        f"unknown dataset {name!r} in configs/finetune.py:{arg}; allowed:"
        f" {', '.join(datasets)}")
  for v in variants:
    if v not in VARIANTS:
      raise ValueError(
          f"unknown variant {v!r} in configs/finetune.py:{arg}; allowed:"
          f" {', '.join(VARIANTS)}")
  tiny = "tiny" in variants

  c = ml_collections.ConfigDict()
  c.name = name
  c.seed = 0  # Batches are a pure function of (seed, step).

  # Model: a registry name (docs/design.md#model-names). `model_seed` seeds
  # random models.
  c.model = "tiny" if tiny else "smollm2-135m"
  c.model_seed = 0
  # Compute dtype; the trained (master) weights stay in `param_dtype`.
  # "auto": bfloat16 on GPU/TPU, float32 on CPU (faster there).
  c.dtype = "float32" if tiny else "auto"
  c.param_dtype = "float32"

  # Data. `dir` is a dataset directory (train.jsonl, test.jsonl); "" means
  # WORKDIR/data/NAME, generated from `source` when absent.
  c.data = ml_collections.ConfigDict()
  c.data.dir = ""
  c.data.source = _data_config(f"{name},tiny" if tiny else name)
  # Sentence splitting (ftgen.data.splitting): none|independent|cumulative;
  # by default the dataset's own (ftgen.data.registry).
  c.data.split_mode = registry.get(name).split_mode
  c.data.append_eos = True
  c.data.max_len = 512  # Longest input, in tokens.
  # Padded lengths; one compile per bucket (tiny: one, for fast tests).
  c.data.num_buckets = 1 if tiny else 4
  # Augmented documents (JSONL of {"id","text"}), added to the training set:
  # batches are drawn uniformly from the union (augmented_ratio 0, the
  # paper's design); a ratio in (0, 1) fixes that share of augmented rows
  # per batch instead.
  c.data.augmented_path = ""
  c.data.augmented_ratio = 0.0

  # Optimization (paper: batch 8-16, lr 3e-4 for adapters, 200-1000 steps).
  c.batch_size = 8 if tiny else 16
  c.accum_steps = 1  # Micro-batches per step (same update, less memory).
  c.steps = 50 if tiny else 500
  c.lr = 3e-3 if tiny else 3e-4
  c.warmup_steps = 5 if tiny else 25
  c.schedule = "cosine"  # constant|linear|cosine
  c.end_lr_fraction = 0.1
  c.weight_decay = 0.0
  c.grad_clip = 1.0  # Global-norm clipping; 0 disables.
  c.b1 = 0.9
  c.b2 = 0.999
  c.eps = 1e-8

  # LoRA: rank 0 means full fine-tuning. Targets name modules of the
  # decoder's params tree (attention q/k/v/o, MLP gate/up/down).
  c.lora = ml_collections.ConfigDict()
  c.lora.rank = 0 if tiny else 32
  c.lora.alpha = 64.0
  c.lora.targets = ("q", "k", "v", "o", "gate", "up", "down")

  # Rematerialization of each block in the backward pass
  # (ftgen.models.decoder.REMAT_POLICIES): none; full (least memory, one
  # more forward pass); save_dots (keep matmul outputs, recompute the
  # elementwise work); save_dots_no_batch.
  c.remat = "none"
  # Attention kernel (ftgen/models/attention_ops.py): auto (cuDNN flash on
  # GPU, splash on TPU, where the call qualifies; else the blockwise XLA
  # reference), xla, cudnn, splash.
  c.attention = "auto"
  # Loss over the vocabulary this many tokens at a time, its gradient formed
  # in the same pass (ftgen.models.head): never a [B, T, V] logits array.
  # 0 computes full logits (the plain autodiff loss; for comparison).
  c.loss_chunk_tokens = 1024

  # Mesh (data, fsdp, tensor); one -1 takes the remaining devices.
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
  c.num_devices = 0  # Use the first N devices (0: all).

  # Checkpoints (orbax step directories under WORKDIR/checkpoints).
  c.checkpoint_every = 10 if tiny else 100
  c.max_to_keep = 3
  c.async_checkpointing = True

  # Evaluation on test splits during training, with the names of
  # configs/evaluate.py: every `eval.every` steps (0: only at the end; -1:
  # never), on `eval.splits` (comma separated; "" = all), at most
  # `eval.max_questions_per_split` questions per split (0: all), a random
  # subset drawn with `eval.seed`. The last evaluation writes
  # WORKDIR/eval_results.jsonl, the rows launch/evaluate.py (finetuned)
  # writes for the export.
  c.eval = ml_collections.ConfigDict()
  c.eval.every = 25 if tiny else 100
  c.eval.splits = ""
  c.eval.batch_size = 16
  c.eval.max_questions_per_split = 64 if tiny else 0
  c.eval.seed = 0

  # Logging and export.
  c.log_every = 1 if tiny else 10
  c.progress = True  # tqdm progress bar with ETA.
  # Per device, for MFU (default: H100/H200 bf16 dense).
  c.peak_flops = flops.PEAK_FLOPS_BF16
  c.export_hf = True  # Write WORKDIR/export (HF config.json + safetensors).
  # Also write WORKDIR/model-TYPE.gguf for llama.cpp, Ollama, LM Studio
  # (ftgen/checkpoints/gguf_export.py; TYPE: f16, q8_0 or f32).
  c.export_gguf = False
  c.export_gguf_type = "q8_0"
  # A workdir's checkpoint resumes only with the config it was saved with
  # (logging, checkpoint and device fields may change: ftgen/train/
  # validate.py RESUME_FREE); True continues it anyway.
  c.force_resume = False
  c.lock()
  return c
