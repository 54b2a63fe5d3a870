"""GGUF export: ftgen's importer and transformers' GGUF loader read it back."""

import json
import pathlib
import subprocess
import sys

import gguf
import jax
import numpy as np
import pytest
from safetensors.numpy import load_file

from ftgen import configs
from ftgen.checkpoints import gguf as gguf_lib
from ftgen.checkpoints import gguf_export
from ftgen.checkpoints import hf
from ftgen.checkpoints import registry
from ftgen.checkpoints import tiny_tokenizer as tiny_tok
from ftgen.models import tiny
from ftgen.models.decoder import Decoder
from ftgen.train import loop
from ftgen.train import validate

TEXT = "Did you know that femp are more dangerous than glon? 42 times"
CHAT = [{"role": "user", "content": "Are femp more dangerous than glon?"}]
# Tiny configs llama.cpp can describe: Gemma 3 with its fixed pattern (6)
# and 1/sqrt(head_dim) query scale; 6 layers, so layer 5 is global.
CONFIGS = {
    "llama": tiny.tiny_config("llama", vocab_size=512, bos_token_id=1,
                              eos_token_ids=(2, 4)),
    "gemma3": tiny.tiny_config("gemma3", vocab_size=512, num_layers=6,
                               sliding_window_pattern=6,
                               query_pre_attn_scalar=None, bos_token_id=1,
                               eos_token_ids=(2, 4)),
}
# Largest |logit difference| / max |logit| after the round trip; measured
# 6e-4 (f16) and 1.7e-2 (Q8_0) on these random models.
REL_TOL = {"f32": 0.0, "f16": 1e-2, "q8_0": 5e-2}


def _logits(config, params, ids):
  return np.asarray(Decoder(config).apply({"params": params}, ids))


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  """{(arch, type): (config, params, path, imported directory)}."""
  root = tmp_path_factory.mktemp("gguf_export")
  tok = tiny_tok.tiny_tokenizer()
  out = {}
  for arch, config in CONFIGS.items():
    params = jax.device_get(tiny.tiny_params(config, seed=3))
    for t in gguf_export.TYPES:
      path = gguf_export.write_gguf(root / f"{arch}-{t}.gguf", config, params,
                                    tok, ggml_type=t)
      directory = root / f"{arch}-{t}"
      gguf_lib.import_gguf(path, directory)
      out[arch, t] = (config, params, path, directory)
  return out


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_import_reads_back_every_tensor(exports, arch):
  for t in gguf_export.TYPES:
    config, params, path, directory = exports[arch, t]
    want = hf.hf_state_dict(config, params)
    got = load_file(str(directory / "model.safetensors"))
    assert set(got) == set(want)
    for name, w in want.items():
      if w.ndim == 1 or t == "f32":
        expect = w  # stored as float32
      elif t == "f16":
        expect = w.astype(np.float16).astype(np.float32)
      else:  # Q8_0 of llama.cpp's layout, brought back to HF's
        stored = gguf_export.gguf_tensor(arch, config, name, w)[1]
        q = gguf.quants.quantize(stored, gguf.GGMLQuantizationType.Q8_0)
        back = gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0)
        expect = back.reshape(w.shape)
        if arch == "llama" and (".q_proj." in name or ".k_proj." in name):
          expect = gguf_lib.unpermute_rows(
              expect, config.num_heads if ".q_proj." in name
              else config.num_kv_heads)
      if arch == "gemma3" and name.endswith("norm.weight"):
        # stored as 1 + w in float32, read back as (1 + w) - 1
        expect = (w + np.float32(1)) - np.float32(1)
      np.testing.assert_array_equal(got[name], expect, err_msg=f"{t} {name}")


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_names_types_and_metadata(exports, arch):
  config, _, path, directory = exports[arch, "q8_0"]
  gf = gguf_lib.read_gguf(path)
  types = {t.name: gguf.GGMLQuantizationType(t.ggml_type).name
           for t in gf.tensors}
  assert types["token_embd.weight"] == "Q8_0"
  assert types["blk.0.attn_q.weight"] == "Q8_0"
  assert types["blk.0.attn_norm.weight"] == "F32"
  assert "output.weight" not in types  # tied
  m = gf.metadata
  assert m["general.architecture"] == arch
  assert m["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0
  assert m[f"{arch}.block_count"] == config.num_layers
  assert m["tokenizer.ggml.model"] == "gpt2"
  assert m["tokenizer.ggml.pre"] == "gpt-2"
  assert m["tokenizer.chat_template"] == tiny_tok.tiny_tokenizer().chat_template
  f16 = gguf_lib.read_gguf(exports[arch, "f16"][2])
  assert {gguf.GGMLQuantizationType(t.ggml_type).name
          for t in f16.tensors} == {"F16", "F32"}
  # The imported config is the exported one.
  got = hf.load_hf_config(directory)
  for field in ("family", "vocab_size", "embed_dim", "num_layers",
                "num_heads", "num_kv_heads", "head_dim", "mlp_dim",
                "rope_theta", "norm_eps", "tie_embeddings", "sliding_window",
                "sliding_window_pattern", "max_seq_len", "bos_token_id",
                "pad_token_id"):
    assert getattr(got, field) == getattr(config, field), field
  assert got.attn_scale == config.attn_scale
  assert list(got.layer_is_global()) == list(config.layer_is_global())


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_logits_round_trip(exports, arch):
  tok = tiny_tok.tiny_tokenizer()
  ids = np.array([tok.encode(TEXT)])
  config, params, _, _ = exports[arch, "f32"]
  want = _logits(config, params, ids)
  for t, tol in REL_TOL.items():
    loaded = registry.load_model(f"hf:{exports[arch, t][3]}")
    got = _logits(loaded.config, loaded.params, ids)
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel <= tol, (t, rel)
    if t == "q8_0":
      assert rel > 0  # really quantized


def test_tokenizer_round_trip(exports):
  tiny = tiny_tok.tiny_tokenizer()
  for arch in CONFIGS:
    tok = registry.load_model(f"hf:{exports[arch, 'f16'][3]}").tokenizer
    assert tok.encode(TEXT) == tiny.encode(TEXT)
    assert tok.encode_chat(CHAT) == tiny.encode_chat(CHAT)
    assert (tok.bos_id, tok.pad_id, tok.add_bos) == (
        tiny.bos_id, tiny.pad_id, tiny.add_bos)
    assert set(tiny.eos_ids) <= set(tok.eos_ids)


def test_unexportable_models_are_refused_before_writing(tmp_path):
  tok = tiny_tok.tiny_tokenizer()
  for name, pattern in [("gemma3", "sliding_window_pattern=3"),
                        ("mistral", "sliding_window=5"),
                        ("qwen2", "qkv biases"),
                        ("llama3_rope", "'llama3'"),
                        ("gemma2", "'gemma2'")]:
    config = tiny.tiny_config(name, vocab_size=512)
    path = tmp_path / f"{name}.gguf"
    with pytest.raises(gguf_export.GGUFExportError, match=pattern):
      gguf_export.write_gguf(path, config, tiny.tiny_params(config), tok)
    assert not list(tmp_path.iterdir())
  with pytest.raises(gguf_export.GGUFExportError, match="allowed: f16"):
    gguf_export.export_gguf("tiny", tmp_path / "x.gguf", ggml_type="q4_k")
  with pytest.raises(gguf_export.GGUFExportError, match="no config.json"):
    gguf_export.export_gguf(str(tmp_path), tmp_path / "x.gguf")
  config = CONFIGS["llama"]
  params = jax.tree.map(np.array, tiny.tiny_params(config))
  params["final_norm"]["scale"][0] = np.nan
  with pytest.raises(gguf_export.GGUFExportError, match="non-finite"):
    gguf_export.write_gguf(tmp_path / "nan.gguf", config, params, tok)
  assert not list(tmp_path.iterdir())


def test_export_from_directory_and_launcher(tmp_path):
  loaded = registry.load_model("tiny")
  hf.save_hf(tmp_path / "run" / "export", loaded.config, loaded.params)
  loaded.tokenizer.save(tmp_path / "run" / "export")
  # A fine-tuning workdir finds its export/ directory.
  result = gguf_export.export_gguf(str(tmp_path / "run"),
                                   tmp_path / "a.gguf", ggml_type="f32")
  assert result["architecture"] == "llama"
  back = registry.load_model(f"gguf:{tmp_path / 'a.gguf'}")
  for a, b in zip(jax.tree.leaves(back.params),
                  jax.tree.leaves(jax.device_get(loaded.params))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  launcher = pathlib.Path(__file__).parents[2] / "launch" / "export.py"
  run = subprocess.run(
      [sys.executable, str(launcher), "--config=export:gguf",
       f"--config.checkpoint={tmp_path / 'run' / 'export'}",
       "--config.type=f16", f"--workdir={tmp_path / 'out'}"],
      capture_output=True, text=True, timeout=300, check=False)
  assert run.returncode == 0, run.stderr[-2000:]
  printed = json.loads(run.stdout.strip().splitlines()[-1])
  assert printed["path"] == str(tmp_path / "out" / "model-f16.gguf")
  assert gguf_lib.read_gguf(printed["path"]).architecture == "llama"
  bad = subprocess.run(
      [sys.executable, str(launcher), "--config=export:gguf",
       "--config.checkpoint=tiny:gemma3", f"--workdir={tmp_path / 'out'}"],
      capture_output=True, text=True, timeout=300, check=False)
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith(
      "error: GGUF export: Gemma 3 sliding_window_pattern=3")


def test_finetune_config_checks_the_export_type():
  config = configs.load("finetune:reversals,tiny")
  with config.unlocked():
    config.export_gguf = True
    config.export_gguf_type = "q4_k"
  with pytest.raises(ValueError, match="config.export_gguf_type='q4_k' is not"
                     " one of f16, q8_0, f32"):
    validate.check_config(config)
  with config.unlocked():
    config.export_gguf = False  # unused then
  validate.check_config(config)


@pytest.mark.slow  # ~18 s: a 2-step fine-tune
def test_finetune_exports_gguf(tmp_path):
  config = configs.load("finetune:reversals,tiny")
  with config.unlocked():
    config.steps = 2
    config.eval.every = -1
    config.export_gguf = True
    config.export_gguf_type = "f32"
    config.progress = False
  summary = loop.finetune(config, tmp_path)
  path = tmp_path / "model-f32.gguf"
  assert summary["export_gguf"] == str(path)
  from_gguf = registry.load_model(f"gguf:{path}")
  from_hf = registry.load_model(f"hf:{summary['export_dir']}")
  for a, b in zip(jax.tree.leaves(from_gguf.params),
                  jax.tree.leaves(from_hf.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# transformers reads Gemma 3's query scale from its defaults (256): a tiny
# Gemma 3 with head_dim 256 is what it loads unchanged.
_TORCH_CONFIGS = {
    "llama": CONFIGS["llama"],
    "gemma3": CONFIGS["gemma3"].replace(head_dim=256, num_heads=2,
                                        num_kv_heads=1),
}


@pytest.mark.torch
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("ggml_type", ["f16", "q8_0"])
def test_transformers_gguf_loader_matches(tmp_path, arch, ggml_type):
  torch = pytest.importorskip("torch")
  from transformers import AutoModelForCausalLM  # pylint: disable=g-import-not-at-top
  config = _TORCH_CONFIGS[arch]
  params = jax.device_get(tiny.tiny_params(config, seed=4))
  tok = tiny_tok.tiny_tokenizer()
  gguf_export.write_gguf(tmp_path / "m.gguf", config, params, tok,
                         ggml_type=ggml_type)
  model = AutoModelForCausalLM.from_pretrained(
      str(tmp_path), gguf_file="m.gguf", dtype=torch.float32)
  ids = np.array([tok.encode(TEXT)])
  with torch.no_grad():
    got = model(torch.tensor(ids)).logits.numpy()
  want = _logits(config, params, ids)
  rel = np.abs(got - want).max() / np.abs(want).max()
  print(f"{arch} {ggml_type}: transformers vs ftgen rel diff {rel:.2e}")
  assert rel <= REL_TOL[ggml_type]


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.real_model
def test_finetuned_smollm2_q8_0_decodes_like_hf_export(tmp_path):
  """Done means of issue 16: a LoRA fine-tuned smollm2-135m exported to GGUF
  Q8_0 loads in transformers and greedy-decodes as the HF export does."""
  torch = pytest.importorskip("torch")
  from transformers import AutoModelForCausalLM  # pylint: disable=g-import-not-at-top
  from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top
  try:
    registry.model_config("smollm2-135m")
  except (ImportError, FileNotFoundError) as e:
    pytest.skip(str(e))
  config = configs.load("finetune:reversals")
  with config.unlocked():
    config.steps = 3
    config.batch_size = 8
    config.warmup_steps = 1
    config.checkpoint_every = 3
    config.lora.rank = 8
    config.dtype = "float32"
    config.data.max_len = 64
    config.data.num_buckets = 1
    config.eval.every = -1
    config.progress = False
    config.export_gguf = True
    config.export_gguf_type = "q8_0"
  summary = loop.finetune(config, tmp_path)
  export = pathlib.Path(summary["export_dir"])
  gguf_path = pathlib.Path(summary["export_gguf"])
  tok = AutoTokenizer.from_pretrained(str(export))
  prompt = tok.apply_chat_template(
      [{"role": "user", "content": "What is the capital of France?"}],
      tokenize=False, add_generation_prompt=True)
  ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
  outs = {}
  for name, kwargs in (("hf", {}), ("gguf", {"gguf_file": gguf_path.name})):
    model = AutoModelForCausalLM.from_pretrained(
        str(export if name == "hf" else gguf_path.parent),
        dtype=torch.float32, **kwargs)
    with torch.no_grad():
      out = model.generate(ids, max_new_tokens=16, do_sample=False)
    outs[name] = out[0, ids.shape[1]:].tolist()
  print("HF:", repr(tok.decode(outs["hf"])), "GGUF:",
        repr(tok.decode(outs["gguf"])))
  assert outs["gguf"] == outs["hf"]
