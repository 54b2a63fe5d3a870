"""Writes tiny GGUF files the way llama.cpp's converter does (for tests).

The weights are random, in Hugging Face names and layouts; the file gets
llama.cpp's names, its q/k row permutation (Llama) or its `1 + w` norms
(Gemma 3), and the tiny tokenizer's vocabulary as GGUF metadata. Importing
the file must give back exactly the HF tensors returned here.
"""

from __future__ import annotations

import json
import os
from typing import Any

import gguf
import numpy as np

from ftgen.checkpoints import gguf as gguf_lib
from ftgen.checkpoints import tiny_tokenizer as tiny_tok

TINY_DIMS = dict(hidden=64, heads=4, kv_heads=2, head_dim=16, ff=128, layers=2)


def _tokenizer_metadata(writer, tok, chat_template: str | None) -> None:
  model = json.loads(tok.hf.backend_tokenizer.to_str())["model"]
  by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
  tokens = [t for t, _ in by_id]
  assert [i for _, i in by_id] == list(range(len(tokens)))
  merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
  special = set(tok.hf.all_special_tokens) | {"<|im_start|>", "<|im_end|>"}
  types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL
           for t in tokens]
  writer.add_tokenizer_model("gpt2")
  writer.add_tokenizer_pre("default")
  writer.add_token_list(tokens)
  writer.add_token_types(types)
  writer.add_token_merges(merges)
  writer.add_bos_token_id(tok.bos_id)
  writer.add_eos_token_id(tok.eos_ids[0])
  writer.add_pad_token_id(tok.pad_id)
  writer.add_add_bos_token(tok.add_bos)
  if chat_template:
    writer.add_chat_template(chat_template)


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

  writer = gguf.GGUFWriter(str(path), arch)
  writer.add_name(f"tiny-{arch}")
  writer.add_block_count(d["layers"])
  writer.add_context_length(256)
  writer.add_embedding_length(hidden)
  writer.add_feed_forward_length(d["ff"])
  writer.add_head_count(d["heads"])
  writer.add_head_count_kv(d["kv_heads"])
  writer.add_layer_norm_rms_eps(1e-5 if arch == "llama" else 1e-6)
  if arch == "llama":
    writer.add_rope_freq_base(100000.0)
    writer.add_rope_dimension_count(d["head_dim"])
    writer.add_vocab_size(vocab)
  else:
    writer.add_rope_freq_base(1000000.0)
    writer.add_key_length(d["head_dim"])
    writer.add_value_length(d["head_dim"])
    writer.add_sliding_window(8)
  _tokenizer_metadata(writer, tok,
                      tiny_tok.CHAT_TEMPLATE if arch == "llama" else None)
  for key, value in (counts or {}).items():
    writer.add_uint32(key, value)  # Replaces the value written above.

  expected = {}
  for g_name, h_name, w, norm in plan:
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
      writer.add_tensor(g_name, q, raw_shape=q.shape, raw_dtype=qtype)
      back = gguf.quants.dequantize(q, qtype).reshape(w.shape)
      if arch == "llama" and (".attn_q." in g_name or ".attn_k." in g_name):
        back = gguf_lib.unpermute_rows(
            back, d["heads"] if ".attn_q." in g_name else d["kv_heads"])
      expected[h_name] = back.astype(np.float32)
    else:
      writer.add_tensor(g_name, stored)
      expected[h_name] = ((stored - np.float32(1.0))
                          if (arch == "gemma3" and norm) else w)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()
  return {"tensors": expected, "dims": dict(d, vocab=vocab), "tokenizer": tok}
