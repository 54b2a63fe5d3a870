"""ModelConfig: HF config io, validation, analytic counts, rope scaling."""

import numpy as np
import pytest

from ftgen.models import config as config_lib
from ftgen.models.config import ModelConfig
from ftgen.models.tiny import TINY_CONFIGS


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_hf_config_round_trip(name):
  cfg = TINY_CONFIGS[name]
  assert ModelConfig.from_hf_config(cfg.to_hf_config()) == cfg


def test_unknown_architecture_lists_supported():
  with pytest.raises(ValueError,
                     match="supported architectures:.*Gemma3ForCausalLM"):
    ModelConfig.from_hf_config({"model_type": "gpt2",
                                "architectures": ["GPT2LMHeadModel"]})


def test_bad_values_name_the_field():
  with pytest.raises(ValueError, match="family='gpt'.*allowed"):
    ModelConfig(family="gpt")
  with pytest.raises(ValueError, match="param_dtype='float16'"):
    ModelConfig(param_dtype="float16")
  with pytest.raises(ValueError, match="rope_type='yarn'"):
    ModelConfig(rope_scaling={"rope_type": "yarn", "factor": 2.0})


def test_transformers4_spelling_of_gemma3():
  """rope_theta / rope_local_base_freq / rope_scaling and a pattern int."""
  hf = {
      "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
      "vocab_size": 262144, "hidden_size": 2560, "intermediate_size": 10240,
      "num_hidden_layers": 34, "num_attention_heads": 8,
      "num_key_value_heads": 4, "head_dim": 256, "rope_theta": 1e6,
      "rope_local_base_freq": 1e4, "sliding_window": 1024,
      "sliding_window_pattern": 6, "query_pre_attn_scalar": 256,
      "rope_scaling": {"rope_type": "linear", "factor": 8.0},
  }
  cfg = ModelConfig.from_hf_config(hf)
  assert cfg.rope_local_theta == 1e4 and cfg.rope_theta == 1e6
  assert cfg.rope_scaling_dict() == {"rope_type": "linear", "factor": 8.0}
  glob = cfg.layer_is_global()
  assert glob.sum() == 5 and glob[5] and not glob[4]
  inv = cfg.layer_inv_freq()
  # Local layers: base 1e4 unscaled; global: base 1e6 divided by 8.
  np.testing.assert_allclose(inv[0, 1], 1e4 ** (-2 / 256), rtol=1e-6)
  np.testing.assert_allclose(inv[5, 1], 1e6 ** (-2 / 256) / 8, rtol=1e-6)
  assert cfg.layer_windows()[0] == 1024
  assert cfg.layer_windows()[5] == config_lib.GLOBAL_WINDOW


def test_multimodal_gemma3_reads_text_config():
  hf = {"architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": {"hidden_size": 2560, "intermediate_size": 10240,
                        "num_hidden_layers": 34, "num_attention_heads": 8,
                        "num_key_value_heads": 4}}
  cfg = ModelConfig.from_hf_config(hf)
  assert cfg.family == "gemma3" and cfg.vocab_size == 262_208


def test_layer_types_must_be_periodic():
  hf = dict(TINY_CONFIGS["gemma2"].to_hf_config())
  hf["layer_types"] = ["full_attention", "sliding_attention"]
  with pytest.raises(ValueError, match="periodic"):
    ModelConfig.from_hf_config(hf)


def test_llama3_rope_scaling_bands():
  inv = config_lib.rope_inv_freq(
      128, 500_000.0, {"rope_type": "llama3", "factor": 8.0,
                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192})
  base = config_lib.rope_inv_freq(128, 500_000.0, None)
  wavelen = 2 * np.pi / base
  np.testing.assert_array_equal(inv[wavelen < 2048], base[wavelen < 2048])
  np.testing.assert_allclose(inv[wavelen > 8192], base[wavelen > 8192] / 8)
  mid = (wavelen >= 2048) & (wavelen <= 8192)
  assert mid.any()
  assert np.all(inv[mid] < base[mid]) and np.all(inv[mid] > base[mid] / 8)


def test_mistral_windows_every_layer():
  cfg = TINY_CONFIGS["mistral"]
  hf = cfg.to_hf_config()
  assert hf["architectures"] == ["MistralForCausalLM"]
  assert ModelConfig.from_hf_config(hf).layer_windows().tolist() == [5, 5]
  with pytest.raises(ValueError, match="every layer"):
    cfg.replace(sliding_window_pattern=2).to_hf_config()
