"""Analytic training FLOPs per token and model FLOPs utilization (MFU).

The count follows PaLM (Chowdhery et al. 2022, App. B) and MaxText: every
matmul weight costs 2 FLOPs per token forward and 4 backward (6 in all), the
output projection to the vocabulary included (tied or not); causal attention
adds QK^T and AV, 2 matmuls of 2·T·N·H FLOPs each per token forward, halved
by the causal mask, times 3 for training:

  flops/token = 6 · N_matmul + 6 · L · T_eff · N · H

which is docs/design.md#performance's 6·N + 6·L·T·d when N·H = d. On sliding-window layers
T is replaced by twice the mean number of keys a query sees (full causal: T).
Norms, rope, softmax and the loss are ignored (a few percent at most for real
shapes). Embedding lookups are not matmuls and cost nothing.
"""

from __future__ import annotations

from typing import Any


def matmul_params(config: Any) -> int:
  """Weights that take part in a matmul per token (including the logits)."""
  d, l = config.embed_dim, config.num_layers
  n, k, h, f = (config.num_heads, config.num_kv_heads, config.head_dim,
                config.mlp_dim)
  attn = d * n * h + 2 * d * k * h + n * h * d
  mlp = 3 * d * f  # Gated MLP: gate, up, down.
  return l * (attn + mlp) + config.vocab_size * d


def _attended_lengths(config: Any, seq_len: int) -> list[float]:
  """Per layer, twice the mean number of keys per query (full causal: T)."""
  window = getattr(config, "sliding_window", None) or 0
  local = _local_layers(config)
  out = []
  for i in range(config.num_layers):
    if window and i in local and window < seq_len:
      # Query t sees min(t + 1, window) keys; mean * 2 to match the causal
      # convention (full causal: mean (T + 1) / 2 -> T).
      w = window
      total = w * (w + 1) / 2 + (seq_len - w) * w
      out.append(2 * total / seq_len)
    else:
      out.append(float(seq_len))
  return out


def _local_layers(config: Any) -> set[int]:
  """Indices of sliding-window layers."""
  if not getattr(config, "sliding_window", None):
    return set()
  if hasattr(config, "layer_is_global"):
    return {i for i, g in enumerate(config.layer_is_global()) if not g}
  pattern = getattr(config, "sliding_window_pattern", None)
  if pattern:
    # Gemma: layer i is global iff (i + 1) % pattern == 0.
    return {i for i in range(config.num_layers) if (i + 1) % pattern}
  return set(range(config.num_layers))


def train_flops_per_token(config: Any, seq_len: int) -> float:
  """Training FLOPs (forward + backward) per token at sequence length T."""
  attn = sum(6 * config.num_heads * config.head_dim * t
             for t in _attended_lengths(config, seq_len))
  return 6.0 * matmul_params(config) + attn


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float,
        num_devices: int = 1) -> float:
  """Model FLOPs utilization: achieved / (peak per device · devices)."""
  return tokens_per_s * flops_per_token / (peak_flops * num_devices)
