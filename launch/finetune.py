r"""Fine-tunes a model on a dataset, resuming from WORKDIR.

The command and its outputs are a contract
(docs/design.md#fine-tuning-outputs).

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

import _common  # launch/_common.py (this script's directory is on sys.path)
from ftgen.train import loop

_common.define_flags("Fine-tuning config.",
                     "Run directory (checkpoints, metrics, data).")


def main(config, workdir: str):
  summary = loop.finetune(config, workdir)
  print(json.dumps({k: v for k, v in summary.items() if k != "eval"}))


if __name__ == "__main__":
  _common.run(main)
