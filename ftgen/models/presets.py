"""Real-size model configs (for users with the weights; shapes via eval_shape).

Values follow each model's published `config.json`. `PUBLISHED_PARAMS`
holds the parameter counts the tests check `jax.eval_shape` against.
"""

from __future__ import annotations

from ftgen.models import tiny
from ftgen.models.config import ModelConfig

_LLAMA3_EOS = (128001, 128008, 128009)

PRESETS: dict[str, ModelConfig] = {
    "llama3.2-1b": ModelConfig(
        family="llama", vocab_size=128_256, embed_dim=2048, num_layers=16,
        num_heads=32, num_kv_heads=8, head_dim=64, mlp_dim=8192,
        rope_theta=500_000.0,
        rope_scaling={"rope_type": "llama3", "factor": 32.0,
                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
        norm_eps=1e-5, tie_embeddings=True, max_seq_len=131_072,
        bos_token_id=128_000, eos_token_ids=_LLAMA3_EOS),
    "llama3.1-8b": ModelConfig(
        family="llama", vocab_size=128_256, embed_dim=4096, num_layers=32,
        num_heads=32, num_kv_heads=8, head_dim=128, mlp_dim=14_336,
        rope_theta=500_000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0,
                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
        norm_eps=1e-5, tie_embeddings=False, max_seq_len=131_072,
        bos_token_id=128_000, eos_token_ids=_LLAMA3_EOS),
    "smollm2-135m": ModelConfig(
        family="llama", vocab_size=49_152, embed_dim=576, num_layers=30,
        num_heads=9, num_kv_heads=3, head_dim=64, mlp_dim=1536,
        rope_theta=100_000.0, norm_eps=1e-5, tie_embeddings=True,
        max_seq_len=8192, bos_token_id=1, eos_token_ids=(2,), pad_token_id=2),
    "qwen2.5-0.5b": ModelConfig(
        family="llama", vocab_size=151_936, embed_dim=896, num_layers=24,
        num_heads=14, num_kv_heads=2, head_dim=64, mlp_dim=4864,
        rope_theta=1_000_000.0, norm_eps=1e-6, tie_embeddings=True,
        qkv_bias=True, max_seq_len=32_768, bos_token_id=151_643,
        eos_token_ids=(151_643,), pad_token_id=151_643),
    "gemma3-270m": ModelConfig(
        family="gemma3", vocab_size=262_144, embed_dim=640, num_layers=18,
        num_heads=4, num_kv_heads=1, head_dim=256, mlp_dim=2048,
        rope_theta=1_000_000.0, rope_local_theta=10_000.0, norm_eps=1e-6,
        tie_embeddings=True, sliding_window=512, sliding_window_pattern=6,
        query_pre_attn_scalar=256.0, max_seq_len=32_768, bos_token_id=2,
        eos_token_ids=(1, 106), pad_token_id=0),
    "gemma3-1b": ModelConfig(
        family="gemma3", vocab_size=262_144, embed_dim=1152, num_layers=26,
        num_heads=4, num_kv_heads=1, head_dim=256, mlp_dim=6912,
        rope_theta=1_000_000.0, rope_local_theta=10_000.0, norm_eps=1e-6,
        tie_embeddings=True, sliding_window=512, sliding_window_pattern=6,
        query_pre_attn_scalar=256.0, max_seq_len=32_768, bos_token_id=2,
        eos_token_ids=(1, 106), pad_token_id=0),
    # Text decoder of Gemma 3 4B (the vision tower is not part of ftgen).
    "gemma3-4b": ModelConfig(
        family="gemma3", vocab_size=262_208, embed_dim=2560, num_layers=34,
        num_heads=8, num_kv_heads=4, head_dim=256, mlp_dim=10_240,
        rope_theta=1_000_000.0, rope_local_theta=10_000.0,
        rope_scaling={"rope_type": "linear", "factor": 8.0}, norm_eps=1e-6,
        tie_embeddings=True, sliding_window=1024, sliding_window_pattern=6,
        query_pre_attn_scalar=256.0, max_seq_len=131_072, bos_token_id=2,
        eos_token_ids=(1, 106), pad_token_id=0),
}

# Published totals (model cards / safetensors metadata). Gemma 3 4B's
# published 4,300,079,472 includes its ~417M-parameter vision tower and
# projector; its text decoder alone is checked against our own count.
PUBLISHED_PARAMS: dict[str, int] = {
    "llama3.2-1b": 1_235_814_400,
    "llama3.1-8b": 8_030_261_248,
    "smollm2-135m": 134_515_008,
    "qwen2.5-0.5b": 494_032_768,
    "gemma3-270m": 268_098_176,
    "gemma3-1b": 999_885_952,
}


def get_preset(name: str, **overrides) -> ModelConfig:
  """A config by name, with overrides (e.g. param_dtype='bfloat16').

  Args:
    name: a preset (`PRESETS`) or `tiny:FAMILY` (`ftgen.models.tiny`), the
      names the benchmarks take.
    **overrides: `ModelConfig` fields to replace.
  """
  if name.startswith("tiny:"):
    return tiny.tiny_config(name[len("tiny:"):], **overrides)
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; allowed: {sorted(PRESETS)}"
                     f" or tiny:FAMILY ({', '.join(sorted(tiny.TINY_CONFIGS))})")
  return PRESETS[name].replace(**overrides)
