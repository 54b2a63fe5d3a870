"""The one analytic FLOPs count of ftgen, and model FLOPs utilization (MFU).

Training, scoring, sampling, the experiment cost ledger and every benchmark
count FLOPs here. The count follows PaLM (Chowdhery et al. 2022, App. B)
and MaxText:

* Every matmul weight costs 2 FLOPs per token forward and 4 backward (6 in
  all), the output projection to the vocabulary included (tied or not).
  Embedding lookups are not matmuls and cost nothing; norms, rope, softmax
  and the loss are ignored (a few percent at most for real shapes).
* Attention costs QK^T and AV: 4·N·H FLOPs per (query, key) pair and layer
  forward, over the keys a query sees: itself and every earlier token, at
  most `sliding_window` of them on local layers.

Forward passes (`forward_flops`, `prefill_flops`, `scoring_flops`,
`generation_flops`) count the (query, key) pairs exactly. Training keeps
MaxText's per-token convention (docs/benchmarks.md):

  train flops/token = 6 · N_matmul + 6 · L · T_eff · N · H

i.e. 6·N + 6·L·T·d when N·H = d, with T_eff = T on full causal layers
(the exact pair count would give T + 1) and twice the mean number of keys
per query on sliding-window layers. LoRA (applied unmerged,
ftgen/train/lora.py) forms no gradient for the frozen weights, only the
activations' gradient through them, and trains r·(in + out) adapter
weights per adapted kernel and layer:

  LoRA train flops/token = 4·N_matmul + 6·N_adapter + 6·L·T_eff·N·H
"""

from __future__ import annotations

from typing import Any, Sequence

# Dense bf16 FLOP/s of one H100/H200: what MFU is measured against.
PEAK_FLOPS_BF16 = 989e12


def matmul_params(config: Any, logits: bool = True) -> int:
  """Weights that take part in a matmul per token.

  Args:
    config: a `ftgen.models.config.ModelConfig`.
    logits: include the output projection to the vocabulary (a KV-cache
      prefill computes no logits).
  """
  d, l = config.embed_dim, config.num_layers
  n, k, h, f = (config.num_heads, config.num_kv_heads, config.head_dim,
                config.mlp_dim)
  attn = d * n * h + 2 * d * k * h + n * h * d
  mlp = 3 * d * f  # Gated MLP: gate, up, down.
  return l * (attn + mlp) + (config.vocab_size * d if logits else 0)


def _layer_windows(config: Any) -> list[int | None]:
  """Per layer: its sliding window, or None for full causal attention."""
  window = getattr(config, "sliding_window", None)
  if not window:
    return [None] * config.num_layers
  return [None if g else int(window) for g in config.layer_is_global()]


def _keys_sum(context: int, n: int, window: int | None) -> float:
  """Keys attended, summed over n new tokens at positions [context, context+n).

  Each token attends to itself and everything before it, capped at `window`.
  """
  if n <= 0:
    return 0.0
  first, last = context + 1, context + n  # Keys of the first/last new token.
  if window is None or last <= window:
    return (first + last) * n / 2
  if first >= window:
    return float(window) * n
  below = window - first  # Tokens with fewer than `window` keys.
  return (first + window - 1) * below / 2 + window * (n - below)


def forward_flops(config: Any, num_tokens: int, context: int = 0, *,
                  logits: bool = True) -> float:
  """FLOPs of a forward pass over `num_tokens` new tokens.

  Args:
    config: the model config.
    num_tokens: tokens run through the model.
    context: tokens before them already in the KV cache (0: a plain causal
      pass).
    logits: whether the pass projects every token to the vocabulary.
  """
  n_h = config.num_heads * config.head_dim
  attn = sum(4 * n_h * _keys_sum(context, num_tokens, w)
             for w in _layer_windows(config))
  return 2.0 * matmul_params(config, logits) * num_tokens + attn


def prefill_flops(config: Any, num_tokens: int) -> float:
  """FLOPs of filling a KV cache with `num_tokens` (no logits)."""
  return forward_flops(config, num_tokens, logits=False)


def scoring_flops(config: Any, context_tokens: float,
                  suffix_tokens: Sequence[float], *,
                  prefix_cached: bool = False) -> float:
  """FLOPs to score rows that share a context: one row per choice.

  Args:
    config: the model config.
    context_tokens: tokens in front of every row (ICL documents, the
      retrieved documents, or the instruction; 0 when none).
    suffix_tokens: per row, its tokens after the context.
    prefix_cached: the context sits in a KV cache (its prefill is counted
      apart, by the caller); rows attend to it without recomputing it.
      Otherwise each row runs the context again (lm-evaluation-harness's
      way).
  """
  c = int(round(context_tokens))
  if prefix_cached:
    return sum(forward_flops(config, int(round(s)), context=c)
               for s in suffix_tokens)
  return sum(forward_flops(config, c + int(round(s))) for s in suffix_tokens)


def generation_flops(config: Any, prompt_tokens: float, new_tokens: float,
                     num_sequences: int = 1, prefix_tokens: int = 0) -> float:
  """Sampling: a shared prefix once, then per sequence its prompt and decode.

  Args:
    config: the model config.
    prompt_tokens: prompt tokens per sequence (after the shared prefix).
    new_tokens: generated tokens per sequence.
    num_sequences: sequences sampled.
    prefix_tokens: tokens of a prompt head shared by every sequence,
      run once (0: none).
  """
  p, g = int(round(prompt_tokens)), int(round(new_tokens))
  per_sequence = (forward_flops(config, p, context=prefix_tokens)
                  + forward_flops(config, g, context=prefix_tokens + p))
  return forward_flops(config, prefix_tokens) + num_sequences * per_sequence


def augmentation_flops(config: Any, *, prefix_tokens: int, prompts: int,
                       prompt_tokens: float, generated_tokens: float
                       ) -> float:
  """An augmentation run from its totals (`ftgen.augment.run` reports them).

  Args:
    config: the model config.
    prefix_tokens: the prompt head shared by every row, prefilled once.
    prompts: rows sampled.
    prompt_tokens: all rows' prompt tokens after the shared head.
    generated_tokens: all rows' generated tokens.

  Rows are counted at their mean prompt and generation lengths.
  """
  rows = max(int(prompts), 1)
  return generation_flops(config, prompt_tokens / rows,
                          generated_tokens / rows, num_sequences=rows,
                          prefix_tokens=int(prefix_tokens))


def _fans(config: Any) -> dict[str, tuple[int, int]]:
  """Per LoRA target module: (inputs, outputs) of its kernel, per layer."""
  d, n, k, h, f = (config.embed_dim, config.num_heads, config.num_kv_heads,
                   config.head_dim, config.mlp_dim)
  return {"q": (d, n * h), "k": (d, k * h), "v": (d, k * h),
          "o": (n * h, d), "gate": (d, f), "up": (d, f), "down": (f, d)}


def lora_params(config: Any, rank: int, targets: Sequence[str]) -> int:
  """Adapter weights: r · (in + out) per targeted kernel and layer."""
  fans = _fans(config)
  unknown = sorted(set(targets) - set(fans))
  if unknown:
    raise ValueError(f"LoRA targets {unknown} unknown; allowed:"
                     f" {', '.join(fans)}")
  return config.num_layers * rank * sum(sum(fans[t]) for t in set(targets))


def train_flops_per_token(config: Any, seq_len: int, *, lora_rank: int = 0,
                          lora_targets: Sequence[str] = ()) -> float:
  """Training FLOPs (forward + backward) per token at sequence length T.

  Args:
    config: the model config.
    seq_len: T, the row length.
    lora_rank: 0 for full fine-tuning; else the LoRA rank (base weights
      frozen: 4 FLOPs per weight and token, 6 per adapter weight).
    lora_targets: the adapted modules (q, k, v, o, gate, up, down).
  """
  attn = 0.0
  for w in _layer_windows(config):
    if w is None or w >= seq_len:
      t_eff = float(seq_len)
    else:  # Twice the mean keys per query (full causal: about T).
      t_eff = 2 * _keys_sum(0, seq_len, w) / seq_len
    attn += 6 * config.num_heads * config.head_dim * t_eff
  if lora_rank:
    return (4.0 * matmul_params(config)
            + 6.0 * lora_params(config, lora_rank, lora_targets) + attn)
  return 6.0 * matmul_params(config) + attn


def train_flops(config: Any, num_tokens: int, seq_len: int, *,
                lora_rank: int = 0, lora_targets: Sequence[str] = ()
                ) -> float:
  """Training FLOPs of `num_tokens` (padding included) in rows of seq_len.

  LoRA as in `train_flops_per_token`.
  """
  return train_flops_per_token(config, seq_len, lora_rank=lora_rank,
                               lora_targets=lora_targets) * num_tokens


def mfu(flops: float, seconds: float, peak_flops: float = PEAK_FLOPS_BF16,
        num_devices: int = 1) -> float:
  """Model FLOPs utilization: FLOPs done / (seconds · peak · devices).

  Args:
    flops: model FLOPs done in `seconds` (this module's count).
    seconds: wall time.
    peak_flops: peak FLOP/s of one device.
    num_devices: devices that shared the work.
  """
  return flops / (seconds * peak_flops * num_devices)
