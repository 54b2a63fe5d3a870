"""Logit parity with transformers' PyTorch models on tiny random configs."""

import numpy as np
import pytest

from ftgen.checkpoints import hf
from ftgen.models.decoder import Decoder
from ftgen.models.tiny import tiny_config

pytestmark = pytest.mark.torch


def hf_reference(tmp_path, name, seed=0):
  """A seeded torch model for tiny config `name`, saved with save_pretrained."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  hf_cfg = tiny_config(name).to_hf_config()
  model_type = hf_cfg.pop("model_type")
  hf_cfg.pop("architectures")
  config = transformers.AutoConfig.for_model(model_type, **hf_cfg)
  torch.manual_seed(seed)
  model = transformers.AutoModelForCausalLM.from_config(
      config, attn_implementation="eager").eval()
  with torch.no_grad():
    # Perturb everything (norm weights too) so conventions such as Gemma's
    # (1 + w) are exercised, not just the init values.
    for p in model.parameters():
      p.add_(torch.randn_like(p) * 0.05)
  model.save_pretrained(tmp_path, safe_serialization=True)
  return model


@pytest.mark.parametrize("name", ["llama", "llama3_rope", "mistral", "qwen2",
                                  "gemma3", "gemma2"])
def test_logits_match_transformers(tmp_path, name):
  torch = pytest.importorskip("torch")
  ref_model = hf_reference(tmp_path, name)
  config = hf.load_hf_config(tmp_path)
  assert config == tiny_config(name)  # config.json round trip via HF.
  params = hf.load_hf_params(tmp_path, config)

  rng = np.random.default_rng(0)
  tokens = rng.integers(3, config.vocab_size, (2, 12))
  mask = np.ones((2, 12), bool)
  mask[1, :3] = False  # Left padding.
  positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
  with torch.no_grad():
    ref = ref_model(input_ids=torch.tensor(tokens),
                    attention_mask=torch.tensor(mask.astype(np.int64)),
                    position_ids=torch.tensor(positions)).logits.numpy()
  ours = np.asarray(Decoder(config).apply({"params": params}, tokens,
                                          attention_mask=mask))
  assert ours.dtype == np.float32
  err = np.abs(ours - ref)[mask].max()
  print(f"parity {name}: max abs err {err:.2e}")
  assert err < 1e-4
  assert np.abs(ref).max() > 0.5  # The comparison has something to compare.
