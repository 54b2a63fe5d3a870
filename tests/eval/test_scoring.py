"""Scoring: batching and the jitted scorer (the tokenization rule:
tests/checkpoints/test_tokenizer.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ftgen.eval import prefix as prefix_lib
from ftgen.eval import scoring
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding as sharding_lib


def _reference(model, params, request):
  """Unpadded, unbatched log-prob of the continuation (no shortcuts)."""
  toks = jnp.asarray([request.tokens], jnp.int32)
  logp = np.asarray(_log_softmax(model, params, toks))
  n = len(request.context)
  return float(sum(logp[n - 1 + i, t]
                   for i, t in enumerate(request.continuation)))


@functools.partial(jax.jit, static_argnums=0)
def _log_softmax(model, params, toks):
  return jax.nn.log_softmax(model.apply({"params": params}, toks)[0], -1)


def _random_requests(rng, n, vocab=256, head=(), total=(6, 11)):
  """Requests of a few total lengths (few reference compiles), random split."""
  out = []
  for _ in range(n):
    length = int(rng.choice(total))
    cont = int(rng.integers(1, 5))
    toks = tuple(rng.integers(3, vocab, length).tolist())
    out.append(scoring.Request(tuple(head) + toks[:-cont], toks[-cont:]))
  return out


def test_batches_cover_every_request_once_with_right_weights():
  rng = np.random.default_rng(0)
  reqs = _random_requests(rng, 23)
  batches = scoring.make_batches(reqs, batch_size=4, buckets=(8, 16))
  seen = np.concatenate([b.index[b.index >= 0] for b in batches])
  assert sorted(seen.tolist()) == list(range(23))
  for b in batches:
    assert b.tokens.shape[0] == 4 and b.tokens.shape[1] in (8, 16)
    for row, i in enumerate(b.index):
      if i < 0:
        assert not b.weights[row].any()
        continue
      r = reqs[i]
      assert b.weights[row].sum() == len(r.continuation)
      assert b.targets[row][b.weights[row]].tolist() == list(r.continuation)
      n = len(r) - 1
      assert b.tokens[row, :n].tolist() == list(r.tokens[:-1])


def test_max_batch_tokens_shrinks_rows_for_long_buckets():
  rng = np.random.default_rng(1)
  reqs = _random_requests(rng, 8)
  batches = scoring.make_batches(reqs, batch_size=8, buckets=(16,),
                                 max_batch_tokens=32)
  assert {b.tokens.shape for b in batches} == {(2, 16)}


def test_scores_match_unbatched_reference(tiny_model):
  model, params = tiny_model
  rng = np.random.default_rng(2)
  reqs = _random_requests(rng, 11)
  got = scoring.score_requests(model, params, reqs, batch_size=4,
                               buckets=(16,))
  want = np.array([_reference(model, params, r) for r in reqs])
  np.testing.assert_allclose(got.logliks, want, atol=1e-4, rtol=1e-5)
  # Padding and batching never change a score: score one at a time too.
  single = scoring.score_requests(model, params, reqs[:3], batch_size=1,
                                  buckets=(16,))
  np.testing.assert_allclose(single.logliks, want[:3], atol=1e-4, rtol=1e-5)
  assert got.shapes == ((4, 16),) and got.num_batches == 3


def test_greedy_flag(tiny_model):
  model, params = tiny_model
  ctx = (1, 5, 6, 7, 8)
  logp = _log_softmax(model, params, jnp.asarray([ctx + (9,)]))[len(ctx) - 1]
  best, worst = int(jnp.argmax(logp)), int(jnp.argmin(logp))
  out = scoring.score_requests(
      model, params, [scoring.Request(ctx, (best,)),
                      scoring.Request(ctx, (worst,))], batch_size=4,
      buckets=(16,))
  assert out.greedy.tolist() == [True, False]
  assert out.logliks[0] > out.logliks[1]


def test_scores_over_all_devices_equal_one_device(tiny_model):
  """Rows split over the 8 test devices (batches of 4 and 3 rows padded to
  8) score as on one device, without and with a prefix cache."""
  assert jax.device_count() == 8  # tests/conftest.py
  model, params = tiny_model
  mesh = mesh_lib.data_mesh()
  replicated = sharding_lib.replicate(params, mesh)
  rng = np.random.default_rng(5)
  reqs = _random_requests(rng, 7)
  want = scoring.score_requests(model, params, reqs, batch_size=4,
                                buckets=(16,))
  got = scoring.score_requests(model, replicated, reqs, batch_size=4,
                               buckets=(16,), mesh=mesh)
  np.testing.assert_allclose(got.logliks, want.logliks, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(got.greedy, want.greedy)
  assert got.shapes == want.shapes == ((4, 16),)
  head = tuple(rng.integers(3, 256, 12).tolist())
  reqs = _random_requests(rng, 5, head=head)
  want, p = prefix_lib.score_with_prefix(model, params, reqs, batch_size=4,
                                         buckets=(16,))
  got, q = prefix_lib.score_with_prefix(model, replicated, reqs,
                                        batch_size=4, buckets=(16,),
                                        mesh=mesh)
  assert p == q == 12
  np.testing.assert_allclose(got.logliks, want.logliks, rtol=1e-5, atol=1e-5)
