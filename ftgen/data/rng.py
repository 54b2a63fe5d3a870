"""Named, seeded random streams (never Python `hash()` or set order).

`stream(seed, "reversals/facts")` returns a numpy Generator whose state
depends only on the seed and the name, so adding a new random choice under a
new name never shifts the draws of existing ones.
"""

from __future__ import annotations

import hashlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
  digest = hashlib.sha256(f"{int(seed)}:{name}".encode("utf-8")).digest()
  return np.random.Generator(
      np.random.PCG64(int.from_bytes(digest[:16], "little")))


def shuffled(items, seed: int, name: str) -> list:
  """A copy of `items` in a seeded order."""
  items = list(items)
  order = stream(seed, name).permutation(len(items))
  return [items[i] for i in order]
