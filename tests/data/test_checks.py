"""The generic dataset checks catch what they claim to."""

from ftgen.data import checks
from ftgen.data import records


def _q(i, answer, prompt="Femp are",
       choices=(" lighter than glon.", " heavier than glon.")):
  return records.Question(f"q{i}", "reversal", prompt, choices, answer)


def test_leak_detected():
  ds = records.Dataset(
      "toy", [records.Document("d", "We know femp are lighter than glon.")],
      [_q(0, 0)])
  assert checks.no_test_answer_in_train(ds)
  ds.train[:] = [records.Document("d", "Glon are heavier than femp.")]
  assert not checks.no_test_answer_in_train(ds)


def test_unbalanced_answers_detected():
  train = [records.Document("d", "x")]
  assert checks.balanced_answer_positions(
      records.Dataset("t", train, [_q(i, 0) for i in range(10)]))
  balanced = [_q(i, i % 2) for i in range(10)]
  assert not checks.balanced_answer_positions(
      records.Dataset("t", train, balanced))


def test_duplicates_detected():
  ds = records.Dataset("t", [records.Document("d", "x"),
                            records.Document("d", "y")],
                       [_q(0, 0, choices=(" a", " a"))])
  assert checks.unique_ids(ds)
  assert checks.distinct_choices(ds)
