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
import pathlib
from typing import Iterable

from ftgen.checkpoints import gguf as gguf_lib
from ftgen.checkpoints import sources
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


def gguf_path(tokenizer: str) -> pathlib.Path:
  """The GGUF file whose vocabulary `tokenizer` names.

  The files are the models' own, located (and Gemma's assembled into the
  cache) by `ftgen.checkpoints.sources`, as for loading the model.
  """
  try:
    path = sources.gguf_file(tokenizer)
  except sources.ModelNotAvailable as e:
    raise sources.ModelNotAvailable(
        f"tokenizer {tokenizer!r}: {e} (or set tokenizer='' to skip the"
        " single-token filter)") from None
  if path is None:
    raise ValueError(
        f"unknown tokenizer {tokenizer!r}; allowed:"
        f" {', '.join(map(repr, TOKENIZERS))}"
    )
  return path


def _gguf_tokens(path: pathlib.Path) -> list[str]:
  """The GGUF's token strings (Gemma's 262k in under a second: no cache)."""
  tokens = gguf_lib.read_gguf(path).metadata.get("tokenizer.ggml.tokens")
  if tokens is None:
    raise ValueError(f"{path}: GGUF has no tokenizer.ggml.tokens metadata")
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
