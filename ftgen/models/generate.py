"""Greedy generation: a simple, correct sanity-check helper.

Prefill the prompt into a KV cache, then one jitted decode step per token
in a Python loop. The fast batched sampler lives in ftgen/sample.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ftgen.models import kv_cache


def greedy_generate(model, params, tokens, attention_mask=None,
                    max_new_tokens: int = 32,
                    eos_ids: Sequence[int] | None = None,
                    pad_id: int | None = None) -> np.ndarray:
  """Greedy continuation of a batch of prompts.

  Args:
    model: a `Decoder`.
    params: its params.
    tokens: [B,T] int prompts; rows may be left- or right-padded.
    attention_mask: [B,T] bool, True on real tokens (default all True).
    max_new_tokens: tokens to generate per row at most.
    eos_ids: stop ids (default model.config.eos_token_ids); the eos token is
      kept in the output, later slots hold `pad_id`.
    pad_id: filler after a row stopped (default config.pad_token_id or 0).

  Returns:
    [B, max_new_tokens] int32 numpy array of new tokens.
  """
  cfg = model.config
  tokens = np.asarray(tokens, np.int32)
  b, t = tokens.shape
  mask = (np.ones((b, t), bool) if attention_mask is None
          else np.asarray(attention_mask, bool))
  if not mask.any(axis=1).all():
    raise ValueError("greedy_generate: every row needs at least one real token")
  eos = np.asarray(tuple(cfg.eos_token_ids if eos_ids is None else eos_ids),
                   np.int32)
  if pad_id is None:
    pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else 0

  cache = kv_cache.init_cache(cfg, b, t + max_new_tokens)
  logits, cache = kv_cache.prefill(model, params, tokens, cache,
                                   attention_mask=mask)
  # The next token follows each row's last real token.
  last = t - 1 - np.argmax(mask[:, ::-1], axis=1)
  next_tok = np.asarray(jnp.argmax(logits[np.arange(b), last], axis=-1),
                        np.int32)
  out = np.full((b, max_new_tokens), pad_id, np.int32)
  done = np.zeros(b, bool)
  for i in range(max_new_tokens):
    out[:, i] = np.where(done, pad_id, next_tok)
    done |= np.isin(next_tok, eos)
    if done.all() or i == max_new_tokens - 1:
      break
    logits, cache = kv_cache.prefill(model, params, next_tok[:, None], cache)
    next_tok = np.asarray(jnp.argmax(logits[:, -1], axis=-1), np.int32)
  return out


def naive_greedy(model, params, tokens, max_new_tokens: int,
                 attention_mask=None) -> np.ndarray:
  """Reference without a cache: a full forward for every new token.

  The sequence lives in a fixed [B, T + max_new_tokens] buffer whose unused
  tail is masked (causal attention never looks at it), so this compiles once.
  """
  tokens = np.asarray(tokens, np.int32)
  b, t = tokens.shape
  mask = (np.ones((b, t), bool) if attention_mask is None
          else np.asarray(attention_mask, bool))
  buf = np.zeros((b, t + max_new_tokens), np.int32)
  buf_mask = np.zeros((b, t + max_new_tokens), bool)
  buf[:, :t], buf_mask[:, :t] = tokens, mask
  apply = jax.jit(lambda p, x, m: model.apply({"params": p}, x,
                                              attention_mask=m))
  for i in range(t, t + max_new_tokens):
    logits = apply(params, buf, buf_mask)
    buf[:, i] = np.asarray(jnp.argmax(logits[:, i - 1], -1), np.int32)
    buf_mask[:, i] = True
  return buf[:, t:]
