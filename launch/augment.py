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

import _common  # launch/_common.py (this script's directory is on sys.path)
from ftgen import configs
from ftgen.augment import run as augment
from ftgen.data import pipeline
from ftgen.data import registry
from ftgen.data import workdir as workdir_lib

_common.define_flags("Augmentation config.", "Output directory.")


def _data_config(dataset: str, variant: str):
  """configs/data.py:DATASET[,VARIANT] (a launcher may read configs)."""
  return configs.load(
      "data:" + ",".join(p for p in (dataset, variant) if p))


def _data_dir(config) -> workdir_lib.AnyPath:
  if config.data:
    return workdir_lib.as_path(config.data)
  if not registry.get(config.dataset).synthetic:
    raise ValueError(f"the {config.dataset} dataset needs --config.data=DIR"
                     " (a directory holding train.jsonl of {\"id\", \"text\"}"
                     " documents)")
  root = workdir_lib.as_path(config.data_root)
  if config.data_variant:
    root = root / config.data_variant
  return pipeline.ensure_dataset(
      _data_config(config.dataset, config.data_variant), root)


def main(config, workdir: str):
  augment.check_config(config)
  augment.run(config, _data_dir(config),
              workdir_lib.as_path(workdir) / "augmented")


if __name__ == "__main__":
  _common.run(main)
