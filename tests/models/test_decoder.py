"""Decoder: cache consistency, chunked prefill, shared prefix, padding."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.models import kv_cache
from ftgen.models.decoder import Decoder
from ftgen.models.tiny import tiny_config, tiny_params

TOL = 1e-5


@functools.lru_cache(maxsize=None)
def _setup(name):
  cfg = tiny_config(name)
  model = Decoder(cfg)
  params = tiny_params(cfg, seed=0)
  full = jax.jit(lambda p, x, m: model.apply({"params": p}, x,
                                              attention_mask=m))
  return cfg, model, params, full


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def family(request):
  return _setup(request.param)


def _tokens(b, t, seed=0):
  return np.random.default_rng(seed).integers(3, 256, (b, t)).astype(np.int32)


def _ones(b, t):
  return np.ones((b, t), bool)


@functools.partial(jax.jit, static_argnums=0)
def _apply_jit(model, params, tokens, mask, cache, prefix):
  return model.apply({"params": params}, tokens, attention_mask=mask,
                     cache=cache, prefix=prefix)


def _apply_with_cache(model, params, tokens, cache, chunk=None,
                      attention_mask=None, prefix=None):
  """The decoder's cache path under jit, `chunk` tokens per call.

  Returns (logits [B,T,V], cache). Positions are the decoder's defaults:
  each chunk continues from what the cache (and the prefix) hold.
  """
  tokens = np.asarray(tokens, np.int32)
  b, t = tokens.shape
  mask = _ones(b, t) if attention_mask is None else attention_mask
  chunk = chunk or t
  outs = []
  for lo in range(0, t, chunk):
    logits, cache = _apply_jit(model, params, tokens[:, lo:lo + chunk],
                               mask[:, lo:lo + chunk], cache, prefix)
    outs.append(logits)
  return np.concatenate(outs, axis=1), cache


# Shapes are shared between tests (full forward [2,12], cache chunks of 4
# and 1 over 16 slots) so that each family compiles only a few programs.


def test_decode_and_chunked_prefill_match_full_forward(family):
  cfg, model, params, full = family
  toks = _tokens(2, 12)
  ref = np.asarray(full(params, toks, _ones(2, 12)))
  assert np.abs(ref).max() > 0.5  # Logits that can differ.

  cache = kv_cache.init_cache(cfg, 2, 16)
  logits, cache = _apply_with_cache(model, params, toks[:, :4], cache)
  outs = [logits]
  for i in range(4, 12):
    logits, cache = _apply_with_cache(model, params, toks[:, i:i + 1],
                                      cache)
    outs.append(logits)
  np.testing.assert_allclose(np.concatenate(outs, 1), ref, atol=TOL)
  assert int(cache["end"]) == 12

  chunked, cache2 = _apply_with_cache(
      model, params, toks, kv_cache.init_cache(cfg, 2, 16), chunk=4)
  np.testing.assert_allclose(chunked, ref, atol=TOL)
  np.testing.assert_allclose(cache2["k"], cache["k"], atol=TOL)
  np.testing.assert_array_equal(cache2["pos"], cache["pos"])


def test_rows_of_different_lengths_in_one_cache(family):
  """Right-padded prefill, then one decode step continues each row."""
  cfg, model, params, full = family
  toks = _tokens(2, 8, seed=1)
  mask = _ones(2, 8)
  mask[1, 6:] = False  # Row 1 has 6 real tokens, then 2 pads.
  cache = kv_cache.init_cache(cfg, 2, 16)
  _, cache = _apply_with_cache(model, params, toks, cache, chunk=4,
                               attention_mask=mask)
  step = _tokens(2, 1, seed=2)
  logits, _ = _apply_with_cache(model, params, step, cache)
  # Reference: both rows unpadded, left-padded into one [2,12] batch.
  rows = [np.concatenate([toks[0], step[0]]),
          np.concatenate([toks[1, :6], step[1]])]
  batch = np.stack([np.pad(r, (12 - len(r), 0)) for r in rows])
  bmask = np.stack([np.arange(12) >= 12 - len(r) for r in rows])
  ref = np.asarray(full(params, batch, bmask))[:, -1]
  np.testing.assert_allclose(logits[:, -1], ref, atol=TOL)


def test_left_padding_matches_unpadded(family):
  cfg, model, params, full = family
  toks = _tokens(1, 12, seed=3)
  padded = np.concatenate([np.zeros((1, 3), np.int32), toks[:, :9]], axis=1)
  mask = np.stack([np.ones(12, bool), np.arange(12) >= 3])
  got = np.asarray(full(params, np.concatenate([toks, padded]), mask))
  np.testing.assert_allclose(got[1, 3:], got[0, :9], atol=TOL)


@pytest.mark.parametrize("name", ["gemma3", "gemma2"])
def test_shared_prefix_matches_full_forward(name):
  """Prefix (longer than the sliding window) + a batch of suffixes."""
  cfg, model, params, full = _setup(name)
  assert cfg.sliding_window < 8
  prefix_toks = _tokens(1, 8, seed=4)
  suffix = _tokens(2, 4, seed=5)
  smask = _ones(2, 4)
  smask[1, 3:] = False  # A right-padded suffix.
  prefix = kv_cache.prefill_prefix(model, params, prefix_toks[0],
                                   chunk=4).cache
  assert int(prefix["end"]) == 8
  got = np.asarray(model.apply({"params": params}, suffix,
                               attention_mask=smask, prefix=prefix))
  whole = np.concatenate([np.repeat(prefix_toks, 2, 0), suffix], axis=1)
  ref = np.asarray(full(params, whole, _ones(2, 12)))[:, 8:]
  for b in range(2):
    n = smask[b].sum()
    np.testing.assert_allclose(got[b, :n], ref[b, :n], atol=TOL)

  # Decoding against the shared prefix: own tokens in a per-row cache.
  cache = kv_cache.init_cache(cfg, 2, 16)
  logits, cache = _apply_with_cache(model, params, suffix, cache, chunk=1,
                                    prefix=prefix)
  np.testing.assert_allclose(logits, ref, atol=TOL)
  np.testing.assert_array_equal(cache["pos"][:, :4], [[8, 9, 10, 11]] * 2)


def test_overflow_is_an_error():
  cfg, model, params, _ = _setup("llama")
  cache = kv_cache.init_cache(cfg, 1, 4)
  with pytest.raises(ValueError, match="overflow"):
    model.apply({"params": params}, _tokens(1, 5), cache=cache)
  _, cache = model.apply({"params": params}, _tokens(1, 3), cache=cache)
  with pytest.raises(ValueError, match="would need 5 slots; the cache holds 4"):
    model.apply({"params": params}, _tokens(1, 2), cache=cache)


def test_params_carry_logical_axes():
  cfg = tiny_config("qwen2")
  boxed = jax.eval_shape(Decoder(cfg).init, jax.random.PRNGKey(0),
                         jnp.zeros((1, 2), jnp.int32))
  specs = nn.get_partition_spec(boxed)["params"]
  assert tuple(specs["layers"]["attn"]["q"]["kernel"]) == (
      "layers", "embed", "q_heads", "head_dim")
  assert tuple(specs["layers"]["attn"]["k"]["bias"]) == (
      "layers", "kv_heads", "head_dim")
  assert tuple(specs["embedder"]["embedding"]) == ("vocab", "embed")
  assert tuple(specs["layers"]["mlp"]["down"]["kernel"]) == (
      "layers", "mlp", "embed")
  leaves = jax.tree.leaves(nn.unbox(boxed))
  assert sum(x.size for x in leaves) == cfg.num_params()


def test_bfloat16_params_give_float32_logits():
  cfg = tiny_config("llama", param_dtype="bfloat16", dtype="bfloat16")
  params = tiny_params(cfg, seed=0)
  assert jax.tree.leaves(params)[0].dtype == jnp.bfloat16
  logits = Decoder(cfg).apply({"params": params}, _tokens(1, 4))
  assert logits.dtype == jnp.float32
  ref = Decoder(cfg.replace(dtype="float32")).apply(
      {"params": params}, _tokens(1, 4))
  ref = np.asarray(ref)
  assert np.abs(np.asarray(logits) - ref).max() < 0.05 * np.abs(ref).max()
