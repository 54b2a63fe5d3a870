"""The batched sampler: cache vs recomputation, seeds, stopping, prefixes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.models.decoder import Decoder
from ftgen.parallel import mesh as mesh_lib
from ftgen.sample import sampler as sampler_lib
from ftgen.models import tiny
from ftgen.checkpoints import registry
from ftgen.checkpoints import sources
from ftgen.checkpoints import tiny_tokenizer as tiny_tokenizer

GREEDY = sampler_lib.SamplingParams(max_new_tokens=8, temperature=0.0)
# Different lengths in one batch; none contains the EOS id 2.
PROMPTS = [[1, 5, 6, 7, 8, 9], [1, 10, 11], [1, 20, 21, 22, 23, 24, 25, 26, 27]]


@functools.lru_cache(maxsize=None)
def _model(vocab_size: int = tiny_tokenizer.DEFAULT_VOCAB_SIZE,
           family: str = "llama"):
  # Untied embeddings: a tied tiny random model just repeats its input.
  config = tiny.tiny_config(family, tie_embeddings=False,
                            vocab_size=vocab_size, max_seq_len=256)
  return Decoder(config), tiny.tiny_params(config, seed=0)


def _sampler(family="llama", **kw):
  model, params = _model(family=family)
  kw.setdefault("eos_ids", [2])
  return sampler_lib.Sampler(model, params, **kw)


@functools.lru_cache(maxsize=None)
def _full_forward(family="llama"):
  model, params = _model(family=family)
  return jax.jit(lambda toks: model.apply({"params": params}, toks))


def _greedy_by_recomputation(prompt, n, eos=2, width=32, family="llama"):
  """Reference: a full forward over the whole sequence for every new token.

  Right padding to a fixed width (one compile) changes nothing before the
  last real token: attention is causal.
  """
  forward = _full_forward(family)
  toks, out = list(prompt), []
  for _ in range(n):
    padded = np.zeros((1, width), np.int32)
    padded[0, :len(toks)] = toks
    logits = forward(jnp.asarray(padded))
    t = int(jnp.argmax(logits[0, len(toks) - 1]))
    if t == eos:
      break
    out.append(t)
    toks.append(t)
  return out


# gemma3's tiny config has sliding windows shorter than the left-padded
# prompts: windows must count positions, not cache slots.
@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_greedy_with_cache_equals_full_recomputation(family):
  smp = _sampler(family)
  got = smp.generate(PROMPTS, GREEDY)
  want = [_greedy_by_recomputation(p, GREEDY.max_new_tokens, family=family)
          for p in PROMPTS]
  assert [c.tokens for c in got] == want
  assert all(len(w) == 8 for w in want)  # nothing stopped early: a real check
  assert [c.finish for c in got] == ["length"] * 3
  # The reused (donated) cache of a second call gives the same result again.
  assert [c.tokens for c in smp.generate(PROMPTS, GREEDY)] == want


def test_seeds_reproduce_and_differ():
  smp = _sampler()
  sp = sampler_lib.SamplingParams(max_new_tokens=8, temperature=1.0)
  a = [c.tokens for c in smp.generate(PROMPTS, sp, seed=3)]
  b = [c.tokens for c in smp.generate(PROMPTS, sp, seed=3)]
  c = [c.tokens for c in smp.generate(PROMPTS, sp, seed=4)]
  assert a == b
  assert a != c
  # Row ids, not batch slots, pick the keys: two copies of one prompt with
  # different row ids differ; with equal row ids they agree.
  same = smp.generate([PROMPTS[0]] * 3, sp, seed=3, row_ids=[7, 7, 7])
  diff = smp.generate([PROMPTS[0]] * 3, sp, seed=3, row_ids=[7, 8, 9])
  assert same[0].tokens == same[1].tokens
  assert same[0].tokens == same[2].tokens
  assert diff[0].tokens != diff[1].tokens


def test_tiny_top_p_inside_top_k_is_greedy():
  smp = _sampler()
  greedy = [c.tokens for c in smp.generate(PROMPTS, GREEDY)]
  sp = sampler_lib.SamplingParams(8, temperature=1.0, top_k=5, top_p=1e-6)
  assert [c.tokens for c in smp.generate(PROMPTS, sp, seed=1)] == greedy
  # Same program, other traced values: top_p 1 samples from the top 5.
  loose = sampler_lib.SamplingParams(8, temperature=1.0, top_k=5, top_p=0.999)
  assert [c.tokens for c in smp.generate(PROMPTS, loose, seed=1)] != greedy


def test_top_p_mask_keeps_smallest_set_reaching_p():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
  kept = np.asarray(sampler_lib._top_p_mask(logits, 0.7)) > -1e29
  assert kept.tolist() == [[True, True, False, False]]
  kept = np.asarray(sampler_lib._top_p_mask(logits, 0.81)) > -1e29
  assert kept.tolist() == [[True, True, True, False]]
  kept = np.asarray(sampler_lib._top_p_mask(logits, 0.4)) > -1e29
  assert kept.tolist() == [[True, False, False, False]]
  # Bisection agrees with the sort-based definition on random logits.
  mask = jax.jit(sampler_lib._top_p_mask)
  rng = np.random.default_rng(0)
  logits = (rng.normal(size=(64, 50)) *
            rng.uniform(0.1, 5, (64, 1))).astype(np.float32)
  top_p = rng.uniform(0.05, 0.999, (64, 1)).astype(np.float32)
  got = np.asarray(mask(jnp.asarray(logits), jnp.asarray(top_p))) > -1e29
  order = np.argsort(-logits, axis=1)
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  sorted_probs = np.take_along_axis(probs, order, 1)
  keep_sorted = np.cumsum(sorted_probs, 1) - sorted_probs < top_p
  want = np.zeros_like(got)
  np.put_along_axis(want, order, keep_sorted, 1)
  assert (got == want).all()


def test_eos_and_stop_sequences_end_rows_independently():
  free = [c.tokens for c in _sampler().generate(PROMPTS, GREEDY)]
  # EOS := the token row 0 emits at step 3 (first occurrence); a stop
  # sequence := row 1's tokens at steps 2-3.
  eos = free[0][3]
  if eos in free[0][:3]:
    pytest.skip("degenerate greedy output")
  seq = free[1][2:4]
  smp = _sampler(eos_ids=[eos], stop_token_seqs=[seq])
  got = smp.generate(PROMPTS, GREEDY)
  assert got[0].tokens == free[0][:3] and got[0].finish == "eos"
  cut1 = next(i for i in range(2, 8) if free[1][i - 1:i + 1] == seq) + 1
  if eos not in free[1][:cut1]:
    assert got[1].tokens == free[1][:cut1] and got[1].finish == "stop"
  # Row 2 runs on unless it meets one of them itself.
  ends2 = [i for i, t in enumerate(free[2]) if t == eos]
  if not ends2 and seq not in [free[2][i:i + 2] for i in range(7)]:
    assert got[2].tokens == free[2] and got[2].finish == "length"


def test_stop_strings_cut_text_exactly():
  tok = tiny_tokenizer.tiny_tokenizer()
  assert tok.vocab_size == tiny_tokenizer.DEFAULT_VOCAB_SIZE
  plain = _sampler(tokenizer=tok)
  prompts = [tok.encode("All birds are", add_bos=True),
             tok.encode("The cat", add_bos=True), [1]]
  free = plain.generate(prompts, GREEDY)
  text = free[0].text
  assert text == tok.decode(free[0].tokens) and len(free[0].tokens) == 8
  # Stop at the text of a printable token that row 0 writes in its middle.
  step, piece = next(
      ((i, tok.decode([t]).strip()) for i, t in enumerate(free[0].tokens)
       if i >= 2 and tok.decode([t]).strip().isascii()
       and tok.decode([t]).strip().isprintable() and tok.decode([t]).strip()
       and tok.decode([t]).strip() not in tok.decode(free[0].tokens[:i])),
      (None, None))
  if piece is None:
    pytest.skip("greedy text too degenerate to place a stop string")
  smp = _sampler(tokenizer=tok, stop_strings=[piece])
  got = smp.generate(prompts, GREEDY)
  assert got[0].text == text[:text.find(piece)]
  assert got[0].finish == "stop"
  assert got[0].tokens == free[0].tokens[:step + 1]  # ended in the loop
  if piece not in free[1].text:
    assert got[1].text == free[1].text and got[1].finish == "length"


def test_truncate_at_stop():
  assert sampler_lib.truncate_at_stop("a b\n\nc Statement: d",
                                      ["Statement:", "\n\n"]) == "a b"
  assert sampler_lib.truncate_at_stop("abc", ["x"]) is None


def test_shared_prefix_equals_concatenated_prompts():
  smp = _sampler()
  chunk = 7  # does not divide the prefix length: padded last chunk
  prefix = [1] + list(range(40, 61))
  rows = [p[1:] for p in PROMPTS]
  px = smp.make_prefix(prefix, chunk=chunk)
  assert px.length == len(prefix)
  got = smp.generate(rows, GREEDY, prefix=px)
  want = smp.generate([prefix + r for r in rows], GREEDY)
  assert [c.tokens for c in got] == [c.tokens for c in want]
  # ... and is not simply what the rows give without the prefix.
  alone = smp.generate(rows, GREEDY)
  assert [c.tokens for c in got] != [c.tokens for c in alone]


def test_bad_input():
  smp = _sampler()
  with pytest.raises(ValueError, match="prompt 1 is empty"):
    smp.generate([[1, 2], []], GREEDY)
  with pytest.raises(ValueError, match="no prompts"):
    smp.generate([], GREEDY)
  with pytest.raises(ValueError, match="exceed the model's max_seq_len"):
    smp.generate([[1] * 200], GREEDY)
  with pytest.raises(ValueError, match="exceed batch_size"):
    smp.generate(PROMPTS, GREEDY, batch_size=2)
  with pytest.raises(ValueError, match="top_p"):
    sampler_lib.SamplingParams(top_p=0.0)
  with pytest.raises(ValueError, match="temperature"):
    sampler_lib.SamplingParams(temperature=-1.0)
  with pytest.raises(ValueError, match="need a tokenizer"):
    _sampler(stop_strings=["\n"])


def test_bucket():
  assert [sampler_lib.bucket(n) for n in (1, 16, 17, 1000, 1025)] == [
      16, 16, 32, 1024, 1280]
  outputs = sampler_lib.OUTPUT_BUCKETS
  assert [sampler_lib.bucket(n, outputs) for n in (1, 9, 2000)] == [
      8, 16, 2048]
  batches = sampler_lib.BATCH_BUCKETS
  assert [sampler_lib.bucket(n, batches) for n in (1, 3, 1100)] == [
      1, 4, 1280]


@pytest.mark.slow
@pytest.mark.real_model
def test_smollm2_greedy_cache_equals_recomputation():
  try:
    loaded = registry.load_model("smollm2-135m")
  except sources.ModelNotAvailable as e:
    pytest.skip(str(e))
  tok = loaded.tokenizer
  model = Decoder(loaded.config)
  smp = sampler_lib.Sampler(model, loaded.params, eos_ids=tok.eos_ids,
                            tokenizer=tok, pad_id=tok.pad_id)
  prompts = [tok.encode("The capital of France is"),
             tok.encode("Glon are heavier than femp. So femp are")]
  sp = sampler_lib.SamplingParams(max_new_tokens=5, temperature=0.0)
  got = smp.generate(prompts, sp)
  for prompt, c in zip(prompts, got):
    toks, ref = list(prompt), []
    for _ in range(5):
      logits = model.apply({"params": loaded.params}, jnp.asarray([toks]))
      t = int(jnp.argmax(logits[0, -1]))
      if t in tok.eos_ids:
        break
      ref.append(t)
      toks.append(t)
    assert c.tokens == ref
  assert "Paris" in got[0].text


def test_sampling_over_all_devices_equals_one_device():
  """Rows split over the 8 test devices (5 rows: 3 filler rows) sample the
  tokens one device samples, with and without a shared prefix."""
  assert jax.device_count() == 8  # tests/conftest.py
  mesh = mesh_lib.data_mesh()
  one = _sampler()
  many = _sampler(mesh=mesh)
  sp = sampler_lib.SamplingParams(max_new_tokens=8, temperature=1.0,
                                  top_k=20)
  prompts = PROMPTS + [[1, 30, 31], [1, 40]]
  for prefix in (None, [1] + list(range(40, 61))):
    kw = dict(seed=5, row_ids=[3, 1, 4, 1, 5], batch_size=5)
    if prefix:
      kw["prefix"] = one.make_prefix(prefix, chunk=8)
    want = one.generate([p[1:] if prefix else p for p in prompts], sp, **kw)
    if prefix:
      kw["prefix"] = many.make_prefix(prefix, chunk=8)
    got = many.generate([p[1:] if prefix else p for p in prompts], sp, **kw)
    assert [c.tokens for c in got] == [c.tokens for c in want]
    assert [c.finish for c in got] == [c.finish for c in want]
  # The rows did run split: the cache holds each device's share.
  cache = many._cache  # pylint: disable=protected-access
  assert cache["pos"].sharding.shard_shape(cache["pos"].shape)[0] == 1
  assert many.stats.generated_tokens == one.stats.generated_tokens
