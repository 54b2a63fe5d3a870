r"""In-context augmentation of a dataset (local or global).

  python launch/augment.py --config=configs/augment.py:reversals,local \
      --workdir=/tmp/ftgen_aug

Writes the augmented dataset directory WORKDIR/augmented/ (train.jsonl of
augmentations, report.json, generations.jsonl, manifest.json, README.md).
The source dataset is `config.data`, else `config.data_root/DATASET`
(`.../tiny/DATASET` for the tiny variant), generated when absent. For your
own documents: `--config=configs/augment.py:user,local --config.data=DIR`
with DIR holding train.jsonl.
"""

import pathlib
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "Augmentation config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.")
flags.mark_flags_as_required(["config", "workdir"])
_REPO = pathlib.Path(__file__).resolve().parent.parent


def _data_config(dataset: str, variant: str):
  """configs/data.py:DATASET[,VARIANT] (a launcher may read configs)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("ftgen_data_config",
                                                _REPO / "configs" / "data.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(",".join(p for p in (dataset, variant) if p))


def _data_dir(config) -> pathlib.Path:
  if config.data:
    return pathlib.Path(config.data)
  if config.dataset == "user":
    raise ValueError("the user dataset needs --config.data=DIR (a directory"
                     " holding train.jsonl of {\"id\", \"text\"} documents)")
  root = pathlib.Path(config.data_root)
  if config.data_variant:
    root = root / config.data_variant
  path = root / config.dataset
  if not (path / "train.jsonl").is_file():
    from ftgen.data import pipeline  # pylint: disable=g-import-not-at-top
    print(f"dataset {path} absent: generating it")
    path = pipeline.generate_to_dir(
        _data_config(config.dataset, config.data_variant), root)
  return path


def main(argv):
  del argv
  from ftgen.data import io  # pylint: disable=g-import-not-at-top
  from ftgen.checkpoints import sources  # pylint: disable=g-import-not-at-top
  from ftgen.augment import run as augment  # pylint: disable=g-import-not-at-top

  config = _CONFIG.value
  try:
    augment.check_config(config)
    data_dir = _data_dir(config)
    augment.run(config, data_dir, pathlib.Path(_WORKDIR.value) / "augmented")
  except (ValueError, KeyError, FileNotFoundError, io.DataError,
          sources.ModelNotAvailable) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
