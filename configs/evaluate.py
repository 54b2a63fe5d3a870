"""Evaluation configs:
`configs/evaluate.py:MODE` or `configs/evaluate.py:MODE,tiny`.

MODE is the condition: pretrained, icl, retrieval or finetuned
(docs/design.md#evaluation-outputs).

  python launch/evaluate.py --config=configs/evaluate.py:icl \
      --config.model=smollm2-135m --config.data=DIR/reversals --workdir=OUT

`tiny` uses the random tiny model (for tests and debugging); `data` must
still point at a dataset directory.
"""

import ml_collections

from ftgen.eval import prompts

# The evaluation modes (how the training documents reach the prompt).
CONDITIONS = prompts.CONDITIONS
VARIANTS = ("tiny",)

ICL_INSTRUCTION = (
    "Read the following facts carefully. Then complete the statement that"
    " follows them.")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the locked config for `MODE[,tiny]`."""
  if not arg:
    raise ValueError(
        "configs/evaluate.py needs a condition: configs/evaluate.py:MODE with"
        f" MODE in {', '.join(CONDITIONS)} (optionally ',tiny')")
  mode, *variants = [p.strip() for p in arg.split(",")]
  if mode not in CONDITIONS:
    raise ValueError(
        f"unknown condition {mode!r} in configs/evaluate.py:{arg}; allowed:"
        f" {', '.join(CONDITIONS)}")
  for v in variants:
    if v not in VARIANTS:
      raise ValueError(
          f"unknown variant {v!r} in configs/evaluate.py:{arg}; allowed:"
          f" {', '.join(VARIANTS)}")
  tiny = "tiny" in variants
  in_context = mode in ("icl", "retrieval")

  c = ml_collections.ConfigDict()
  c.condition = mode
  # Model name (docs/design.md#model-names): smollm2-135m, gemma3-270m,
  # hf:DIR, gguf:FILE, tiny.
  c.model = "tiny" if tiny else "smollm2-135m"
  # Compute dtype override ("" keeps the model's; float32 for conformance).
  c.dtype = "float32"
  # Dataset directory with test.jsonl (and train.jsonl for icl/retrieval).
  c.data = ""
  # finetuned: an HF-style export directory (config.json + safetensors +
  # tokenizer files) of the fine-tuned model; it must match `model`'s
  # architecture.
  c.checkpoint = ""
  # Only these test splits ("" = all), comma separated.
  c.splits = ""
  # If > 0, score a seeded random subset of this many questions per split.
  c.max_questions_per_split = 0
  c.seed = 0

  # Prompt.
  c.instruction = ICL_INSTRUCTION if in_context else ""
  c.doc_separator = "\n"
  c.use_chat_template = False  # Wrap the head in the model's chat template.
  c.add_bos = "auto"  # auto (the tokenizer's default) | yes | no.
  # icl: keep 1/icl_subsample of the (deduplicated, shuffled) documents.
  c.icl_subsample = 1
  c.shuffle = True
  c.shuffle_seed = 0
  c.dedup = True
  # retrieval: documents per question and the BM25 query.
  c.retrieval_k = 5
  c.retrieval_query = "prompt+choices"  # or "prompt".

  # Calibrated scoring (lm-eval acc_mutual_info): also score each choice
  # after `calibration_prompt` ("" = only the BOS/EOS prefix token).
  c.calibration = True
  c.calibration_prompt = ""

  # Batching.
  c.batch_size = 8 if tiny else 32
  c.buckets = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
  # Rows per batch shrink (powers of two) so rows * bucket <= this.
  c.max_batch_tokens = 4096 if tiny else 16384
  # KV-cached contexts: a prefix all prompts share (>= min_prefix tokens)
  # is prefilled once; for retrieval, each question's own context is.
  c.prefix_cache = True
  c.prefix_min_tokens = 32
  c.prefill_chunk = 512

  # lm-eval's per-question `samples_<task>_<time>.jsonl` next to its
  # `results_<time>.json`. Each sample repeats its context once per choice
  # (and once more per choice for calibration), so in-context conditions on
  # large training sets write hundreds of MB; results.jsonl holds every
  # score either way.
  c.lm_eval_samples = True

  c.dry_run = False  # Print token counts and whether the context fits.
  c.progress = True
  c.lock()
  return c
