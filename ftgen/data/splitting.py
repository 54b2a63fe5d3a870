"""Sentence splitting of training documents for fine-tuning.

Why: docs/design.md#purpose (finding 5) and #protocol.

Three ways to turn documents into (context, target) training examples, where
only the target is scored:

* `none`: the whole document is one target.
* `independent`: one example per sentence, no context.
* `cumulative`: one example per sentence, with all earlier sentences of its
  document as unscored context. `context + target` is always a prefix of the
  (stripped) document, with the original white space between sentences kept
  at the start of the target, so the tokens match the unsplit document.

Sentence boundaries are `.`, `!`, `?` (optionally followed by closing quotes
or brackets) before white space, and every line break (so Q/A lines such as
"Q: ...\\nA: ..." split into question and answer). Not boundaries: decimals
("3.5"), common abbreviations ("e.g.", "i.e.", "Dr.", "vs."), initials
("J. Smith"), and "etc."/"Inc." unless an upper-case word follows. Hard-wrapped
prose (line breaks inside sentences) should be unwrapped first.
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple

from ftgen.data import records

MODES = ("none", "independent", "cumulative")

# Never end a sentence: the next word always belongs to the same sentence.
_NEVER_END = frozenset({
    "e.g", "i.e", "vs", "mr", "mrs", "ms", "dr", "prof", "st", "fig", "figs",
    "cf", "approx", "ca", "viz", "al", "resp", "eq", "eqs", "sec", "vol",
    "pp", "ch",
})
# May end a sentence: split only when an upper-case word follows.
_MAYBE_END = frozenset({"etc", "inc", "ltd", "co", "jr", "sr", "corp", "no"})

# A candidate end: terminal punctuation, closing quotes/brackets, then space.
_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]\u00bb]*(?=\s)")
_LINE = re.compile(r"[^\n]+")


class Example(NamedTuple):
  """One fine-tuning example: `context` is unscored, `target` is scored."""

  context: str
  target: str


def _is_boundary(line: str, start: int, end: int) -> bool:
  """Whether the punctuation run line[start:end] ends a sentence."""
  punct = line[start:end]
  if not punct.startswith("."):
    return True  # "?" and "!" always end a sentence.
  word_start = max(line.rfind(" ", 0, start), line.rfind("\t", 0, start)) + 1
  word = line[word_start:start].lstrip("\"'(\u201c\u2018[").lower()
  rest = line[end:].lstrip()
  next_upper = bool(rest) and (rest[0].isupper() or not rest[0].isalpha())
  if word in _NEVER_END:
    return False
  if len(word) == 1 and line[start - 1].isupper():
    return False  # An initial: "J. Smith".
  if word == "no":
    return not rest[:1].isdigit()  # "No. 5" vs "said no."
  if word in _MAYBE_END or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):
    return next_upper  # "etc. The ..." ends; "U.S. troops" does not.
  return True


def sentence_spans(text: str) -> list[tuple[int, int]]:
  """(start, end) character offsets of each sentence, white space excluded."""
  spans = []
  for line in _LINE.finditer(text):
    offset, body = line.start(), line.group()
    cuts = [0]
    for m in _END.finditer(body):
      if _is_boundary(body, m.start(), m.end()):
        cuts.append(m.end())
    cuts.append(len(body))
    for s, e in zip(cuts[:-1], cuts[1:]):
      piece = body[s:e]
      if piece.strip():
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        spans.append((offset + s + lead, offset + e - trail))
  return spans


def split_sentences(text: str) -> list[str]:
  """The sentences of `text`, stripped, in order."""
  return [text[s:e] for s, e in sentence_spans(text)]


def _text(doc: records.Document | str) -> str:
  return doc.text if isinstance(doc, records.Document) else doc


def make_examples(documents: Iterable[records.Document | str],
                  mode: str) -> list[Example]:
  """Training examples from documents (or strings) under a splitting mode.

  Args:
    documents: training documents or their texts.
    mode: one of `MODES`.

  Returns:
    Examples in document order, then sentence order. White-space-only
    documents give no examples.
  """
  if mode not in MODES:
    raise ValueError(
        f"unknown sentence splitting mode {mode!r}; allowed: {', '.join(MODES)}"
    )
  examples = []
  for doc in documents:
    text = _text(doc)
    if not text.strip():
      continue
    if mode == "none":
      examples.append(Example("", text))
      continue
    spans = sentence_spans(text)
    if mode == "independent":
      examples.extend(Example("", text[s:e]) for s, e in spans)
      continue
    first = spans[0][0]
    prev_end = first
    for s, e in spans:
      # The separator before a sentence goes with it, so that context +
      # target is exactly the document prefix.
      examples.append(Example(text[first:prev_end], text[prev_end:e]))
      prev_end = e
  return examples
