"""Augmentation configs: `configs/augment.py:DATASET,STRATEGY[,tiny]`.

DATASET is a dataset name (its directory is `data_root/DATASET` unless
`data` is set); STRATEGY is `local` (restate each training sentence) or
`global` (training set in context, infer links for each document).
"""

import ml_collections

DATASETS = ("reversals", "syllogisms", "semantic", "celebrities", "process",
            "user")
STRATEGIES = ("local", "global")
VARIANTS = ("tiny",)

LOCAL_TEMPLATE = """\
Rewrite the statement in several different ways. Include its reversal (the \
same fact stated from the other side) and paraphrases. Write one statement \
per line and nothing else.

Statement: Lions are heavier than foxes.
Restatements:
Foxes are lighter than lions.
A lion weighs more than a fox.
Foxes weigh less than lions.

Statement: All violins are string instruments.
Restatements:
Every violin is a string instrument.
Some string instruments are violins.
Violins are a kind of string instrument.

Statement: {statement}
Restatements:
"""

GLOBAL_TEMPLATE = """\
Here are some documents.

{documents}

Consider this document:
{document}

Write statements that follow from this document together with the other \
documents: reversals of its facts, conclusions that combine facts from \
several documents, and chained relations. Write one statement per line and \
nothing else.
Statements:
"""


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the locked config for `DATASET,STRATEGY[,tiny]`."""
  parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
  if len(parts) < 2 or parts[0] not in DATASETS or parts[1] not in STRATEGIES:
    raise ValueError(
        f"configs/augment.py:{arg} must be DATASET,STRATEGY[,tiny] with"
        f" DATASET in {', '.join(DATASETS)} and STRATEGY in"
        f" {', '.join(STRATEGIES)}")
  for v in parts[2:]:
    if v not in VARIANTS:
      raise ValueError(f"unknown variant {v!r} in configs/augment.py:{arg};"
                       f" allowed: {', '.join(VARIANTS)}")
  dataset, strategy = parts[:2]
  tiny = "tiny" in parts[2:]

  config = ml_collections.ConfigDict()
  config.dataset = dataset
  config.strategy = strategy
  # Dataset directory; "" means data_root/dataset, generated when absent.
  config.data = ""
  config.data_root = "runs/data"
  config.data_variant = "tiny" if tiny else ""
  config.model = "tiny" if tiny else "smollm2-135m"
  config.seed = 0
  # Local augmentation restates each sentence ("sentence") or document.
  config.unit = "sentence"
  config.template = LOCAL_TEMPLATE if strategy == "local" else GLOBAL_TEMPLATE
  config.use_chat_template = True  # Applies to instruct models only.
  config.num_samples = 2 if tiny else 4  # Samples per item.
  config.max_items = 8 if tiny else 0  # 0: every item.
  config.max_new_tokens = 24 if tiny else 96
  config.temperature = 0.7
  config.top_k = 0  # 0 disables.
  config.top_p = 0.95
  config.stop_strings = ("\n\n", "Statement:")
  config.batch_size = 8 if tiny else 32
  # Global: token budget of the in-context training set; documents are
  # subsampled (seeded) when the whole set does not fit.
  config.max_context_tokens = 512 if tiny else 6144
  config.min_words = 3
  config.lock()
  return config
