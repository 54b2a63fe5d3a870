r"""Generates one dataset directory (DESIGN §3.2).

  python launch/generate_data.py --config=configs/data.py:reversals \
      --workdir=/tmp/ftgen_data
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Dataset config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output parent directory.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from ftgen.data import io  # pylint: disable=g-import-not-at-top
  from ftgen.data import pipeline  # pylint: disable=g-import-not-at-top

  try:
    pipeline.generate_to_dir(_CONFIG.value, _WORKDIR.value)
  except (ValueError, KeyError, FileNotFoundError, io.DataError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
