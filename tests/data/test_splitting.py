"""Tests for sentence splitting into fine-tuning examples."""

import re

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from ftgen.data import records
from ftgen.data import splitting


@pytest.mark.parametrize("text, expected", [
    ("Femp are larger than glon. Glon are small.",
     ["Femp are larger than glon.", "Glon are small."]),
    ("Some, e.g. the femp, are big. Others i.e. glon are not.",
     ["Some, e.g. the femp, are big.", "Others i.e. glon are not."]),
    ("It weighs 3.5 kg. Really!", ["It weighs 3.5 kg.", "Really!"]),
    ("Dr. Smith met J. Doe at 5 p.m. today. Then left.",
     ["Dr. Smith met J. Doe at 5 p.m. today.", "Then left."]),
    ("Cats, dogs, etc. are pets. Birds etc. Fish too.",
     ["Cats, dogs, etc. are pets.", "Birds etc.", "Fish too."]),
    ("Q: What is a femp?\nA: A kind of glon.",
     ["Q: What is a femp?", "A: A kind of glon."]),
    ('He said "Stop." Then ran. (Quickly.) Done', 
     ['He said "Stop."', "Then ran.", "(Quickly.)", "Done"]),
    ("  \n\n  ", []),
])
def test_split_sentences(text, expected):
  assert splitting.split_sentences(text) == expected


def test_modes():
  docs = [records.Document("a", "One is here. Two is there!\nQ: Three?"),
          "Solo text", "   "]
  none = splitting.make_examples(docs, "none")
  assert none == [("", docs[0].text), ("", "Solo text")]
  ind = splitting.make_examples(docs, "independent")
  assert [t for c, t in ind] == ["One is here.", "Two is there!", "Q: Three?",
                                 "Solo text"]
  assert all(c == "" for c, _ in ind)
  cum = splitting.make_examples(docs, "cumulative")
  assert cum[:3] == [
      ("", "One is here."),
      ("One is here.", " Two is there!"),
      ("One is here. Two is there!", "\nQ: Three?"),
  ]
  assert cum[3] == ("", "Solo text")  # Contexts never cross documents.


def test_unknown_mode_names_allowed():
  with pytest.raises(ValueError, match="none, independent, cumulative"):
    splitting.make_examples(["x."], "per_sentence")


_WORD = st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8).filter(
    lambda w: w not in splitting._NEVER_END | splitting._MAYBE_END)
_TOKEN = st.one_of(
    _WORD, _WORD.map(str.capitalize), st.just("e.g."), st.just("i.e."),
    st.decimals(0, 1000, places=2).map(str), st.just("Dr."))
_SENTENCE = st.builds(
    # Ends in a plain word: "... e.g.." is ambiguous by design.
    lambda first, rest, last, end: (
        " ".join([first.capitalize(), *rest, last]) + end),
    _WORD, st.lists(_TOKEN, max_size=6), _WORD,
    st.sampled_from([".", "!", "?"]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_SENTENCE, min_size=1, max_size=6), min_size=1,
                max_size=4),
       st.sampled_from([" ", "  ", "\n", " \n"]))
def test_properties(docs_sentences, sep):
  texts = [sep.join(s) for s in docs_sentences]
  # Independent targets are exactly each document's sentences.
  ind = splitting.make_examples(texts, "independent")
  assert [t for _, t in ind] == [s for ss in docs_sentences for s in ss]
  cum = splitting.make_examples(texts, "cumulative")
  assert len(cum) == len(ind)
  i = 0
  for text, sentences in zip(texts, docs_sentences):
    for k, sentence in enumerate(sentences):
      context, target = cum[i]
      i += 1
      # The context is the document prefix before this sentence.
      assert text.startswith(context + target)
      assert target.strip() == sentence
      assert splitting.split_sentences(context) == sentences[:k]
    assert context + target == text.strip()
  joined = " ".join(t for _, t in ind)
  assert re.sub(r"\s+", " ", joined) == re.sub(r"\s+", " ", " ".join(texts))
