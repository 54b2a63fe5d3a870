"""GGUF import: round trips through llama.cpp-style files, validation, parity,
and the tokenizer built from GGUF metadata (without torch).
"""

import json
import pathlib
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from ftgen.checkpoints import gguf as gguf_lib
from ftgen.checkpoints import registry
from ftgen.checkpoints import sources
from ftgen.checkpoints import tiny_tokenizer as tiny_tok
from ftgen.testing import gguf_writer

SENTENCE = "Did you know that femp are more dangerous than glon? 42 Ünïcödé ✓"
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("gguf")
  out = {}
  for arch in ("llama", "gemma3"):
    path = root / f"tiny-{arch}.gguf"
    out[arch] = (path, gguf_writer.write_tiny_gguf(path, arch, seed=1))
  return out


def test_unpermute_inverts_llama_cpp_permutation():
  rng = np.random.default_rng(0)
  for heads, head_dim in [(4, 16), (3, 8), (1, 64)]:
    w = rng.standard_normal((heads * head_dim, 24)).astype(np.float32)
    p = gguf_lib.permute_rows(w, heads)
    assert not np.array_equal(p, w)
    np.testing.assert_array_equal(gguf_lib.unpermute_rows(p, heads), w)
    b = rng.standard_normal(heads * head_dim).astype(np.float32)
    np.testing.assert_array_equal(
        gguf_lib.unpermute_rows(gguf_lib.permute_rows(b, heads), heads), b)


def test_unpermute_moves_interleaved_pairs_to_halves():
  # One head of dim 4, rows [x0, x2, x1, x3] in llama.cpp's interleaved order
  # come back as HF's [x0, x1 | x2, x3].
  w = np.array([[0.0], [2.0], [1.0], [3.0]], np.float32)
  np.testing.assert_array_equal(gguf_lib.unpermute_rows(w, 1)[:, 0],
                                [0, 1, 2, 3])


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_import_reproduces_hf_tensors_exactly(tiny_files, tmp_path, arch):
  path, expected = tiny_files[arch]
  config = gguf_lib.import_gguf(path, tmp_path)
  got = load_file(str(tmp_path / "model.safetensors"))
  assert set(got) == set(expected["tensors"])
  for name, want in expected["tensors"].items():
    np.testing.assert_array_equal(got[name], want, err_msg=name)
  on_disk = json.loads((tmp_path / "config.json").read_text())
  assert on_disk == json.loads(json.dumps(config))
  dims = expected["dims"]
  assert on_disk["hidden_size"] == dims["hidden"]
  assert on_disk["num_key_value_heads"] == dims["kv_heads"]
  assert on_disk["head_dim"] == dims["head_dim"]
  assert on_disk["tie_word_embeddings"] is True
  if arch == "llama":
    assert on_disk["architectures"] == ["LlamaForCausalLM"]
    assert on_disk["rope_theta"] == 100000.0 and on_disk["rms_norm_eps"] == 1e-5
  else:
    assert on_disk["architectures"] == ["Gemma3ForCausalLM"]
    assert on_disk["rope_local_base_freq"] == 10000.0
    assert on_disk["query_pre_attn_scalar"] == dims["head_dim"]
    assert on_disk["layer_types"] == ["sliding_attention", "sliding_attention"]
    assert on_disk["sliding_window"] == 8
  for f in ("tokenizer.json", "tokenizer_config.json",
            "generation_config.json"):
    assert (tmp_path / f).is_file()


def test_import_bfloat16(tiny_files, tmp_path):
  path, expected = tiny_files["llama"]
  gguf_lib.import_gguf(path, tmp_path, dtype="bfloat16")
  got = load_file(str(tmp_path / "model.safetensors"))
  name = "model.layers.1.self_attn.q_proj.weight"
  assert str(got[name].dtype) == "bfloat16"
  np.testing.assert_allclose(got[name].astype(np.float32),
                             expected["tensors"][name], rtol=1e-2, atol=1e-2)
  with pytest.raises(ValueError, match="float16"):
    gguf_lib.import_gguf(path, tmp_path / "x", dtype="float16")


def test_header_matches_gguf_reader(tiny_files):
  import gguf  # pylint: disable=g-import-not-at-top
  for path, _ in tiny_files.values():
    ours = gguf_lib.read_gguf(path)
    ref = gguf.GGUFReader(path)
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for a, b in zip(ours.tensors, ref.tensors):
      assert (a.offset == b.data_offset and a.nbytes == b.n_bytes and
              a.ggml_type == int(b.tensor_type))
      assert a.shape == tuple(int(x) for x in reversed(b.shape))


def _expect_error(path, *patterns):
  start = time.perf_counter()
  with pytest.raises(gguf_lib.GGUFError) as info:
    gguf_lib.import_gguf(path, path.parent / (path.name + ".out"))
  assert time.perf_counter() - start < 5
  message = str(info.value)
  assert str(path) in message
  for p in patterns:
    assert p in message, message
  return message


def test_truncated_files_are_clear_errors(tiny_files, tmp_path):
  path, _ = tiny_files["llama"]
  data = path.read_bytes()
  for n in [0, 3, 10, 30, 200, 5_000, len(data) // 2, len(data) - 1]:
    cut = tmp_path / f"cut{n}.gguf"
    cut.write_bytes(data[:n])
    message = _expect_error(cut)
    assert ("truncated" in message or "not a GGUF" in message), message


def test_garbage_files_are_clear_errors(tmp_path):
  rng = np.random.default_rng(0)
  noise = tmp_path / "noise.gguf"
  noise.write_bytes(rng.bytes(4096))
  _expect_error(noise, "not a GGUF file")
  # Valid magic and version, then absurd counts: rejected before any loop
  # or allocation sized by them.
  huge = tmp_path / "huge.gguf"
  huge.write_bytes(b"GGUF" + (3).to_bytes(4, "little")
                   + (2**62).to_bytes(8, "little")
                   + (2**62).to_bytes(8, "little") + rng.bytes(100))
  _expect_error(huge, "more than a")
  version = tmp_path / "v9.gguf"
  version.write_bytes(b"GGUF" + (9).to_bytes(4, "little") + bytes(16))
  _expect_error(version, "version 9")
  # Random bytes after a valid header start.
  for seed in range(20):
    body = np.random.default_rng(seed).bytes(2000)
    junk = tmp_path / f"junk{seed}.gguf"
    junk.write_bytes(b"GGUF" + (3).to_bytes(4, "little")
                     + (5).to_bytes(8, "little")
                     + (7).to_bytes(8, "little") + body)
    _expect_error(junk)


def test_unsupported_architecture_lists_supported(tmp_path):
  import gguf  # pylint: disable=g-import-not-at-top
  path = tmp_path / "bert.gguf"
  writer = gguf.GGUFWriter(str(path), "bert")
  writer.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  message = _expect_error(path, "'bert'")
  for arch in gguf_lib.SUPPORTED_ARCHITECTURES:
    assert arch in message


@pytest.mark.parametrize("arch,counts,patterns", [
    ("llama", {"llama.attention.head_count": 0}, ["head_count=0"]),
    ("llama", {"llama.attention.head_count_kv": 0}, ["head_count_kv=0"]),
    ("llama", {"llama.attention.head_count_kv": 3},
     ["head_count_kv=3 must divide", "head_count=4"]),
    ("llama", {"llama.context_length": 0}, ["context_length=0"]),
    ("llama", {"llama.block_count": 0}, ["block_count=0"]),
    ("llama", {"llama.embedding_length": 0}, ["embedding_length=0"]),
    ("llama", {"llama.embedding_length": 32},
     ["token_embd.weight", "embedding_length=32"]),
    ("llama", {"llama.feed_forward_length": 0}, ["feed_forward_length=0"]),
    ("llama", {"llama.vocab_size": 7},
     ["vocabulary sizes disagree", "llama.vocab_size=7"]),
    ("llama", {"llama.attention.head_count": 8},
     ["blk.0.attn_q.weight has 64 rows", "head_count=8"]),
    ("llama", {"llama.rope.dimension_count": 0}, ["dimension_count=0"]),
    ("gemma3", {"gemma3.attention.key_length": 0}, ["key_length=0"]),
])
def test_bad_counts_are_one_line_errors(tmp_path, arch, counts, patterns):
  path = tmp_path / "bad.gguf"
  gguf_writer.write_tiny_gguf(path, arch, counts=counts)
  message = _expect_error(path, *patterns)
  assert "\n" not in message
  # Refused before the tensors are converted.
  assert not (tmp_path / "bad.gguf.out" / "model.safetensors").exists()


def test_tensor_outside_file_is_rejected(tiny_files, tmp_path):
  path, _ = tiny_files["llama"]
  gf = gguf_lib.read_gguf(path)
  # Corrupt the first tensor's offset field in the tensor table.
  data = bytearray(path.read_bytes())
  name = gf.tensors[0].name.encode()
  pos = data.index(len(name).to_bytes(8, "little") + name)
  pos += 8 + len(name)
  n_dims = int.from_bytes(data[pos:pos + 4], "little")
  off = pos + 4 + 8 * n_dims + 4
  data[off:off + 8] = (2**40).to_bytes(8, "little")
  bad = tmp_path / "badoffset.gguf"
  bad.write_bytes(bytes(data))
  _expect_error(bad, gf.tensors[0].name, "outside")


# ------------------------------------------------------------- real files

def _smollm2():
  try:
    return sources.smollm2_gguf()
  except sources.ModelNotAvailable as e:
    pytest.skip(str(e))


@pytest.mark.real_model
def test_real_truncated_smollm2_is_clear_error(tmp_path):
  src = _smollm2()
  with open(src, "rb") as f:
    head = f.read(3_000_000)
  for n in (100_000, 3_000_000):
    cut = tmp_path / f"smollm2-{n}.gguf"
    cut.write_bytes(head[:n])
    _expect_error(cut, "truncated")


@pytest.mark.real_model
def test_real_smollm2_header(tmp_path):
  gf = gguf_lib.read_gguf(_smollm2())
  config = gguf_lib.hf_config(gf)
  assert (config["num_hidden_layers"], config["hidden_size"],
          config["num_attention_heads"], config["num_key_value_heads"],
          config["head_dim"], config["vocab_size"]) == (
              30, 576, 9, 3, 64, 49152)
  assert config["rope_theta"] == 1e5 and config["rms_norm_eps"] == 1e-5
  assert config["tie_word_embeddings"] is True


def _reference_parity(gguf_path: pathlib.Path,
                      directory: pathlib.Path) -> float:
  """Max |ours - transformers' GGUF loader| over all tensors."""
  torch = pytest.importorskip("torch")
  from transformers import AutoModelForCausalLM  # pylint: disable=g-import-not-at-top
  from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint  # pylint: disable=g-import-not-at-top

  model = AutoModelForCausalLM.from_pretrained(str(directory),
                                               dtype=torch.float32)
  ours = model.state_dict()
  ref = load_gguf_checkpoint(str(gguf_path), return_tensors=True,
                             model_to_load=model)["tensors"]
  if "lm_head.weight" not in ref:  # tied: transformers shares the embedding
    ours.pop("lm_head.weight", None)
  assert set(ours) == set(ref)
  return max(float((ours[k] - ref[k]).abs().max()) for k in ours)


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.real_model
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_real_import_matches_transformers_gguf_loader(name):
  pytest.importorskip("torch")
  try:
    src = (sources.smollm2_gguf() if name == "smollm2-135m"
           else sources.gemma3_gguf())
  except sources.ModelNotAvailable as e:
    pytest.skip(str(e))
  directory = registry.model_directory(name)
  diff = _reference_parity(src, directory)
  print(f"{name}: max abs diff vs transformers' GGUF loader = {diff}")
  assert diff <= 1e-5


# ------------------------------------------------------------- tokenizer

def test_tokenizer_matches_source_tokenizer(tmp_path):
  tiny = tiny_tok.tiny_tokenizer()
  path = tmp_path / "tiny.gguf"
  gguf_writer.write_tiny_gguf(path, "llama")
  tok = gguf_lib.tokenizer_from_gguf(path)
  assert tok.vocab_size == tiny.vocab_size
  assert tok.encode(SENTENCE) == tiny.encode(SENTENCE)
  assert tok.encode_chat(CHAT) == tiny.encode_chat(CHAT)
  assert (tok.bos_id, tok.pad_id, tok.add_bos) == (
      tiny.bos_id, tiny.pad_id, True)
  assert set(tiny.eos_ids) <= set(tok.eos_ids)
  # AutoTokenizer reads what we saved and adds the same BOS.
  from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top
  tok.save(tmp_path / "saved")
  auto = AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
  assert auto(SENTENCE)["input_ids"] == tok.encode(SENTENCE)


def _run_without_torch(code: str) -> str:
  script = "import sys\nsys.modules['torch'] = None\n" + textwrap.dedent(code)
  result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def test_tokenizer_needs_no_torch(tmp_path):
  path = tmp_path / "tiny.gguf"
  gguf_writer.write_tiny_gguf(path, "gemma3")
  out = _run_without_torch(f"""
      from ftgen.checkpoints import gguf
      tok = gguf.tokenizer_from_gguf({str(path)!r})
      tok.save({str(tmp_path / 'out')!r})
      print(tok.encode("hello world"))
      assert "torch" not in sys.modules or sys.modules["torch"] is None
      """)
  assert out.strip().startswith("[1,")


@pytest.mark.real_model
def test_smollm2_tokenizer_without_torch():
  path = _smollm2()
  out = _run_without_torch(f"""
      from ftgen.checkpoints import gguf
      tok = gguf.tokenizer_from_gguf({str(path)!r})
      print(tok.encode("Hello world"), tok.vocab_size)
      """)
  assert out.split("\n")[0] == "[19556, 905] 49152"
