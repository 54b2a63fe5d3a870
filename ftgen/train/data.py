"""Fine-tuning data: documents -> scored token examples -> stateless batches.

Documents go through a sentence-splitting mode (`ftgen.data.splitting`), each
(context, target) example becomes `context target [eos]` tokens with only the
target (and eos) scored, encoded by the formatting rule evaluation uses
(`ftgen.checkpoints.tokenizer.encode_pair`: BOS first iff the tokenizer adds
one; a target without context follows the prefix token). Batches are padded
to one of a few bucket lengths, so the train step compiles at most once per
bucket.

Every batch is a pure function of (seed, step): example `i` of the stream is
`permutation(seed, epoch)[i mod n]` with `epoch = i // n`, so resuming at any
step needs no iterator state. Augmented data is added to the original
documents: batches are drawn uniformly from the union, as the paper trains
on the training set plus its augmentations (`augmented_ratio` = 0); a ratio
in (0, 1) instead fixes that share of rows per batch (the matched-steps
ablation: the original documents are then seen less often than in plain
fine-tuning of the same steps).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Sequence

import numpy as np

from ftgen.checkpoints import tokenizer as tokenizer_lib
from ftgen.data import io
from ftgen.data import records
from ftgen.data import workdir as workdir_lib
from ftgen.data import splitting
from ftgen.models import kv_cache


@dataclasses.dataclass(frozen=True)
class TokenizedPool:
  """Tokenized examples of one data source.

  Attributes:
    tokens: one int32 array per example, `context target [eos]` (the
      context holds the start or prefix token).
    scored: one bool array per example; `scored[i]` says whether token `i`
      is a training target (predicted from tokens `< i`).
  """

  tokens: tuple[np.ndarray, ...]
  scored: tuple[np.ndarray, ...]

  def __len__(self) -> int:
    return len(self.tokens)

  @property
  def max_len(self) -> int:
    return max(len(t) for t in self.tokens)

  @property
  def num_scored(self) -> int:
    return int(sum(s.sum() for s in self.scored))

  def __add__(self, other: "TokenizedPool") -> "TokenizedPool":
    return TokenizedPool(self.tokens + other.tokens,
                         self.scored + other.scored)


def tokenize_examples(examples: Iterable[splitting.Example], tokenizer: Any,
                      *, append_eos: bool = True) -> TokenizedPool:
  """Tokenizes (context, target) examples; context tokens are not scored.

  Each example is encoded as evaluation encodes a (prompt, choice) pair, so
  the scored span is exactly the target's tokens and a fine-tuned model is
  evaluated in the format it was trained on: a sequence starts with the
  tokenizer's start tokens (BOS for Gemma and Llama 3, nothing for SmolLM2),
  then text. Without start tokens, a document with no context starts with
  its first word, as a question prompt does; that first token is not a target
  (nothing precedes it), instead of being predicted from a prefix token that
  no evaluation prompt starts with.
  """
  eos = _first_eos(tokenizer) if append_eos else None
  tokens, scored = [], []
  for ex in examples:
    ctx, tgt = tokenizer_lib.encode_pair(tokenizer, ex.context, ex.target,
                                         prefix_empty=False)
    if eos is not None:
      tgt += (eos,)
    if len(ctx) + len(tgt) < 2:
      continue  # One token and nothing to predict it from.
    tokens.append(np.asarray(ctx + tgt, np.int32))
    mask = np.asarray([False] * len(ctx) + [True] * len(tgt), bool)
    mask[0] = False  # The first token has nothing before it to predict it.
    scored.append(mask)
  if not tokens:
    raise ValueError("no training examples: every document is empty")
  return TokenizedPool(tuple(tokens), tuple(scored))


def _first_eos(tokenizer: Any) -> int:
  eos = getattr(tokenizer, "eos_ids", None)
  if eos is None:
    eos = [tokenizer.eos_id]
  if isinstance(eos, int):
    return eos
  return list(eos)[0]


def read_augmented(path: str | os.PathLike[str]) -> list[records.Document]:
  """Augmented documents: a JSONL of `{"id", "text"}` or a directory of it.

  A directory is searched for `augmented.jsonl`, then `train.jsonl`.
  """
  path = workdir_lib.as_path(path)  # Local or gs:// (an experiment's).
  if path.is_dir():
    for name in ("augmented.jsonl", "train.jsonl"):
      if (path / name).is_file():
        return io.read_documents(path / name)
    raise ValueError(
        f"config key 'data.augmented_path': directory {path} holds neither"
        " augmented.jsonl nor train.jsonl")
  if not path.is_file():
    raise ValueError(
        f"config key 'data.augmented_path': {path} does not exist")
  return io.read_documents(path)


class Batcher:
  """Batches that are a pure function of (seed, step).

  Each batch has `batch_size` rows. With an augmented pool and
  `augmented_ratio` 0 (the union), rows are drawn from the original examples
  followed by the augmented ones as one pool, so every example, original or
  augmented, is seen once per pass; `original` stays the original examples
  and `train` is what batches are drawn from. With a ratio in (0, 1),
  `num_augmented` rows come from the augmented pool and the rest from the
  original one. Arrays (all [B, T]):
  `inputs` int32 tokens, `targets` int32 next tokens, `weights` float32 (1
  on scored targets), `mask` bool (real, non-padding input positions).
  """

  def __init__(self, original: TokenizedPool, batch_size: int, *,
               seed: int, pad_id: int, max_len: int, num_buckets: int = 4,
               augmented: TokenizedPool | None = None,
               augmented_ratio: float = 0.0):
    if batch_size <= 0:
      raise ValueError(
          f"config key 'batch_size' must be positive, got {batch_size}")
    if augmented is not None and not 0.0 <= augmented_ratio < 1.0:
      raise ValueError(
          "config key 'data.augmented_ratio' must be 0 (the union of original"
          " and augmented examples) or lie in (0, 1) when"
          f" 'data.augmented_path' is set, got {augmented_ratio}")
    self.original = original
    self.augmented = augmented
    self.batch_size = batch_size
    self.seed = seed
    self.pad_id = pad_id
    self.union = augmented is not None and augmented_ratio == 0.0
    # What the first stream draws from.
    self.train = original + augmented if self.union else original
    self.num_augmented = (
        0 if augmented is None or self.union
        else min(batch_size - 1, max(1, round(augmented_ratio * batch_size))))
    longest = max(original.max_len,
                  augmented.max_len if augmented is not None else 0)
    # Inputs drop the last token, so an example of n tokens needs length n-1.
    if longest - 1 > max_len:
      raise ValueError(
          f"an example has {longest} tokens, more than config key"
          f" 'data.max_len' = {max_len} allows (+1); raise data.max_len or"
          " use a sentence-splitting mode that makes shorter examples")
    self.buckets = kv_cache.halving_buckets(longest - 1, num_buckets)

  def _indices(self, pool_id: int, n: int, start: int, count: int
               ) -> np.ndarray:
    """Pool indices of stream positions [start, start + count)."""
    out = np.empty(count, np.int64)
    pos = np.arange(start, start + count)
    for epoch in np.unique(pos // n):
      perm = np.random.default_rng(
          [self.seed, pool_id, int(epoch)]).permutation(n)
      sel = pos // n == epoch
      out[sel] = perm[pos[sel] % n]
    return out

  def rows(self, step: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tokens, scored) of every row of batch `step`."""
    n_aug = self.num_augmented
    n_orig = self.batch_size - n_aug
    picked = [(self.train, i) for i in self._indices(
        0, len(self.train), step * n_orig, n_orig)]
    if n_aug:
      picked += [(self.augmented, i) for i in self._indices(
          1, len(self.augmented), step * n_aug, n_aug)]
    return [(pool.tokens[i], pool.scored[i]) for pool, i in picked]

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """Batch `step` as numpy arrays."""
    rows = self.rows(step)
    need = max(len(t) for t, _ in rows) - 1
    length = kv_cache.bucket_length(need, self.buckets)
    return pad_rows(rows, length, self.pad_id)

  def epoch_steps(self) -> float:
    """Steps per pass over the training examples (the union, when there is
    one; else the original pool)."""
    return len(self.train) / (self.batch_size - self.num_augmented)


def pad_rows(rows: Sequence[tuple[np.ndarray, np.ndarray]], length: int,
             pad_id: int) -> dict[str, np.ndarray]:
  """Shifts rows into (inputs, targets) and pads them to `length`."""
  b = len(rows)
  inputs = np.full((b, length), pad_id, np.int32)
  targets = np.full((b, length), pad_id, np.int32)
  weights = np.zeros((b, length), np.float32)
  mask = np.zeros((b, length), bool)
  for r, (tok, sc) in enumerate(rows):
    n = len(tok) - 1
    inputs[r, :n] = tok[:-1]
    targets[r, :n] = tok[1:]
    weights[r, :n] = sc[1:]
    mask[r, :n] = True
  return dict(inputs=inputs, targets=targets, weights=weights, mask=mask)


def build_batcher(documents: Sequence[records.Document], tokenizer: Any,
                  data_cfg: Any, batch_size: int, seed: int) -> Batcher:
  """The batcher of a `configs/finetune.py` `data` block.

  Reads `data_cfg.split_mode`, `append_eos`, `max_len`, `num_buckets`,
  `augmented_path` and `augmented_ratio` (0: the union).
  """
  examples = splitting.make_examples(documents, data_cfg.split_mode)
  original = tokenize_examples(examples, tokenizer,
                               append_eos=data_cfg.append_eos)
  augmented = None
  if data_cfg.augmented_path:
    aug_examples = splitting.make_examples(
        read_augmented(data_cfg.augmented_path), data_cfg.split_mode)
    augmented = tokenize_examples(aug_examples, tokenizer,
                                  append_eos=data_cfg.append_eos)
  pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
  return Batcher(original, batch_size, seed=seed, pad_id=pad,
                 max_len=data_cfg.max_len, num_buckets=data_cfg.num_buckets,
                 augmented=augmented,
                 augmented_ratio=data_cfg.augmented_ratio)
