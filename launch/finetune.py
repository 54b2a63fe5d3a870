r"""Fine-tunes a model on a dataset, resuming from WORKDIR (DESIGN §3.6).

  python launch/finetune.py --config=configs/finetune.py:reversals,tiny \
      --workdir=/tmp/ft_reversals

Generates the dataset under WORKDIR/data when absent, resumes from the newest
complete checkpoint in WORKDIR/checkpoints, and writes
WORKDIR/train_summary.json {"steps", "final_loss", "params_digest", ...}.

Exit codes: 0 when training finished or was preempted by SIGTERM (the
current step is then checkpointed; rerun the same command to resume), 1 on
a configuration or data error (the message names the bad setting).
"""

import json
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "Fine-tuning config.")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Run directory (checkpoints, metrics, data).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from ftgen.data import io  # pylint: disable=g-import-not-at-top
  from ftgen.train import loop  # pylint: disable=g-import-not-at-top

  try:
    summary = loop.finetune(_CONFIG.value, _WORKDIR.value)
  except (ValueError, KeyError, FileNotFoundError, io.DataError) as e:
    sys.exit(f"error: {e}")
  print(json.dumps({k: v for k, v in summary.items() if k != "eval"}))


if __name__ == "__main__":
  app.run(main)
