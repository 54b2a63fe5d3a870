"""Rule-written ("oracle") augmentations from a dataset's own ground truth.

The upper bound of augmented fine-tuning: every reversal and entailed
conclusion of the training facts, written by rule instead of by the model.
It separates "does augmented data help fine-tuning" from "can this model
write correct augmentations". Built from the training documents only.

Datasets whose generator module offers `oracle_augmentations(dataset)`
(reversals, semantic, ...) use it; syllogisms and synthetic celebrities are
written here; for the others the condition is unavailable and
`OracleUnavailable` says why.
"""

from __future__ import annotations

import importlib

from ftgen.data import logic
from ftgen.data import records


class OracleUnavailable(ValueError):
  """The dataset has no rule-written augmentation (the message says why)."""


_UNAVAILABLE = {
    "process": (
        "the process dataset tests held-out rule combinations; a rule-written"
        " augmentation would have to demonstrate exactly those combinations,"
        " i.e. restate the test set, so there is no leak-free oracle"),
    "user": "your own documents carry no machine-readable ground truth",
}


def _syllogisms(dataset: records.Dataset) -> list[str]:
  """Every conclusion entailed by each item's premises (not a premise)."""
  from ftgen.data import syllogisms  # pylint: disable=g-import-not-at-top

  out: dict[str, None] = {}
  for doc in dataset.train:
    premises = syllogisms.parse_premises(doc.text)
    terms = sorted({t for p in premises for t in p.terms})
    stated = set(premises)
    for x in terms:
      for y in terms:
        if x == y:
          continue
        for q in ("all", "some", "no"):
          prop = logic.Prop(q, x, y)
          if prop not in stated and logic.entails(premises, prop):
            text = prop.render()
            out[text[:1].upper() + text[1:] + "."] = None
  return list(out)


def _celebrities(dataset: records.Dataset) -> list[str]:
  """For each person trained in one direction, the other direction."""
  from ftgen.data import celebrities  # pylint: disable=g-import-not-at-top

  people, matched = celebrities.trained_people(dataset.train)
  if matched < len(dataset.train) // 2:
    raise OracleUnavailable(
        f"celebrities: only {matched} of {len(dataset.train)} training"
        " documents match the synthetic templates (the Berglund et al."
        " files use other wordings); the oracle covers the synthetic set only")
  out = []
  for person in people.values():
    for direction in sorted({"p2d", "d2p"} - person.directions):
      # The untrained direction in the first three training wordings of that
      # direction (test prompts use held-out wordings).
      out.extend(celebrities.statements(person, direction, 3))
  return out


_LOCAL = {"syllogisms": _syllogisms, "celebrities": _celebrities}


def oracle_augmentations(name: str, dataset: records.Dataset) -> list[str]:
  """The oracle statements for dataset `name` (one sentence each).

  Raises:
    OracleUnavailable: the dataset has no rule-written augmentation.
  """
  if name in _UNAVAILABLE:
    raise OracleUnavailable(f"{name}: {_UNAVAILABLE[name]}")
  if name in _LOCAL:
    out = _LOCAL[name](dataset)
  else:
    try:
      module = importlib.import_module(f"ftgen.data.{name}")
    except ImportError:
      module = None
    fn = getattr(module, "oracle_augmentations", None)
    if fn is None:
      raise OracleUnavailable(
          f"{name}: no oracle_augmentations in ftgen.data.{name}; available"
          f" for reversals, semantic, {', '.join(_LOCAL)}")
    out = fn(dataset)
  if not out:
    raise OracleUnavailable(f"{name}: the oracle wrote no statements")
  return list(out)
