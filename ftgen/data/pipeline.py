"""Generate a dataset from its config and write it to `workdir/NAME/`.

`ensure_dataset` is the one "generate the dataset when absent" of ftgen,
used by fine-tuning, the experiment runner and the augmentation launcher.
"""

from __future__ import annotations

import time
from typing import Any

from etils import epath

from ftgen.data import io
from ftgen.data import lm_eval
from ftgen.data import registry
from ftgen.data import workdir as workdir_lib


def generate_to_dir(config: Any, workdir: epath.PathLike
                    ) -> workdir_lib.AnyPath:
  """Runs the generator of `config.name` and writes its dataset directory.

  The files: docs/design.md#dataset-files.

  Args:
    config: a `configs/data.py` ConfigDict.
    workdir: parent directory; the dataset lands in `workdir/config.name`.

  Returns:
    The dataset directory.
  """
  start = time.perf_counter()
  outdir = workdir_lib.as_path(workdir) / config.name
  # The directory is replaced whole: a user's directory there, or an input
  # inside it, is refused before generating (docs/design.md#reliability).
  workdir_lib.check_replaceable(outdir)
  workdir_lib.check_inputs_outside(config.to_dict(), [outdir])
  dataset = registry.generate(config.name, config.generator, config.seed)
  if config.lm_eval:
    dataset.extra_files.update(
        lm_eval.task_files(dataset, config.get("task_prefix", "")))
  path = io.write_dataset(
      dataset, outdir, seed=config.seed, config=config.to_dict(),
      parquet=config.parquet,
      validity=registry.validity(dataset) if dataset.test else None)
  elapsed = time.perf_counter() - start
  print(
      f"wrote {path}: {len(dataset.train)} training documents,"
      f" {len(dataset.test)} questions in splits {dataset.splits}"
      f" ({elapsed:.1f} s)"
  )
  return path


def ensure_dataset(config: Any, workdir: epath.PathLike
                   ) -> workdir_lib.AnyPath:
  """`workdir/config.name`, generated from `config` unless already there.

  A directory with a manifest.json is complete: `io.write_dataset` fills a
  temporary sibling and renames it into place, manifest included, so an
  interrupted generation leaves no manifest behind.

  Args:
    config: a `configs/data.py` ConfigDict.
    workdir: parent directory of the dataset directory.

  Returns:
    The dataset directory.
  """
  path = workdir_lib.as_path(workdir) / config.name
  if (path / "manifest.json").is_file():
    return path
  return generate_to_dir(config, workdir)
