r"""Evaluates a model on a dataset's multiple-choice questions.

The command and its outputs are a contract (docs/design.md#evaluation-outputs).

  python launch/evaluate.py --config=configs/evaluate.py:icl \
      --config.model=smollm2-135m --config.data=/tmp/ftgen_data/reversals \
      --workdir=/tmp/ftgen_eval/reversals_icl

MODE is pretrained, icl, retrieval or finetuned (with
--config.checkpoint=EXPORT_DIR). --config.dry_run=True prints token counts and
whether the context fits, without scoring.
"""

import json

import _common  # launch/_common.py (this script's directory is on sys.path)
from ftgen.eval import evaluate

_common.define_flags("Evaluation config.", "Output directory.")


def main(config, workdir: str):
  out = evaluate.run_evaluation(config, workdir)
  if not config.dry_run:
    keys = ("acc", "ci95", "stderr", "n", "chance", "acc_calibrated")
    brief = {s: {k: out["splits"][s][k] for k in keys
                 if k in out["splits"][s]}
             for s in out["splits"]}
    print(json.dumps({"condition": out["condition"], "splits": brief}))


if __name__ == "__main__":
  _common.run(main)
