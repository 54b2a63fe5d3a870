"""Batched sampling with a KV cache: the whole decode loop in one jit.

This is ftgen's one decode loop. (Reference loops live beside their users:
the no-cache recomputation in tests/sample/test_sampler.py, the naive
one-dispatch-per-token baseline in benchmarks/sample.py.)

A batch of prompts of different lengths is left-padded to a bucketed length
T (padding gets cache position -1, so it is never attended), prefilled in one
call, then decoded by a `lax.while_loop` that feeds one token per row per
step. The KV cache is donated and returned, and the `Sampler` reuses it for
the next batch of the same shape (no reallocation, no copy).

Shared-prefix mode: one long context (batch 1, prefilled once in chunks by
`ftgen.models.kv_cache.prefill_prefix`) is passed as `prefix=`; every row
attends to it through the decoder's prefix path, which reads the prefix K/V
once per step for the whole batch, and each row's own cache holds only its
suffix and generated tokens.

Sampling: greedy (temperature 0), temperature, top-k, top-p. Every row has
its own key, `fold_in(fold_in(seed, row_id), step)`, so a row's sample does
not depend on which other rows share its batch.

Stopping: EOS ids end a row (the EOS token is not part of the output). Stop
strings end a row in the loop when (a) a generated token's text contains a
stop string (a [V] mask built from the vocabulary) or (b) the generated tail
equals a token sequence of a stop string; the text is then cut exactly at
the stop string on the host. A stop string produced by an unusual
tokenization that neither (a) nor (b) catches still gets cut on the host;
the row just runs on until max_new_tokens.

Batch parallelism: with a `mesh` (`ftgen.parallel.mesh.data_mesh`: every
device of every process), params are replicated, the rows of a batch (and
their cache) are split over the devices, padded with finished filler rows
to a multiple of the device count, and the outputs are gathered back to
every process (`distributed.fetch`). A row's tokens do not depend on the
mesh: its key is its own, and filler rows are done from the start.

Shape letters: B batch, T prompt length, M max new tokens (bucketed),
S cache slots (T + M), V vocab, P prefix length, W longest stop sequence.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ftgen.models import kv_cache
from ftgen.parallel import distributed
from ftgen.parallel import sharding as sharding_lib

Array = jax.Array
_NEG_INF = -1e30


class TextCodec(Protocol):
  """What the sampler needs from a tokenizer (ftgen.checkpoints.tokenizer)."""

  def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
    ...

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    ...


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """How to pick each token. temperature 0 means greedy."""

  max_new_tokens: int = 64
  temperature: float = 1.0
  top_k: int = 0  # 0 disables.
  top_p: float = 1.0  # 1 disables.

  def __post_init__(self):
    if self.max_new_tokens < 1:
      raise ValueError(
          f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
    if self.temperature < 0:
      raise ValueError(
          f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
    if self.top_k < 0:
      raise ValueError(f"top_k must be >= 0 (0 disables), got {self.top_k}")
    if not 0.0 < self.top_p <= 1.0:
      raise ValueError(
          f"top_p must lie in (0, 1] (1 disables), got {self.top_p}")

  @property
  def greedy(self) -> bool:
    return self.temperature == 0.0


@dataclasses.dataclass
class Completion:
  """One row's output: generated ids (EOS excluded), text, why it ended."""

  tokens: list[int]
  text: str | None
  finish: str  # "eos", "stop" or "length"


# Prompt lengths, output lengths and batch sizes round up to a power of two
# (prompts at least 16 tokens, outputs 8), past 1024 to a multiple of 256,
# so a run of varied batches compiles a few programs.
PROMPT_BUCKETS = tuple(1 << i for i in range(4, 11))
OUTPUT_BUCKETS = tuple(1 << i for i in range(3, 11))
BATCH_BUCKETS = tuple(1 << i for i in range(11))
_PAST_BUCKETS = 256


def bucket(n: int, buckets: Sequence[int] = PROMPT_BUCKETS) -> int:
  """The sampler's padded size for n (prompt tokens by default)."""
  return kv_cache.bucket_length(n, buckets, _PAST_BUCKETS)


# --- token choice -----------------------------------------------------------


def _top_p_mask(logits: Array, top_p: Array | float, iters: int = 24) -> Array:
  """Keeps the smallest set of best tokens whose probability reaches top_p.

  The cut-off logit is found by bisection (`iters` passes over [B,V])
  rather than a sort over the vocabulary, which costs ~20x more on CPU.
  Invariant: mass(lo) >= top_p > mass(hi), mass(t) = P(logit >= t).
  """
  probs = jax.nn.softmax(logits, axis=-1)
  lo = jnp.min(logits, axis=-1, keepdims=True)  # mass 1
  hi = jnp.max(logits, axis=-1, keepdims=True)

  def mass(t):
    return jnp.sum(jnp.where(logits >= t, probs, 0.0), axis=-1, keepdims=True)

  # The best token alone may already reach top_p.
  best_enough = mass(hi) >= top_p
  hi = hi + jnp.abs(hi) * 1e-6 + 1e-6  # strictly above every logit: mass 0

  def body(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    ok = mass(mid) >= top_p
    return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

  lo, _ = jax.lax.fori_loop(0, iters, body, (lo, hi))
  threshold = jnp.where(best_enough, jnp.max(logits, axis=-1, keepdims=True),
                        lo)
  return jnp.where(logits >= threshold, logits, _NEG_INF)


@dataclasses.dataclass(frozen=True)
class _Mode:
  """The static part of SamplingParams (what changes the program)."""

  greedy: bool
  top_k: int
  use_top_p: bool

  @classmethod
  def of(cls, sp: SamplingParams) -> "_Mode":
    return cls(sp.greedy, 0 if sp.greedy else sp.top_k,
               not sp.greedy and sp.top_p < 1.0)


def choose_tokens(logits: Array, keys: Array, mode: _Mode,
                  temperature: Array | float = 1.0,
                  top_p: Array | float = 1.0) -> Array:
  """logits [B,V] float32, keys [B] -> token ids [B] int32.

  temperature and top_p are traced values (no recompile when they change);
  the mode (greedy, k, whether top-p applies) is static.
  """
  if mode.greedy:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits / temperature
  if mode.top_k:
    vals, idx = jax.lax.top_k(logits, mode.top_k)  # [B,k] descending
    if mode.use_top_p:
      vals = _top_p_mask(vals, top_p)
    pick = jax.vmap(jax.random.categorical)(keys, vals)
    return jnp.take_along_axis(idx, pick[:, None], axis=1)[:, 0].astype(
        jnp.int32)
  if mode.use_top_p:
    logits = _top_p_mask(logits, top_p)
  return jax.vmap(jax.random.categorical)(keys, logits).astype(jnp.int32)


def row_keys(seed: Array, row_ids: Array) -> Array:
  """[B] keys fold_in(seed, row_id): a row's samples ignore its batch."""
  base = jax.random.PRNGKey(seed)
  return jax.vmap(lambda r: jax.random.fold_in(base, r))(row_ids)


def step_keys(keys: Array, step: Array) -> Array:
  """[B] the keys of decode step `step`: fold_in(row key, step)."""
  return jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)


# --- the jitted loop --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Static:
  """Everything that shapes the compiled program (hashable)."""

  mode: _Mode
  max_new: int  # M, the output buffer (bucketed)


def _stop_check(tail: Array, stop_seqs: Array) -> Array:
  """tail [B,W], stop_seqs [NS,W] right-aligned, -2 = wildcard -> [B]."""
  if stop_seqs.shape[0] == 0:
    return jnp.zeros(tail.shape[:1], bool)
  eq = (stop_seqs[None] == -2) | (tail[:, None, :] == stop_seqs[None])
  return jnp.any(jnp.all(eq, axis=-1), axis=-1)


def _generate(model, static: _Static, params, cache, tokens, mask, positions,
              limit, temperature, top_p, seed, row_ids, done0, eos_ids,
              stop_mask, stop_seqs, prefix):
  """Prefill tokens[:, :-1], then decode from tokens[:, -1] in a while_loop.

  Returns (out [B,M] int32, lengths [B], finish [B] (0 length, 1 eos,
  2 stop), steps, cache).
  """
  b = tokens.shape[0]
  m = static.max_new
  params = kv_cache.split_layers(params)  # No-op when already split.
  cache = kv_cache.reset(cache)
  if tokens.shape[1] > 1:
    cache = kv_cache.fill(model, params, cache, tokens[:, :-1],
                          positions[:, :-1], mask[:, :-1], prefix)
  keys = row_keys(seed, row_ids)
  w = max(int(stop_seqs.shape[1]), 1)

  def cond(state):
    step, _, _, _, done, *_ = state
    return (step < limit) & ~jnp.all(done)

  def body(state):
    step, cache, last, pos, done, out, lengths, finish, tail = state
    logits, cache = model.apply({"params": params}, last[:, None],
                                pos[:, None], cache=cache, prefix=prefix)
    tok = choose_tokens(logits[:, 0], step_keys(keys, step), static.mode,
                        temperature, top_p)
    is_eos = jnp.any(tok[:, None] == eos_ids[None, :], axis=-1)
    tail = jnp.concatenate([tail[:, 1:], tok[:, None]], axis=1)
    is_stop = stop_mask[tok] | _stop_check(tail, stop_seqs)
    live = ~done
    keep = live & ~is_eos  # EOS is not part of the output.
    out = out.at[:, step].set(jnp.where(keep, tok, -1))
    lengths = lengths + keep.astype(jnp.int32)
    finish = jnp.where(live & is_eos, 1, jnp.where(keep & is_stop, 2, finish))
    done = done | is_eos | is_stop
    return (step + 1, cache, tok, pos + 1, done, out, lengths, finish, tail)

  state = (jnp.int32(0), cache, tokens[:, -1], positions[:, -1], done0,
           jnp.full((b, m), -1, jnp.int32), jnp.zeros((b,), jnp.int32),
           jnp.zeros((b,), jnp.int32), jnp.full((b, w), -1, jnp.int32))
  step, cache, _, _, _, out, lengths, finish, _ = jax.lax.while_loop(
      cond, body, state)
  return out, lengths, finish, step, cache


@functools.partial(jax.jit, static_argnums=(0, 1), donate_argnums=(3,))
def _generate_jit(model, static, params, cache, *args):
  return _generate(model, static, params, cache, *args)


# --- the host-side driver ---------------------------------------------------


@dataclasses.dataclass
class Stats:
  """Running totals (generated tokens exclude padding rows and EOS)."""

  calls: int = 0
  generated_tokens: int = 0
  prompt_tokens: int = 0
  decode_steps: int = 0
  seconds: float = 0.0

  @property
  def tokens_per_s(self) -> float:
    return self.generated_tokens / self.seconds if self.seconds else 0.0


class Sampler:
  """Generates continuations of token prompts with one model.

  Args:
    model: a `ftgen.models.decoder.Decoder`.
    params: its params tree.
    eos_ids: token ids that end a row.
    tokenizer: optional; needed for stop strings and `Completion.text`.
    stop_strings: strings that end a row; the text is cut before them.
    stop_token_seqs: extra token sequences that end a row (kept in output).
    pad_id: the token fed for padding.
    cache_dtype: KV cache dtype (default: the model's compute dtype).
    mesh: split each batch's rows over this mesh's batch axes, params
      replicated (`ftgen.parallel.mesh.data_mesh`); None: one device.
  """

  def __init__(self, model, params, *, eos_ids: Sequence[int],
               tokenizer: TextCodec | None = None,
               stop_strings: Sequence[str] = (),
               stop_token_seqs: Sequence[Sequence[int]] = (),
               pad_id: int = 0, cache_dtype=None,
               mesh: jax.sharding.Mesh | None = None):
    self.model = model
    self.mesh = mesh
    if mesh is not None:
      params = sharding_lib.replicate(params, mesh)
    # Split per layer once: the cache path would otherwise slice the
    # stacked weights in every call (kv_cache.split_layers).
    self.params = kv_cache.split_layers_jit(params)
    self.config = model.config
    self.tokenizer = tokenizer
    self.eos_ids = tuple(int(i) for i in eos_ids)
    self.stop_strings = tuple(s for s in stop_strings)
    if self.stop_strings and tokenizer is None:
      raise ValueError("stop_strings need a tokenizer (to match and cut text)")
    if any(not s for s in self.stop_strings):
      raise ValueError(
          f"stop strings must be non-empty, got {self.stop_strings!r}")
    self.pad_id = int(pad_id)
    self.cache_dtype = cache_dtype
    seqs = [tuple(int(t) for t in s) for s in stop_token_seqs]
    mask = np.zeros((self.config.vocab_size,), bool)
    if self.stop_strings:
      seqs += _stop_string_seqs(tokenizer, self.stop_strings)
      mask |= _stop_token_mask(tokenizer, self.stop_strings,
                               self.config.vocab_size)
    seqs = sorted({s for s in seqs if s})
    w = max((len(s) for s in seqs), default=1)
    arr = np.full((len(seqs), w), -2, np.int32)
    for i, s in enumerate(seqs):
      arr[i, w - len(s):] = s
    self._stop_seqs = jnp.asarray(arr)
    self._stop_mask = jnp.asarray(mask)
    self._eos = jnp.asarray(np.array(self.eos_ids or (-1,), np.int32))
    self._cache = None  # reused across calls of the same shape
    self.stats = Stats()

  # -- prefix ---------------------------------------------------------------

  def make_prefix(self, tokens: Sequence[int],
                  chunk: int = 512) -> kv_cache.Prefix:
    """Prefills a shared context once, in chunks of `chunk` tokens.

    The length is padded to a multiple of the chunk with invalid slots
    (position -1), so every chunk has the same shape (one compile); a short
    context is one chunk of its bucketed length.
    """
    prefix = kv_cache.prefill_prefix(
        self.model, self.params, tokens, chunk=chunk, buckets=PROMPT_BUCKETS,
        multiple=_PAST_BUCKETS, dtype=self.cache_dtype, pad_id=self.pad_id)
    jax.block_until_ready(prefix.cache)  # Callers time the prefill.
    return prefix

  # -- generation -----------------------------------------------------------

  def _batch(self, prompts, row_ids, batch_size, prefix_len):
    n = len(prompts)
    if n == 0:
      raise ValueError("no prompts to sample from")
    lens = [len(p) for p in prompts]
    if min(lens) < 1:
      raise ValueError(f"prompt {lens.index(min(lens))} is empty; every prompt"
                       " needs at least one token (e.g. BOS)")
    t = bucket(max(lens))
    b = batch_size or bucket(n, BATCH_BUCKETS)
    if n > b:
      raise ValueError(f"{n} prompts exceed batch_size {b}")
    # Filler rows up to a multiple of the devices (done at once, dropped).
    b = sharding_lib.padded_rows(b, self.mesh)
    ids = np.full((b, t), self.pad_id, np.int32)
    mask = np.zeros((b, t), bool)
    for i, p in enumerate(prompts):  # left padding: every prompt ends at T-1
      ids[i, t - len(p):] = p
      mask[i, t - len(p):] = True
    ids[n:, -1] = self.pad_id  # filler rows: one token, finished at once
    mask[n:, -1] = True
    positions = kv_cache.token_positions(mask, prefix_len)
    rid = np.zeros((b,), np.uint32)
    rid[:n] = np.asarray(row_ids if row_ids is not None else range(n),
                         np.uint32)
    done0 = np.arange(b) >= n
    return ids, mask, positions, rid, done0, t, b

  def _get_cache(self, b: int, s: int):
    c = self._cache
    self._cache = None
    if c is None or c["pos"].shape != (b, s):
      init = functools.partial(kv_cache.init_cache, self.config, b, s,
                               self.cache_dtype)
      if self.mesh is None:
        return init()
      # Born split over the rows' devices (no whole copy on one device).
      shardings = jax.tree.map(
          lambda x: sharding_lib.batch_sharding(x.shape, self.mesh,
                                                logical_axes=("batch",)),
          jax.eval_shape(init))
      c = jax.jit(init, out_shardings=shardings)()
    return c

  def generate(self, prompts: Sequence[Sequence[int]], sp: SamplingParams,
               *, seed: int = 0, row_ids: Sequence[int] | None = None,
               prefix: kv_cache.Prefix | None = None,
               batch_size: int | None = None) -> list[Completion]:
    """Samples one continuation per prompt (all prompts in one batch).

    Args:
      prompts: token ids per row (BOS included where the model wants it).
      sp: sampling parameters.
      seed: the run's seed; row i uses key fold_in(seed, row_ids[i]).
      row_ids: stable ids of the rows (default 0..n-1), so a row samples the
        same tokens whatever batch it lands in.
      prefix: a shared context from `make_prefix`, read by every row.
      batch_size: pad the batch to this many rows (default: a power of two).

    Returns:
      One Completion per prompt, in order.
    """
    start = time.perf_counter()
    plen = 0 if prefix is None else prefix.length
    ids, mask, positions, rid, done0, t, b = self._batch(
        prompts, row_ids, batch_size, plen)
    m = bucket(sp.max_new_tokens, OUTPUT_BUCKETS)
    limit = min(sp.max_new_tokens, m)
    max_pos = plen + t + m
    if max_pos > self.config.max_seq_len:
      raise ValueError(
          f"prefix {plen} + prompt {t} (bucketed) + max_new_tokens {m}"
          f" (bucketed) = {max_pos} tokens exceed the model's max_seq_len"
          f" {self.config.max_seq_len}")
    static = _Static(mode=_Mode.of(sp), max_new=m)
    temperature = jnp.float32(sp.temperature or 1.0)
    top_p = jnp.float32(sp.top_p)
    cache = self._get_cache(b, t + m)
    pcache = None if prefix is None else prefix.cache
    if self.mesh is None:
      args = (jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(positions))
    else:
      args = sharding_lib.shard_batch((ids, mask, positions), self.mesh)
      rid, done0 = sharding_lib.shard_batch((rid, done0), self.mesh)
    out, lengths, finish, steps, cache = self._decode(
        static, cache, *args, limit, temperature, top_p, seed, rid, done0,
        pcache)
    out, lengths, finish, steps = distributed.fetch(
        (out, lengths, finish, steps))
    self._cache = cache
    n = len(prompts)
    completions = [self._completion(out[i, :lengths[i]], int(finish[i]))
                   for i in range(n)]
    self.stats.calls += 1
    self.stats.generated_tokens += int(np.sum(lengths[:n]))
    self.stats.prompt_tokens += int(mask[:n].sum())
    self.stats.decode_steps += int(steps)
    self.stats.seconds += time.perf_counter() - start
    return completions

  def _decode(self, static, cache, ids, mask, positions, limit, temperature,
              top_p, seed, row_ids, done0, prefix):
    """Prefill, then the decode loop; all in one jitted call.

    Returns (out [B,M], lengths [B], finish [B] (0 length, 1 eos, 2 stop),
    steps, cache). benchmarks/sample.py overrides this with its naive loop.
    """
    return _generate_jit(
        self.model, static, self.params, cache, ids, mask, positions,
        jnp.int32(limit), temperature, top_p, jnp.uint32(seed),
        jnp.asarray(row_ids), jnp.asarray(done0), self._eos, self._stop_mask,
        self._stop_seqs, prefix)

  def _completion(self, ids: np.ndarray, finish: int) -> Completion:
    tokens = [int(t) for t in ids]
    reason = ("length", "eos", "stop")[finish]
    if self.tokenizer is None:
      return Completion(tokens, None, reason)
    text = self.tokenizer.decode(tokens)
    cut = truncate_at_stop(text, self.stop_strings)
    if cut is not None:
      text, reason = cut, "stop"
    return Completion(tokens, text, reason)


def truncate_at_stop(text: str, stop_strings: Sequence[str]) -> str | None:
  """The text before the earliest stop string (None when none occurs)."""
  hits = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
  return text[:min(hits)] if hits else None


def _stop_string_seqs(tokenizer: TextCodec,
                      stop_strings: Sequence[str]) -> list[tuple[int, ...]]:
  """Token sequences that spell each stop string (two tokenizations)."""
  seqs = []
  for s in stop_strings:
    seqs.append(tuple(tokenizer.encode(s, add_bos=False)))
    per_char = [tokenizer.encode(c, add_bos=False) for c in s]
    if all(len(c) == 1 for c in per_char):
      seqs.append(tuple(c[0] for c in per_char))
  return seqs


def _stop_token_mask(tokenizer: TextCodec, stop_strings: Sequence[str],
                     vocab_size: int) -> np.ndarray:
  """[V] True for tokens whose own text contains a stop string."""
  mask = np.zeros((vocab_size,), bool)
  hf = getattr(tokenizer, "hf", None)
  n = min(vocab_size, len(hf) if hf is not None else vocab_size)
  if hf is not None:
    texts = hf.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
  else:
    texts = [tokenizer.decode([i]) for i in range(n)]
  for i, text in enumerate(texts):
    if any(s in text for s in stop_strings):
      mask[i] = True
  return mask


def describe(sampler: Sampler) -> dict[str, Any]:
  """Stats as a JSON-able dict."""
  s = sampler.stats
  return {"calls": s.calls, "generated_tokens": s.generated_tokens,
          "prompt_tokens": s.prompt_tokens, "decode_steps": s.decode_steps,
          "seconds": round(s.seconds, 3),
          "tokens_per_s": round(s.tokens_per_s, 2)}
