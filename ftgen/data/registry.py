"""Dataset name -> generator function, imported lazily.

Each generator is `generate(cfg: ConfigDict, seed: int) -> records.Dataset`,
where `cfg` is the `generator` block of `configs/data.py:NAME`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from ftgen.data import records

GENERATORS: dict[str, str] = {
    "reversals": "ftgen.data.reversals:generate",
    "syllogisms": "ftgen.data.syllogisms:generate",
    "semantic": "ftgen.data.semantic:generate",
    "celebrities": "ftgen.data.celebrities:generate",
    "process": "ftgen.data.process:generate",
    "user": "ftgen.data.user_docs:generate",
}


def get_generator(name: str) -> Callable[[Any, int], records.Dataset]:
  if name not in GENERATORS:
    raise ValueError(
        f"unknown dataset {name!r}; allowed: {', '.join(sorted(GENERATORS))}"
    )
  module, fn = GENERATORS[name].split(":")
  return getattr(importlib.import_module(module), fn)


def generate(name: str, cfg: Any, seed: int) -> records.Dataset:
  dataset = get_generator(name)(cfg, seed)
  # User documents may come without questions (train-only, for augmentation
  # and fine-tuning); every other generator must produce both.
  if not dataset.train or (not dataset.test and name != "user"):
    raise ValueError(f"dataset {name!r} generated an empty train or test set")
  return dataset
