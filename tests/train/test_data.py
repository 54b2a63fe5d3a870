"""Tokenized examples, masks, and batches as a pure function of (seed, step)."""

import collections

import ml_collections
import numpy as np
import pytest

from ftgen.data import records
from ftgen.data import splitting
from ftgen.train import data


class _WordTokenizer:
  """One id per character (+3), BOS 1, EOS 2, pad 0: easy to check by hand."""

  bos_id, eos_ids, pad_id = 1, (2,), 0

  def __init__(self, add_bos=True):
    self.add_bos = add_bos

  def encode(self, text, add_bos=None):
    if add_bos is None:
      add_bos = self.add_bos
    return ([1] if add_bos else []) + [3 + ord(c) % 200 for c in text]


def test_context_is_unscored_target_and_eos_scored():
  pool = data.tokenize_examples(
      [splitting.Example("ab", "cde")], _WordTokenizer())
  tok, sc = pool.tokens[0], pool.scored[0]
  assert len(tok) == 1 + 2 + 3 + 1
  assert tok[0] == 1 and tok[-1] == 2
  assert sc.tolist() == [False, False, False, True, True, True, True]


def test_start_token_follows_the_tokenizer_convention():
  # A tokenizer that adds no BOS (SmolLM2): an example starts with its own
  # text, as an evaluation prompt does; without a context, its first token is
  # not a target (no prefix token that no prompt starts with).
  pool = data.tokenize_examples(
      [splitting.Example("ab", "cde"), splitting.Example("", "cde")],
      _WordTokenizer(add_bos=False))
  assert pool.tokens[0].tolist() == [3 + ord("a"), 3 + ord("b"),
                                     3 + ord("c"), 3 + ord("d"),
                                     3 + ord("e"), 2]
  assert pool.scored[0].tolist() == [False, False, True, True, True, True]
  assert pool.tokens[1].tolist() == [3 + ord("c"), 3 + ord("d"),
                                     3 + ord("e"), 2]
  assert pool.scored[1].tolist() == [False, True, True, True]
  # A one-token document without start tokens has nothing to learn.
  with pytest.raises(ValueError, match="no training examples"):
    data.tokenize_examples([splitting.Example("", "c")],
                           _WordTokenizer(add_bos=False), append_eos=False)


def test_target_whitespace_split_follows_lm_eval():
  # Context whitespace at the boundary is scored with the target.
  pool = data.tokenize_examples([splitting.Example("ab ", "cd")],
                                _WordTokenizer(), append_eos=False)
  assert pool.tokens[0].tolist() == [1, 3 + ord("a"), 3 + ord("b"),
                                     3 + ord(" "), 3 + ord("c"), 3 + ord("d")]
  assert pool.scored[0].tolist() == [False, False, False, True, True, True]


def test_pad_rows_shifts_and_masks():
  tok = np.array([1, 10, 11, 12, 2], np.int32)
  sc = np.array([0, 0, 1, 1, 1], bool)
  b = data.pad_rows([(tok, sc)], 8, pad_id=0)
  assert b["inputs"][0, :4].tolist() == [1, 10, 11, 12]
  assert b["targets"][0, :4].tolist() == [10, 11, 12, 2]
  # Target i is scored when token i+1 is: 11, 12 and eos.
  assert b["weights"][0].tolist() == [0, 1, 1, 1, 0, 0, 0, 0]
  assert b["mask"][0].tolist() == [True] * 4 + [False] * 4


def _pool(n, offset=0):
  return data.TokenizedPool(
      tuple(np.array([1, 3 + i + offset, 2], np.int32) for i in range(n)),
      tuple(np.array([0, 1, 1], bool) for _ in range(n)))


def test_batches_are_a_pure_function_of_seed_and_step():
  a = data.Batcher(_pool(10), 4, seed=3, pad_id=0, max_len=64)
  b = data.Batcher(_pool(10), 4, seed=3, pad_id=0, max_len=64)
  for step in (7, 0, 3, 7):  # Any order, repeated: same batch.
    for k in ("inputs", "targets", "weights", "mask"):
      np.testing.assert_array_equal(a.batch(step)[k], b.batch(step)[k])
  c = data.Batcher(_pool(10), 4, seed=4, pad_id=0, max_len=64)
  assert not all(np.array_equal(a.batch(s)["inputs"], c.batch(s)["inputs"])
                 for s in range(5))


def test_each_epoch_visits_every_example_once():
  n, bs = 12, 4
  batcher = data.Batcher(_pool(n), bs, seed=0, pad_id=0, max_len=64)
  seen = [int(r[0][1]) for s in range(n // bs) for r in batcher.rows(s)]
  assert sorted(seen) == [3 + i for i in range(n)]
  # The next epoch is a different permutation of the same examples.
  seen2 = [int(r[0][1]) for s in range(n // bs, 2 * n // bs)
           for r in batcher.rows(s)]
  assert sorted(seen2) == sorted(seen) and seen2 != seen


def test_mixing_ratio_sets_rows_per_batch():
  batcher = data.Batcher(_pool(10), 8, seed=0, pad_id=0, max_len=64,
                         augmented=_pool(30, offset=100), augmented_ratio=0.25)
  assert batcher.num_augmented == 2
  counts = collections.Counter()
  for s in range(20):
    for tok, _ in batcher.rows(s):
      counts["aug" if tok[1] >= 103 else "orig"] += 1
  assert counts == {"orig": 120, "aug": 40}


def test_buckets_bound_the_number_of_shapes():
  lengths = np.random.default_rng(0).integers(3, 120, 50)
  pool = data.TokenizedPool(
      tuple(np.ones(int(n), np.int32) for n in lengths),
      tuple(np.ones(int(n), bool) for n in lengths))
  batcher = data.Batcher(pool, 4, seed=0, pad_id=0, max_len=256,
                         num_buckets=3)
  shapes = {batcher.batch(s)["inputs"].shape for s in range(40)}
  assert len(shapes) <= 3
  assert {t for _, t in shapes} <= set(batcher.buckets)


def test_too_long_example_names_max_len():
  with pytest.raises(ValueError, match="data.max_len"):
    data.Batcher(_pool(3), 2, seed=0, pad_id=0, max_len=1)


@pytest.mark.parametrize("ratio", [1.0, -0.1])
def test_bad_ratio_names_the_key(ratio):
  with pytest.raises(ValueError, match="data.augmented_ratio"):
    data.Batcher(_pool(3), 2, seed=0, pad_id=0, max_len=64,
                 augmented=_pool(3), augmented_ratio=ratio)


def _epochs_of(batcher, n_examples, epochs):
  """How often each example (by its first content token) appears in the
  batches of `epochs` passes over `n_examples` examples."""
  steps = epochs * n_examples // batcher.batch_size
  return collections.Counter(int(tok[1]) for s in range(steps)
                             for tok, _ in batcher.rows(s))


def test_union_sees_every_original_as_often_as_plain_finetuning():
  # Matched epochs over each condition's own data (the runner's default
  # step rule, ftgen/experiments/runner.py): plain fine-tuning on 12
  # documents and augmented fine-tuning on those 12 plus 20 augmentations.
  plain = data.Batcher(_pool(12), 4, seed=0, pad_id=0, max_len=64)
  union = data.Batcher(_pool(12), 4, seed=0, pad_id=0, max_len=64,
                       augmented=_pool(20, offset=100))
  assert union.union and len(union.train) == 32 and len(union.original) == 12
  seen_plain = _epochs_of(plain, 12, 3)
  seen_union = _epochs_of(union, 32, 3)
  originals = [3 + i for i in range(12)]
  assert [seen_plain[t] for t in originals] == [3] * 12
  assert [seen_union[t] for t in originals] == [3] * 12
  assert sorted(t for t in seen_union if t >= 103) == [
      103 + i for i in range(20)]
  assert union.epoch_steps() == 8.0
  # The old design, half of each batch augmented for plain fine-tuning's
  # steps, saw each original half as often.
  ratio = data.Batcher(_pool(12), 4, seed=0, pad_id=0, max_len=64,
                       augmented=_pool(20, offset=100), augmented_ratio=0.5)
  seen_ratio = _epochs_of(ratio, 12, 3)
  assert sum(seen_ratio[t] for t in originals) == 18


def test_build_batcher_with_splitting_and_augmented_file(tmp_path):
  aug = tmp_path / "augmented.jsonl"
  aug.write_text('{"id": "a0", "text": "Zz are big. Yy are small."}\n')
  cfg = ml_collections.ConfigDict(dict(
      split_mode="independent", append_eos=True, max_len=64, num_buckets=2,
      augmented_path=str(aug), augmented_ratio=0.0))
  docs = [records.Document("d0", "One two. Three four."),
          records.Document("d1", "Five.")]
  batcher = data.build_batcher(docs, _WordTokenizer(), cfg, 4, seed=0)
  assert len(batcher.original) == 3 and len(batcher.augmented) == 2
  cfg.augmented_path = str(tmp_path / "missing.jsonl")
  with pytest.raises(ValueError, match="data.augmented_path"):
    data.build_batcher(docs, _WordTokenizer(), cfg, 4, seed=0)
