"""HF safetensors import/export: round trip, refusals, clear errors."""

import json
import os
import stat

import jax
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ftgen.checkpoints import hf
from ftgen.checkpoints import tiny_tokenizer
from ftgen.checkpoints import tokenizer as tokenizer_lib
from ftgen.models.decoder import Decoder
from ftgen.models.tiny import tiny_config, tiny_params


def _np(tree):
  return jax.tree.map(np.asarray, tree)


@pytest.mark.parametrize("name", ["llama3_rope", "qwen2", "gemma3"])
def test_save_load_round_trip(tmp_path, name):
  config = tiny_config(name)
  params = _np(tiny_params(config, seed=1))
  hf.save_hf(tmp_path, config, params)
  loaded_config, loaded = hf.load_hf(tmp_path)
  assert loaded_config == config
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  names = load_file(tmp_path / "model.safetensors").keys()
  assert "model.layers.0.self_attn.q_proj.weight" in names
  assert ("lm_head.weight" in names) == (not config.tie_embeddings)


def test_sharded_index_bfloat16_and_multimodal_prefix(tmp_path):
  config = tiny_config("gemma3")
  params = _np(tiny_params(config, seed=2))
  hf.save_hf(tmp_path / "src", config, params)
  tensors = load_file(tmp_path / "src" / "model.safetensors")
  # Gemma 3 multimodal naming, bf16, two shards, plus a vision tensor.
  renamed = {"language_model." + k: v.astype(ml_dtypes.bfloat16)
             for k, v in tensors.items()}
  renamed["vision_tower.patch.weight"] = np.zeros((2, 2), ml_dtypes.bfloat16)
  keys = sorted(renamed)
  half = len(keys) // 2
  out = tmp_path / "sharded"
  out.mkdir()
  weight_map = {}
  for i, part in enumerate([keys[:half], keys[half:]]):
    fname = f"model-0000{i + 1}-of-00002.safetensors"
    save_file({k: renamed[k] for k in part}, str(out / fname))
    weight_map.update({k: fname for k in part})
  (out / "model.safetensors.index.json").write_text(
      json.dumps({"metadata": {}, "weight_map": weight_map}))
  loaded = hf.load_hf_params(out, config.replace(param_dtype="bfloat16"))
  emb = loaded["embedder"]["embedding"]
  assert emb.dtype == ml_dtypes.bfloat16
  np.testing.assert_allclose(emb.astype(np.float32),
                             params["embedder"]["embedding"], rtol=1e-2)


def test_refuses_pickle_weights(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps(
      tiny_config("llama").to_hf_config()))
  (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
  with pytest.raises(hf.CheckpointError, match="never unpickles"):
    hf.load_hf(tmp_path)
  with pytest.raises(hf.CheckpointError, match="refusing pickle"):
    hf.weight_files(tmp_path / "pytorch_model.bin")


def test_missing_unexpected_and_shape_errors(tmp_path):
  config = tiny_config("llama")
  hf.save_hf(tmp_path, config, _np(tiny_params(config)))
  path = tmp_path / "model.safetensors"
  tensors = load_file(path)
  del tensors["model.layers.1.mlp.up_proj.weight"]
  tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros(
      (8, 64), np.float32)
  tensors["model.extra.weight"] = np.zeros(3, np.float32)
  save_file(tensors, str(path))
  with pytest.raises(hf.CheckpointError) as err:
    hf.load_hf_params(tmp_path, config)
  msg = str(err.value)
  assert "missing tensors (1): model.layers.1.mlp.up_proj.weight" in msg
  assert ("model.layers.0.self_attn.k_proj.weight: checkpoint (8, 64), "
          "config expects (32, 64)") in msg
  assert "unexpected tensors (1): model.extra.weight" in msg


def test_malformed_file_is_a_clear_error(tmp_path):
  (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
  with pytest.raises(hf.CheckpointError, match="cannot read safetensors"):
    hf.load_hf_params(tmp_path, tiny_config("llama"))


@pytest.mark.torch
def test_transformers_loads_our_export(tmp_path):
  """save_hf output is a valid HF checkpoint with the same logits."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  config = tiny_config("gemma3")
  params = _np(tiny_params(config, seed=3))
  hf.save_hf(tmp_path, config, params)
  model = transformers.AutoModelForCausalLM.from_pretrained(
      tmp_path, attn_implementation="eager").eval()
  tokens = np.random.default_rng(0).integers(3, 256, (1, 9))
  with torch.no_grad():
    ref = model(input_ids=torch.tensor(tokens)).logits.numpy()
  ours = np.asarray(Decoder(config).apply({"params": params}, tokens))
  np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_export_files_are_shareable_and_clean(tmp_path):
  """Modes follow the umask (not mkstemp/safetensors' 0600), a
  generation_config.json, and no load-time keys in tokenizer_config.json."""
  transformers = pytest.importorskip("transformers")
  config = tiny_config("llama")
  params = _np(tiny_params(config))
  tiny_tokenizer.tiny_tokenizer().save(tmp_path / "src")
  # A tokenizer loaded from a directory is what fine-tuning exports; saved
  # as is, transformers 5 writes `is_local` / `local_files_only` into it.
  tok = tokenizer_lib.from_directory(tmp_path / "src")
  old = os.umask(0o022)
  try:
    out = hf.save_hf(tmp_path / "export" / "model", config, params)
    tok.save(out)
  finally:
    os.umask(old)
  assert stat.S_IMODE(out.stat().st_mode) == 0o755
  for p in out.iterdir():
    assert stat.S_IMODE(p.stat().st_mode) == 0o644, p.name
  tok_config = json.loads((out / "tokenizer_config.json").read_text())
  assert not {"is_local", "local_files_only"} & set(tok_config)
  assert tok_config["eos_token"] == "<eos>"
  gen = json.loads((out / "generation_config.json").read_text())
  assert gen == {"bos_token_id": config.bos_token_id,
                 "eos_token_id": config.eos_token_ids[0],
                 "pad_token_id": config.pad_token_id}
  loaded = transformers.GenerationConfig.from_pretrained(out)
  assert loaded.eos_token_id == config.eos_token_ids[0]
  assert tokenizer_lib.from_directory(out).eos_ids == tok.eos_ids
