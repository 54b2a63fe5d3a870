r"""Generates one dataset directory (docs/design.md#dataset-files).

  python launch/generate_data.py --config=configs/data.py:reversals \
      --workdir=/tmp/ftgen_data
"""

import _common  # launch/_common.py (this script's directory is on sys.path)
from ftgen.data import pipeline

_common.define_flags("Dataset config.", "Output parent directory.")


def main(config, workdir: str):
  pipeline.generate_to_dir(config, workdir)


if __name__ == "__main__":
  _common.run(main)
