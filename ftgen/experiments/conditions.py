"""The experiment's conditions: their names and what each one runs.

A condition is one way of giving the model the training documents (or
not): plain fine-tuning, fine-tuning with augmented data, in-context
learning, retrieval, or nothing (`pretrained`). Each is scored with one of
the evaluation modes of `ftgen.eval.prompts.CONDITIONS`.
"""

from __future__ import annotations

# Every condition, in the paper's display order (tables, figures, configs).
CONDITIONS = ("pretrained", "finetune", "icl", "retrieval",
              "finetune_aug_local", "finetune_aug_global", "finetune_aug",
              "finetune_aug_oracle", "finetune_compute_control")
# The fine-tuning conditions and the augmented data each adds to the
# original documents (None: the original documents only; "both": local and
# global together).
AUGMENTATION = {"finetune": None, "finetune_aug_local": "local",
                "finetune_aug_global": "global", "finetune_aug": "both",
                "finetune_aug_oracle": "oracle",
                "finetune_compute_control": None}
# Plain fine-tuning for as many steps as the longest augmented condition:
# separates "more data" from "more compute" (augmented conditions train for
# more steps when steps follow the training-set size).
COMPUTE_CONTROL = "finetune_compute_control"
# The plain fine-tuning conditions: the original documents only, so sentence
# splitting follows the dataset's baseline rule (`DatasetSpec`).
PLAIN = ("finetune", COMPUTE_CONTROL)
# The rule-written augmentation, for datasets with machine-readable ground
# truth (`ftgen.data.registry`).
ORACLE = "finetune_aug_oracle"
# Evaluation mode of each condition (`ftgen.eval.prompts.CONDITIONS`).
EVAL_MODE = {"pretrained": "pretrained", "icl": "icl",
             "retrieval": "retrieval", **{c: "finetuned" for c in AUGMENTATION}}
# Conditions whose scores do not depend on the seed: run once.
SEED_FREE = ("pretrained", "retrieval")


def comparisons(conditions: list[str]) -> list[tuple[str, str]]:
  """The (a, b) pairs the paper's claims compare, a - b, among `conditions`:
  `icl` against `finetune`, every other fine-tuned condition against
  `finetune` and against `icl`, augmented fine-tuning against the
  matched-compute control, and `finetune` against `pretrained` (did it learn
  the trained statements at all) (ftgen/experiments/results.py)."""
  present = set(conditions)
  pairs = [("finetune", "pretrained"), ("icl", "finetune")]
  for cond in CONDITIONS:
    if cond in AUGMENTATION and cond != "finetune":
      pairs += [(cond, "finetune"), (cond, "icl")]
  pairs.append(("finetune_aug", COMPUTE_CONTROL))
  return [(a, b) for a, b in pairs if a in present and b in present]
