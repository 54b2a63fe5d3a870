"""Real-size presets: parameter counts via jax.eval_shape (no memory)."""

import jax
import pytest

from ftgen.checkpoints.hf import abstract_params
from ftgen.models import presets


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_preset_parameter_counts(name):
  config = presets.PRESETS[name]
  shapes = abstract_params(config)
  count = sum(x.size for x in jax.tree.leaves(shapes))
  assert count == config.num_params()
  if name in presets.PUBLISHED_PARAMS:
    assert count == presets.PUBLISHED_PARAMS[name]
  assert shapes["layers"]["attn"]["q"]["kernel"].shape == (
      config.num_layers, config.embed_dim, config.num_heads, config.head_dim)


def test_gemma3_4b_text_count():
  # Published 4,300,079,472 includes the vision tower (~420M); the text
  # decoder is 3,880,263,168 by the analytic count of the HF config.
  assert presets.PRESETS["gemma3-4b"].num_params() == 3_880_263_168


def test_unknown_preset():
  with pytest.raises(ValueError, match="allowed"):
    presets.get_preset("gpt-5")


def test_get_preset_takes_tiny_family_names_and_lists_the_presets():
  config = presets.get_preset("tiny:gemma3", num_layers=3)
  assert config.family == "gemma3" and config.num_layers == 3
  with pytest.raises(ValueError, match="unknown tiny config .nope."):
    presets.get_preset("tiny:nope")
  with pytest.raises(ValueError, match="or tiny:FAMILY"):
    presets.get_preset("llama-7")
