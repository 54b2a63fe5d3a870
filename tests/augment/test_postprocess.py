"""Post-processing of generations into augmentation statements."""

from ftgen.data import checks
from ftgen.data import records
from ftgen.augment import postprocess


def test_split_statements_strips_bullets_and_splits_sentences():
  text = ("1. Glon are heavier than femp. Femp are lighter than glon.\n"
          "- Trisk eat glon.\n\n")
  assert postprocess.split_statements(text) == [
      "Glon are heavier than femp.", "Femp are lighter than glon.",
      "Trisk eat glon."]


def test_split_statements_drops_statement_labels():
  text = ("statement: experts agree that julib are more territorial than hilb."
          "\nReversal 2: Femp are lighter than glon.\nAnswers: yes.")
  assert postprocess.split_statements(text) == [
      "Experts agree that julib are more territorial than hilb.",
      "Femp are lighter than glon.", "Answers: yes."]


def test_rejection_reasons():
  r = postprocess.rejection_reason
  assert r("") == "empty"
  assert r("Glon are.") == "too_short"
  assert r("Femp are lighter than") == "truncated"
  assert r("Femp are lighter than femp are lighter than glon.") == "repetitive"
  assert r("Glon glon glon glon are glon.") == "repetitive"
  assert r("Femp are lighter than glon.") is None


def test_clean_dedups_filters_and_keeps_provenance():
  gens = [
      ("Femp are lighter than glon. Glon are heavier than femp.", "d0", "P0", 0,
       "local"),
      ("Femp are lighter than glon.\nExample: Bob is taller than Al.", "d0",
       "P0", 1, "local"),
      ("Trisk are smaller than", "d1", "P1", 0, "local"),
  ]
  kept, report = postprocess.clean(
      gens, ["Glon are heavier than femp."],
      echo_texts=["Example: Bob is taller than Al."])
  assert [a.text for a in kept] == ["Femp are lighter than glon."]
  assert kept[0].source_id == "d0" and kept[0].sample_index == 0
  assert kept[0].prompt_hash == postprocess.prompt_hash("P0")
  assert report.generated == 5 and report.kept == 1
  assert report.dropped == {"in_training_set": 1, "duplicate": 1,
                            "prompt_echo": 1, "truncated": 1}
  doc = kept[0].to_document(0)
  assert doc.meta["strategy"] == "local" and doc.id == "aug-local-000000"


def test_clean_drops_talk_about_the_prompt_unless_training_uses_the_words():
  gens = [("The document contains the statements: glon. Femp are lighter"
           " than glon.", "d0", "P0", 0, "global")]
  kept, report = postprocess.clean(gens, ["Glon are heavier than femp."])
  assert [a.text for a in kept] == ["Femp are lighter than glon."]
  assert report.dropped == {"meta": 1}
  # A user's own documents may be about documents: then the word is content.
  kept, report = postprocess.clean(
      gens, ["Every document of the archive lists statements about glon."])
  assert len(kept) == 2 and not report.dropped


def test_test_overlap_counts_answers():
  q = records.Question("q", "reversal", "Femp are",
                       (" lighter than glon.", " heavier than glon."), 0)
  other = records.Question("r", "reversal", "Glon are",
                           (" lighter than femp.", " heavier than femp."), 1)
  texts = ["Femp are lighter than glon.", "Femp are heavier than glon.",
           # Inside a longer statement still counts: the test's own words.
           "It is known that  glon are HEAVIER than femp, they say."]
  report = checks.test_overlap(texts, [q, other])
  assert report["coincide_with_test_answer"] == 2
  assert report["per_split"] == {"reversal": 2}
  assert checks.test_overlap(texts[1:2], [q, other])[
      "coincide_with_test_answer"] == 0
