"""Hugging Face checkpoints: safetensors <-> the ftgen params tree.

The conversion is data: `key_map(config)` lists, for every leaf of the params
tree, the HF tensor name (with `{i}` for the layer index) and a named
transform. One loader (`load_hf_params`) and one writer (`save_hf`) apply
the table in either direction. Weights are read with the `safetensors` numpy
API only; pickle files (`*.bin`, `*.pt`, `*.pth`, `*.ckpt`) are refused and
never unpickled.

HF linear weights are [out, in]; ours are [in, ...out] with heads split:
q/k/v [D,N,H], o [N,H,D], gate/up [D,F], down [F,D], lm_head [D,V].
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any, Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from ftgen.data import io as data_io
from ftgen.models.config import ModelConfig
from ftgen.models.decoder import Decoder

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Keys we knowingly skip: rope buffers and the multimodal towers of Gemma 3.
_IGNORED_PARTS = ("rotary_emb.inv_freq", "vision_tower",
                  "multi_modal_projector", "vision_model")
_NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}


class CheckpointError(ValueError):
  """A checkpoint directory that cannot be loaded as asked."""


@dataclasses.dataclass(frozen=True)
class Entry:
  """One params leaf <-> one HF tensor (per layer when `layered`)."""

  path: tuple[str, ...]
  hf_name: str  # Relative to the model prefix ('model.'), or absolute '/...'.
  transform: str  # 'none' | 'proj_in' | 'proj_out' | 'bias'
  layered: bool


def key_map(config: ModelConfig) -> list[Entry]:
  """The HF <-> ftgen name table for `config`'s family."""
  e: list[Entry] = [
      Entry(("embedder", "embedding"), "embed_tokens.weight", "none", False),
      Entry(("final_norm", "scale"), "norm.weight", "none", False),
  ]
  if not config.tie_embeddings:
    e.append(Entry(("lm_head", "kernel"), "/lm_head.weight", "proj_in", False))

  def layer(path, name, transform):
    e.append(Entry(("layers",) + path, "layers.{i}." + name, transform, True))

  layer(("attn_norm", "scale"), "input_layernorm.weight", "none")
  for p in ("q", "k", "v"):
    layer(("attn", p, "kernel"), f"self_attn.{p}_proj.weight", "proj_in")
    if config.qkv_bias:
      layer(("attn", p, "bias"), f"self_attn.{p}_proj.bias", "bias")
  layer(("attn", "o", "kernel"), "self_attn.o_proj.weight", "proj_out")
  layer(("mlp", "gate", "kernel"), "mlp.gate_proj.weight", "proj_in")
  layer(("mlp", "up", "kernel"), "mlp.up_proj.weight", "proj_in")
  layer(("mlp", "down", "kernel"), "mlp.down_proj.weight", "proj_out")
  if config.is_gemma:
    layer(("post_attn_norm", "scale"), "post_attention_layernorm.weight",
          "none")
    layer(("mlp_norm", "scale"), "pre_feedforward_layernorm.weight", "none")
    layer(("post_mlp_norm", "scale"), "post_feedforward_layernorm.weight",
          "none")
  else:
    layer(("mlp_norm", "scale"), "post_attention_layernorm.weight", "none")
  if config.family == "gemma3":
    layer(("attn", "q_norm", "scale"), "self_attn.q_norm.weight", "none")
    layer(("attn", "k_norm", "scale"), "self_attn.k_norm.weight", "none")
  return e


def hf_shape(transform: str, shape: tuple[int, ...]) -> tuple[int, ...]:
  """The HF tensor shape for one of our (per-layer) shapes."""
  if transform == "proj_in":
    return (math.prod(shape[1:]), shape[0])
  if transform == "proj_out":
    return (shape[-1], math.prod(shape[:-1]))
  if transform == "bias":
    return (math.prod(shape),)
  return tuple(shape)


def from_hf(transform: str, x: np.ndarray,
            shape: tuple[int, ...]) -> np.ndarray:
  if transform in ("proj_in", "proj_out"):
    return np.ascontiguousarray(x.T).reshape(shape)
  return x.reshape(shape)


def to_hf(transform: str, x: np.ndarray) -> np.ndarray:
  if transform == "proj_in":
    return np.ascontiguousarray(x.reshape(x.shape[0], -1).T)
  if transform == "proj_out":
    return np.ascontiguousarray(x.reshape(-1, x.shape[-1]).T)
  if transform == "bias":
    return x.reshape(-1)
  return x


# ----------------------------------------------------------------- reading


def _refuse_pickles(directory: pathlib.Path) -> None:
  pickles = sorted(p.name for p in directory.iterdir()
                   if p.suffix in PICKLE_SUFFIXES)
  raise CheckpointError(
      f"{directory} holds no *.safetensors weights"
      + (f" but pickle weights {pickles}" if pickles else "")
      + ". ftgen never unpickles weights (arbitrary code execution); convert "
      "them to safetensors first (e.g. transformers' "
      "`model.save_pretrained(dir, safe_serialization=True)` on a trusted "
      "machine).")


def weight_files(directory: str | pathlib.Path) -> list[pathlib.Path]:
  """The safetensors files of a checkpoint (sharded index or glob)."""
  directory = pathlib.Path(directory)
  if directory.is_file():
    if directory.suffix in PICKLE_SUFFIXES:
      raise CheckpointError(
          f"refusing pickle weights {directory}: ftgen loads only safetensors "
          "and GGUF and never unpickles.")
    return [directory]
  if not directory.is_dir():
    raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
  index = directory / "model.safetensors.index.json"
  if index.exists():
    weight_map = json.loads(index.read_text())["weight_map"]
    names = sorted(set(weight_map.values()))
    bad = [n for n in names if not n.endswith(".safetensors")]
    if bad:
      raise CheckpointError(f"{index} points at non-safetensors files {bad}; "
                            "refusing (pickle weights are never loaded)")
    files = [directory / n for n in names]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
      raise CheckpointError(f"{index} lists shards that are missing: {missing}")
    return files
  files = sorted(directory.glob("*.safetensors"))
  if not files:
    _refuse_pickles(directory)
  return files


class _Reader:
  """Lazy access to tensors spread over safetensors files."""

  def __init__(self, files: Iterable[pathlib.Path]):
    self._handles = {}
    self.where: dict[str, pathlib.Path] = {}
    for f in files:
      try:
        h = safe_open(str(f), framework="numpy")
        keys = list(h.keys())
      except Exception as err:  # safetensors raises its own error types.
        raise CheckpointError(
            f"cannot read safetensors file {f}: {err}") from err
      self._handles[f] = h
      for k in keys:
        self.where[k] = f

  def shape(self, key: str) -> tuple[int, ...]:
    return tuple(self._handles[self.where[key]].get_slice(key).get_shape())

  def get(self, key: str) -> np.ndarray:
    return self._handles[self.where[key]].get_tensor(key)


def _find_prefix(keys: Iterable[str]) -> tuple[str, str]:
  """(decoder prefix, absolute prefix) e.g. ('model.', '') or for the
  multimodal Gemma 3 ('model.language_model.', '') / ('language_model.model.',
  'language_model.')."""
  cands = sorted(k[: -len("embed_tokens.weight")] for k in keys
                 if k.endswith("embed_tokens.weight"))
  if not cands:
    raise CheckpointError(
        "no '*embed_tokens.weight' tensor: not a supported decoder checkpoint")
  prefix = cands[0]
  root = "language_model." if prefix.startswith("language_model.") else ""
  return prefix, root


def abstract_params(config: ModelConfig) -> dict[str, Any]:
  """ShapeDtypeStructs of the params tree (no memory)."""
  model = Decoder(config)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 1), jnp.int32))
  return nn.unbox(shapes["params"])


def _get_path(tree, path):
  for p in path:
    tree = tree[p]
  return tree


def _set_path(tree, path, value):
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def load_hf_config(directory: str | pathlib.Path, **overrides) -> ModelConfig:
  """ModelConfig from `directory/config.json`."""
  path = pathlib.Path(directory) / "config.json"
  if not path.exists():
    raise FileNotFoundError(f"no config.json in {directory}")
  return ModelConfig.from_hf_config(json.loads(path.read_text()), **overrides)


def load_hf_params(directory: str | pathlib.Path, config: ModelConfig,
                   dtype: str | None = None, strict: bool = True):
  """Reads HF safetensors into the params tree (numpy arrays).

  Args:
    directory: a checkpoint directory (or one .safetensors file).
    config: the architecture; shapes are validated against
      `jax.eval_shape` of `Decoder(config)`.
    dtype: 'float32' | 'bfloat16'; default config.param_dtype.
    strict: raise on tensors the table does not consume (besides rope
      buffers and multimodal towers, which are always skipped).

  Returns:
    The params tree as numpy arrays.
  """
  out_dtype = _NP_DTYPES[dtype or config.param_dtype]
  reader = _Reader(weight_files(directory))
  prefix, root = _find_prefix(reader.where)
  expected = abstract_params(config)
  entries = key_map(config)
  used: set[str] = set()
  missing: list[str] = []
  bad_shapes: list[str] = []
  params: dict[str, Any] = {}

  def full_name(entry: Entry, i: int | None) -> str:
    name = entry.hf_name.format(i=i)
    return root + name[1:] if name.startswith("/") else prefix + name

  for entry in entries:
    want = tuple(_get_path(expected, entry.path).shape)
    per_layer = want[1:] if entry.layered else want
    layers = range(config.num_layers) if entry.layered else [None]
    arrays = []
    for i in layers:
      name = full_name(entry, i)
      if name not in reader.where:
        missing.append(name)
        continue
      used.add(name)
      got = reader.shape(name)
      need = hf_shape(entry.transform, per_layer)
      if got != need:
        bad_shapes.append(f"{name}: checkpoint {got}, config expects {need}")
        continue
      arrays.append(from_hf(entry.transform, reader.get(name), per_layer)
                    .astype(out_dtype))
    if len(arrays) == len(layers):
      _set_path(params, entry.path,
                np.stack(arrays) if entry.layered else arrays[0])

  # A tied checkpoint may still carry a (duplicate) lm_head: skip it.
  tied_head = root + "lm_head.weight"
  if config.tie_embeddings and tied_head in reader.where:
    used.add(tied_head)
  unexpected = sorted(k for k in reader.where if k not in used and
                      not any(part in k for part in _IGNORED_PARTS))
  problems = []
  if missing:
    problems.append(f"missing tensors ({len(missing)}): {_short(missing)}")
  if bad_shapes:
    problems.append(
        f"shape mismatches ({len(bad_shapes)}): {_short(bad_shapes)}")
  if unexpected and strict:
    problems.append(
        f"unexpected tensors ({len(unexpected)}): {_short(unexpected)}")
  if problems:
    raise CheckpointError(
        f"checkpoint {directory} does not match the {config.family} config "
        f"(prefix {prefix!r}):\n  " + "\n  ".join(problems))
  return params


def load_hf(directory: str | pathlib.Path, dtype: str | None = None,
            **overrides) -> tuple[ModelConfig, dict[str, Any]]:
  """(config, params) of an HF checkpoint directory."""
  config = load_hf_config(directory, **overrides)
  return config, load_hf_params(directory, config, dtype)


def _short(items: list[str], n: int = 8) -> str:
  more = f" ... and {len(items) - n} more" if len(items) > n else ""
  return ", ".join(items[:n]) + more


# ----------------------------------------------------------------- writing


def hf_state_dict(config: ModelConfig,
                  params: dict[str, Any]) -> dict[str, np.ndarray]:
  """The params tree as HF tensors {name: float32 or bfloat16 array}.

  What `save_hf` writes, and what the GGUF export
  (ftgen.checkpoints.gguf_export) renames.
  """
  tensors: dict[str, np.ndarray] = {}
  for entry in key_map(config):
    x = np.asarray(_get_path(params, entry.path))
    if x.dtype not in (np.float32, ml_dtypes.bfloat16):
      x = x.astype(np.float32)
    layers = range(config.num_layers) if entry.layered else [None]
    for i in layers:
      name = entry.hf_name.format(i=i)
      name = name[1:] if name.startswith("/") else "model." + name
      tensors[name] = np.ascontiguousarray(
          to_hf(entry.transform, x[i] if entry.layered else x))
  return tensors


def check_finite(params: dict[str, Any], what: str) -> None:
  """Raises CheckpointError naming the leaves of `params` with NaN or inf.

  A diverged fine-tune must not leave weights that score like a model
  (docs/design.md#reliability).
  """
  bad = []
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    x = np.asarray(x)
    if x.dtype.kind not in "biu" and not np.isfinite(x).all():
      bad.append(("/".join(str(getattr(k, "key", k)) for k in path),
                  int(np.size(x) - np.count_nonzero(np.isfinite(x))),
                  int(np.size(x))))
  if bad:
    path, n, size = bad[0]
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    raise CheckpointError(
        f"refusing {what}: {n} of {size} values of {path} are not"
        f" finite{more}; the fine-tune diverged (lower the learning rate)")


def save_hf(directory: str | pathlib.Path, config: ModelConfig,
            params: dict[str, Any]) -> pathlib.Path:
  """Writes config.json + model.safetensors with HF tensor names.

  Raises:
    CheckpointError: a weight is NaN or inf (nothing is written).
  """
  directory = pathlib.Path(directory)
  check_finite(params, f"export to {directory}")
  directory.mkdir(parents=True, exist_ok=True)
  tensors = hf_state_dict(config, params)
  with data_io.atomic_path(directory / "model.safetensors") as tmp:
    save_file(tensors, str(tmp), metadata={"format": "pt"})
  hf_config = config.to_hf_config()
  data_io.atomic_write_json(directory / "config.json", hf_config)
  data_io.atomic_write_json(directory / "generation_config.json",
                            generation_config(config))
  return directory


def generation_config(config: ModelConfig) -> dict[str, Any]:
  """`generation_config.json`: the special ids `generate` stops and pads with.

  Without it transformers' `generate` stops only at config.json's first EOS;
  every end-of-turn id is listed (as the GGUF import's cache entry does).
  """
  eos = list(config.eos_token_ids)
  out = {"bos_token_id": config.bos_token_id,
         "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
         "pad_token_id": config.pad_token_id}
  return {k: v for k, v in out.items() if v is not None}
