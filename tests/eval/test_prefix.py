"""Shared-prefix scoring equals brute-force full-context scoring."""

import numpy as np
import pytest

from ftgen.eval import prefix
from ftgen.eval import scoring
from ftgen.models import tiny

from tests.eval import conftest


def _questions(rng, head, num_questions=5, num_choices=3, vocab=256):
  """Requests question-major: each question's choices share its prompt."""
  reqs = []
  for _ in range(num_questions):
    prompt = tuple(rng.integers(3, vocab, rng.integers(1, 6)).tolist())
    for _ in range(num_choices):
      cont = tuple(rng.integers(3, vocab, rng.integers(1, 5)).tolist())
      reqs.append(scoring.Request(tuple(head) + prompt, cont))
  return reqs


def test_common_prefix_length_keeps_one_context_token():
  r = lambda ctx: scoring.Request(tuple(ctx), (9,))
  assert prefix.common_prefix_length([r([1, 2, 3]), r([1, 2, 4])]) == 2
  # Identical contexts: the last context token stays in the rows.
  assert prefix.common_prefix_length([r([1, 2, 3]), r([1, 2, 3])]) == 2
  assert prefix.common_prefix_length([r([1, 2, 3]), r([5, 2, 3])]) == 0
  assert prefix.common_prefix_length([r([1]), r([1, 2])]) == 0


def _rows(contexts, num_choices=4, cont_len=3):
  return [scoring.Request(tuple(c), tuple(range(50, 50 + cont_len)))
          for c in contexts for _ in range(num_choices)]


def test_token_costs_count_what_each_mode_encodes():
  head = list(range(100, 140))  # 40 tokens shared by every question.
  reqs = _rows([head + [7, 8], head + [9]], num_choices=2)
  costs = prefix.token_costs(reqs, min_prefix=8)
  assert costs["none"] == 2 * (42 + 3) + 2 * (41 + 3)
  # Prefix 40 once; each row keeps its remaining context and continuation.
  assert costs["shared"] == 40 + 2 * (2 + 3) + 2 * (1 + 3)
  # Each context minus its last token once; each row that token + its tail.
  assert costs["per_context"] == (41 + 2 * 4) + (40 + 2 * 4)
  # Under min_prefix nothing is cached.
  short = prefix.token_costs(reqs, min_prefix=64)
  assert short["shared"] == short["per_context"] == short["none"]


def test_choose_mode_follows_the_sharing_pattern():
  rng = np.random.default_rng(0)
  long_ctx = lambda n: rng.integers(3, 256, n).tolist()
  head = long_ctx(300)
  # ICL: one long context for all questions.
  icl = _rows([head + long_ctx(5) for _ in range(6)])
  assert prefix.choose_mode(icl, min_prefix=32) == "shared"
  # Retrieval: a long context of its own per question, shared by choices.
  retrieval = _rows([long_ctx(200) for _ in range(6)])
  assert prefix.choose_mode(retrieval, min_prefix=32) == "per_context"
  # Zero-shot: short prompts of their own, nothing worth caching.
  zero_shot = _rows([long_ctx(12) for _ in range(6)])
  assert prefix.choose_mode(zero_shot, min_prefix=32) == "none"
  # Long continuations: caching a context saves under a quarter; batched.
  long_tails = _rows([long_ctx(40) for _ in range(6)], cont_len=200)
  assert prefix.choose_mode(long_tails, min_prefix=32) == "none"


# gemma3's tiny config has a sliding window of 4 on local layers: the prefix
# path must apply windows across the prefix/suffix boundary too.
@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_prefix_scores_equal_brute_force(family):
  model, params = conftest.random_params(
      tiny.tiny_config(family, max_seq_len=512), seed=1)
  rng = np.random.default_rng(0)
  # 45: not a chunk multiple.
  head = (1,) + tuple(rng.integers(3, 256, 44).tolist())
  reqs = _questions(rng, head)
  brute = scoring.score_requests(model, params, reqs, batch_size=8,
                                 buckets=(64,))
  # 45 prefix tokens in chunks of 16: the last chunk is padded.
  cached, p = prefix.score_with_prefix(model, params, reqs, chunk=16,
                                       batch_size=8, buckets=(16,))
  assert p == len(head)
  assert cached.shapes == ((8, 16),)  # Rows hold only the suffixes.
  np.testing.assert_allclose(cached.logliks, brute.logliks, atol=1e-4, rtol=0)
  np.testing.assert_array_equal(cached.logliks.reshape(5, 3).argmax(1),
                                brute.logliks.reshape(5, 3).argmax(1))


def test_short_common_prefix_falls_back_to_plain_scoring(tiny_model):
  model, params = tiny_model
  rng = np.random.default_rng(4)
  reqs = _questions(rng, (1,), num_questions=2)
  out, p = prefix.score_with_prefix(model, params, reqs, min_prefix=8,
                                    batch_size=8, buckets=(16,))
  assert p == 0 and out.num_batches == 1


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_per_context_scores_equal_brute_force(family):
  model, params = conftest.random_params(
      tiny.tiny_config(family, max_seq_len=512), seed=2)
  rng = np.random.default_rng(5)
  # Retrieval-like: every question has its own long context (its documents)
  # of a different length; two contexts are too short to cache.
  reqs = []
  for q, n in enumerate((40, 23, 61, 2, 33, 1)):
    ctx = (1,) + tuple(rng.integers(3, 256, n).tolist())
    for _ in range(3 if q % 2 else 4):
      cont = tuple(rng.integers(3, 256, rng.integers(1, 5)).tolist())
      reqs.append(scoring.Request(ctx, cont))
  order = rng.permutation(len(reqs))  # Groups need not be contiguous.
  reqs = [reqs[i] for i in order]
  brute = scoring.score_requests(model, params, reqs, batch_size=8,
                                 buckets=(64,))
  out, cached = prefix.score_per_context(
      model, params, reqs, chunk=32, min_prefix=8, batch_size=8,
      buckets=(16, 32, 64))
  assert cached == 40 + 23 + 61 + 33  # The last context token stays a row.
  np.testing.assert_allclose(out.logliks, brute.logliks, atol=1e-4, rtol=0)
  np.testing.assert_array_equal(out.greedy, brute.greedy)
  # Cached groups score 3-4 choices in rows of 4, never the full context.
  assert (4, 16) in out.shapes and all(t <= 64 for _, t in out.shapes)
