"""The shortcut heuristics (ftgen/data/validity.py) on hand-made datasets."""

from ftgen.data import records
from ftgen.data import validity


def _q(i, prompt, choices, answer, split="s"):
  return records.Question(f"q{i}", split, prompt, choices, answer)


def test_ties_are_broken_uniformly():
  q = _q(0, "Blim are", (" a.", " b.", " c.", " d."), 2)
  assert validity.expected_accuracy(q, [1, 1, 1, 1]) == 0.25
  assert validity.expected_accuracy(q, [0, 1, 1, 0]) == 0.5
  assert validity.expected_accuracy(q, [0, 1, 0, 0]) == 0.0


def test_stem_is_idempotent():
  for w in ("glass", "blasps", "less", "Thes", "bus"):
    assert validity.stem(validity.stem(w)) == validity.stem(w)
  assert validity.stem("Blasps") == "blasp"


def test_follows_query_finds_the_word_order_shortcut():
  """The semantic reversal shortcut of issue 13: the answer follows the
  queried word in some training document."""
  # "eat" is in most documents, so it is template, not a queried word.
  filler = [f"Word{chr(97 + i)}s eat thing{chr(97 + i)}s." for i in range(8)]
  docs = [records.Document(f"d{i}", text) for i, text in enumerate([
      "Among their foods, zarbs eat tults.", "Glons eat femps."] + filler)]
  qs = [_q(0, "Those that eat tults are", (" zarbs.", " glons."), 0),
        _q(1, "Those that eat femps are", (" zarbs.", " glons."), 1)]
  ds = records.Dataset("made_up", docs, qs)
  report = validity.report(ds)
  # Each answer precedes its queried word, so `precedes_query` finds it;
  # nothing follows it.
  assert report["heuristics"]["precedes_query"]["s"] == 1.0
  assert report["heuristics"]["follows_query"]["s"] == 0.5
  assert any("precedes_query" in p for p in report["problems"])
  assert report["chance"] == {"s": 0.5}


def test_majority_first_word_is_the_best_fixed_answer():
  qs = [_q(i, "Blim are", (" more tall.", " less tall."), 0 if i < 7 else 1)
        for i in range(10)]
  ds = records.Dataset("made_up", [records.Document("d", "Blim are.")], qs)
  report = validity.report(ds)
  assert report["heuristics"]["majority_first_word"]["s"] == 0.7
  assert report["problems"] and "majority_first_word" in report["problems"][0]
  card = validity.card_text(report)
  assert "| majority_first_word | 0.700 |" in card
