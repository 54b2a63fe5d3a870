r"""Evaluates a model on a dataset's multiple-choice questions (DESIGN §3.3).

  python launch/evaluate.py --config=configs/evaluate.py:icl \
      --config.model=smollm2-135m --config.data=/tmp/ftgen_data/reversals \
      --workdir=/tmp/ftgen_eval/reversals_icl

MODE is pretrained, icl, retrieval or finetuned (with
--config.checkpoint=EXPORT_DIR). --config.dry_run=True prints token counts and
whether the context fits, without scoring.
"""

import json
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Evaluation config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from ftgen.data import io  # pylint: disable=g-import-not-at-top
  from ftgen.eval import evaluate  # pylint: disable=g-import-not-at-top

  try:
    out = evaluate.run_evaluation(_CONFIG.value, _WORKDIR.value)
  except (ValueError, KeyError, FileNotFoundError, ImportError,
          io.DataError) as e:
    sys.exit(f"error: {e}")
  if not _CONFIG.value.dry_run:
    brief = {s: {k: out["splits"][s][k] for k in ("acc", "stderr", "n",
                                                  "chance", "acc_calibrated")
                 if k in out["splits"][s]}
             for s in out["splits"]}
    print(json.dumps({"condition": out["condition"], "splits": brief}))


if __name__ == "__main__":
  app.run(main)
