"""The KV cache module: positions, prefix prefill, bucketing, reset."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.models import kv_cache
from ftgen.models.decoder import Decoder
from ftgen.models.tiny import tiny_config, tiny_params


@functools.lru_cache(maxsize=None)
def _model(name="llama"):
  cfg = tiny_config(name)
  return Decoder(cfg), tiny_params(cfg, seed=0)


def test_bucket_length():
  assert kv_cache.bucket_length(1, (16, 64)) == 16
  assert kv_cache.bucket_length(17, (16, 64)) == 64
  # Past the largest bucket: a multiple of it, or of `multiple`.
  assert kv_cache.bucket_length(65, (16, 64)) == 128
  assert kv_cache.bucket_length(65, (64, 16)) == 128  # Order is irrelevant.
  assert kv_cache.bucket_length(1025, (512, 1024), multiple=256) == 1280


def test_halving_buckets_hold_the_longest_row():
  assert kv_cache.halving_buckets(100, 4) == (16, 32, 64, 112)
  assert kv_cache.halving_buckets(100, 2) == (64, 112)
  assert kv_cache.halving_buckets(100, 4, multiple=64) == (64, 128)
  assert kv_cache.halving_buckets(5, 3) == (16,)


def test_token_positions_skip_padding_on_host_and_device():
  mask = np.array([[False, False, True, True], [True, True, True, False]])
  want = [[5, 5, 5, 6], [0, 1, 2, 2]]
  host = kv_cache.token_positions(mask, np.array([5, 0]))
  assert isinstance(host, np.ndarray) and host.dtype == np.int32
  np.testing.assert_array_equal(host, want)
  dev = jax.jit(kv_cache.token_positions)(jnp.asarray(mask),
                                          jnp.asarray([5, 0]))
  np.testing.assert_array_equal(dev, want)
  np.testing.assert_array_equal(kv_cache.token_positions(mask, 3),
                                [[3, 3, 3, 4], [3, 4, 5, 5]])


def test_prefill_prefix_chunked_equals_one_shot_forward():
  model, params = _model("gemma3")  # Sliding windows shorter than a chunk.
  tokens = list(np.random.default_rng(0).integers(3, 256, 11))
  one = kv_cache.prefill_prefix(model, params, tokens, chunk=512)
  chunked = kv_cache.prefill_prefix(model, params, tokens, chunk=4)
  assert one.length == chunked.length == 11
  assert kv_cache.slots(chunked.cache) == 12  # The last chunk is padded.
  np.testing.assert_array_equal(chunked.cache["pos"][0],
                                list(range(11)) + [-1])
  # Per layer [B,K,S,H]: slots are the second-minor axis.
  np.testing.assert_allclose(np.stack(chunked.cache["k"])[..., :11, :],
                             np.stack(one.cache["k"]), atol=1e-5)
  np.testing.assert_allclose(np.stack(chunked.cache["v"])[..., :11, :],
                             np.stack(one.cache["v"]), atol=1e-5)
  # Both equal a plain cached forward; its K/V are not all zero.
  _, ref = model.apply({"params": params}, jnp.asarray([tokens]),
                       cache=kv_cache.init_cache(model.config, 1, 11))
  assert np.abs(np.stack(ref["k"])).max() > 0.1
  np.testing.assert_allclose(np.stack(one.cache["k"]), np.stack(ref["k"]),
                             atol=1e-5)
  # A prefix continues the positions: the next token gets position 11.
  np.testing.assert_array_equal(
      kv_cache.next_positions(2, prefix=chunked.cache), [11, 11])
  with pytest.raises(ValueError, match="at least one token"):
    kv_cache.prefill_prefix(model, params, [])


def test_prefill_buckets_short_prefixes():
  model, params = _model()
  a = kv_cache.prefill_prefix(model, params, list(range(3, 23)), chunk=512,
                              buckets=(16, 32, 64))
  b = kv_cache.prefill_prefix(model, params, list(range(3, 30)), chunk=512,
                              buckets=(16, 32, 64))
  sizes = lambda pc: {x.shape for x in jax.tree.leaves(pc.cache)}
  assert (a.length, b.length) == (20, 27) and sizes(a) == sizes(b)
  assert kv_cache.slots(a.cache) == 32


def test_reset_empties_the_cache():
  model, params = _model()
  cache = kv_cache.init_cache(model.config, 2, 8)
  _, cache = model.apply({"params": params}, jnp.ones((2, 3), jnp.int32),
                         cache=cache)
  np.testing.assert_array_equal(kv_cache.next_positions(2, cache), [3, 3])
  empty = kv_cache.reset(cache)
  assert np.asarray(empty["end"]).shape == () and int(empty["end"]) == 0
  assert (np.asarray(empty["pos"]) == -1).all()
  np.testing.assert_array_equal(kv_cache.next_positions(2, empty), [0, 0])


def test_decode_step_writes_the_cache_in_place_without_copies():
  """A decode step's HLO: each layer's K and V are only written in place.

  Every array of a layer cache's shape is an input or a dynamic-update-slice
  of it (one per layer and K/V): no copy, transpose, broadcast or slice of a
  whole layer's cache (the scanned cache of before re-stacked it per step).
  """
  model, params = _model("gemma3")
  cfg = model.config
  b, s = 4, 256
  cache = kv_cache.init_cache(cfg, b, s)
  step = jax.jit(lambda p, c, t: model.apply({"params": p}, t, cache=c),
                 donate_argnums=1)
  hlo = step.lower(params, cache, jnp.ones((b, 1), jnp.int32)).compile()
  whole = f"f32[{b},{cfg.num_kv_heads},{s},{cfg.head_dim}]"
  made = [line.strip() for line in hlo.as_text().splitlines()
          if f"= {whole}" in line and " parameter(" not in line]
  writes = [m for m in made if "dynamic-update-slice" in m.split("=")[0]]
  assert len(writes) == 2 * cfg.num_layers, made
  others = [m for m in made if "dynamic-update-slice" not in m]
  assert not others, others
