"""Writes tiny GGUF files with the GGUF export, for tests.

The weights are random, in Hugging Face names and layouts; the file gets
llama.cpp's names, its q/k row permutation (Llama) or its `1 + w` norms
(Gemma 3), and the tiny tokenizer's vocabulary as GGUF metadata. Importing
the file must give back exactly the HF tensors returned here.
"""

from __future__ import annotations

import os
from typing import Any

import gguf
import numpy as np

from ftgen.checkpoints import gguf as gguf_lib
from ftgen.checkpoints import gguf_export
from ftgen.checkpoints import tiny_tokenizer as tiny_tok
from ftgen.models.config import ModelConfig

TINY_DIMS = dict(hidden=64, heads=4, kv_heads=2, head_dim=16, ff=128, layers=2)


def write_tiny_gguf(path: os.PathLike[str] | str, arch: str = "llama", *,
                    seed: int = 0, quantized: bool = True,
                    counts: dict[str, int] | None = None) -> dict[str, Any]:
  """Writes a tiny `arch` ('llama' | 'gemma3') GGUF; returns the expectation.

  `counts` overrides integer metadata as uint32 (e.g.
  `{"llama.attention.head_count": 0}`) to write malformed headers.

  Returns:
    {"tensors": {hf_name: float32 array the import must reproduce},
     "dims": the sizes used, "tokenizer": the tiny Tokenizer}.
  """

  if arch not in ("llama", "gemma3"):
    raise ValueError(f"arch {arch!r}; allowed: 'llama', 'gemma3'")
  tok = tiny_tok.tiny_tokenizer()
  d = TINY_DIMS
  rng = np.random.default_rng(seed)
  vocab, hidden = tok.vocab_size, d["hidden"]
  q_out, kv_out = d["heads"] * d["head_dim"], d["kv_heads"] * d["head_dim"]

  def rand(*shape, scale=0.5):
    return (scale * rng.standard_normal(shape)).astype(np.float32)

  # (gguf name, hf name, array in HF layout, is a norm)
  plan = [("token_embd.weight", "model.embed_tokens.weight",
           rand(vocab, hidden), False),
          ("output_norm.weight", "model.norm.weight",
           rand(hidden, scale=0.1), True)]
  block = {"attn_q.weight": ("self_attn.q_proj.weight", (q_out, hidden)),
           "attn_k.weight": ("self_attn.k_proj.weight", (kv_out, hidden)),
           "attn_v.weight": ("self_attn.v_proj.weight", (kv_out, hidden)),
           "attn_output.weight": ("self_attn.o_proj.weight", (hidden, q_out)),
           "ffn_gate.weight": ("mlp.gate_proj.weight", (d["ff"], hidden)),
           "ffn_up.weight": ("mlp.up_proj.weight", (d["ff"], hidden)),
           "ffn_down.weight": ("mlp.down_proj.weight", (hidden, d["ff"])),
           "attn_norm.weight": ("input_layernorm.weight", (hidden,))}
  if arch == "llama":
    block["ffn_norm.weight"] = ("post_attention_layernorm.weight", (hidden,))
  else:
    block |= {
        "ffn_norm.weight": ("pre_feedforward_layernorm.weight", (hidden,)),
        "post_attention_norm.weight": ("post_attention_layernorm.weight",
                                       (hidden,)),
        "post_ffw_norm.weight": ("post_feedforward_layernorm.weight",
                                 (hidden,)),
        "attn_q_norm.weight": ("self_attn.q_norm.weight", (d["head_dim"],)),
        "attn_k_norm.weight": ("self_attn.k_norm.weight", (d["head_dim"],))}
  for i in range(d["layers"]):
    for g_name, (h_name, shape) in block.items():
      norm = len(shape) == 1
      plan.append((f"blk.{i}.{g_name}", f"model.layers.{i}.{h_name}",
                   rand(*shape, scale=0.1 if norm else 0.5), norm))

  config = ModelConfig(
      family=arch, vocab_size=vocab, embed_dim=hidden,
      num_layers=d["layers"], num_heads=d["heads"],
      num_kv_heads=d["kv_heads"], head_dim=d["head_dim"], mlp_dim=d["ff"],
      rope_theta=100000.0 if arch == "llama" else 1000000.0,
      norm_eps=1e-5 if arch == "llama" else 1e-6, max_seq_len=256,
      sliding_window=None if arch == "llama" else 8,
      sliding_window_pattern=None if arch == "llama" else 6,
      bos_token_id=tok.bos_id, eos_token_ids=tok.eos_ids,
      pad_token_id=tok.pad_id)
  # The library's writer (the one GGUF export) writes metadata and tensors.
  writer = gguf_export.new_writer(path, config, tok,
                                  ggml_type="q8_0" if quantized else "f32",
                                  name=f"tiny-{arch}")
  for key, value in (counts or {}).items():
    writer.add_uint32(key, value)  # Replaces the value written above.

  expected = {}
  for g_name, h_name, w, norm in plan:
    # The expectation is computed here, independently of the export: the
    # names and transforms are llama.cpp's, spelled out.
    assert gguf_export.gguf_tensor(arch, config, h_name, w)[0] == g_name
    stored = w
    if arch == "llama" and (".attn_q." in g_name or ".attn_k." in g_name):
      stored = gguf_lib.permute_rows(
          w, d["heads"] if ".attn_q." in g_name else d["kv_heads"])
    if arch == "gemma3" and norm:
      stored = w + np.float32(1.0)
    if quantized and w.ndim == 2:
      # Q8_0 on matrices: the import must dequantize, and reproduce exactly
      # what gguf's own dequantizer gives.
      qtype = gguf.GGMLQuantizationType.Q8_0
      q = gguf.quants.quantize(stored, qtype)
      back = gguf.quants.dequantize(q, qtype).reshape(w.shape)
      if arch == "llama" and (".attn_q." in g_name or ".attn_k." in g_name):
        back = gguf_lib.unpermute_rows(
            back, d["heads"] if ".attn_q." in g_name else d["kv_heads"])
      expected[h_name] = back.astype(np.float32)
    else:
      expected[h_name] = ((stored - np.float32(1.0))
                          if (arch == "gemma3" and norm) else w)
  gguf_export.add_tensors(writer, config,
                          {h_name: w for _, h_name, w, _ in plan},
                          ggml_type="q8_0" if quantized else "f32")
  gguf_export.finish(writer)
  return {"tensors": expected, "dims": dict(d, vocab=vocab), "tokenizer": tok}
