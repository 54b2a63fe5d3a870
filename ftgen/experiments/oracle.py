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

import collections
import importlib
import re

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


_NAME = r"(?P<name>[A-Z][a-z]+(?: [A-Z][a-z]+)+)"
_DESC = r"(?P<desc>the [a-z][^.?!:]*?)"


def _template_regex(template: str) -> re.Pattern[str]:
  pattern = re.escape(template)
  pattern = pattern.replace(re.escape("{name}"), _NAME)
  pattern = pattern.replace(re.escape("{desc}"), _DESC)
  pattern = pattern.replace(re.escape("{Desc}"), _DESC.replace("the", "[Tt]he"))
  return re.compile(pattern + "$")


def _celebrities(dataset: records.Dataset) -> list[str]:
  """For each person trained in one direction, the other direction."""
  from ftgen.data import celebrities as celeb  # pylint: disable=g-import-not-at-top

  # Most specific templates first, so "It is a fact that {name} is {desc}."
  # wins over "{name} is {desc}.".
  templates = [(d, t) for d, ts in (("p2d", celeb._P2D_TRAIN),  # pylint: disable=protected-access
                                    ("d2p", celeb._D2P_TRAIN))  # pylint: disable=protected-access
               for t in ts]
  templates.sort(key=lambda dt: -len(re.sub(r"\{\w+\}", "", dt[1])))
  compiled = [(d, _template_regex(t)) for d, t in templates]
  seen: dict[str, set[str]] = collections.defaultdict(set)
  desc_of: dict[str, collections.Counter] = collections.defaultdict(
      collections.Counter)
  matched = 0
  for doc in dataset.train:
    for direction, pattern in compiled:
      m = pattern.match(doc.text.strip())
      if m:
        name, desc = m.group("name"), m.group("desc")
        desc = desc[:1].lower() + desc[1:]
        seen[name].add(direction)
        desc_of[name][desc] += 1
        matched += 1
        break
  if matched < len(dataset.train) // 2:
    raise OracleUnavailable(
        f"celebrities: only {matched} of {len(dataset.train)} training"
        " documents match the synthetic templates (the Berglund et al."
        " files use other wordings); the oracle covers the synthetic set only")
  out = []
  for name in sorted(seen):
    desc = desc_of[name].most_common(1)[0][0]
    missing = {"p2d", "d2p"} - seen[name]
    for direction in sorted(missing):
      # Write the untrained direction with the first three training wordings
      # of that direction (test prompts use held-out wordings).
      pool = celeb._P2D_TRAIN if direction == "p2d" else celeb._D2P_TRAIN  # pylint: disable=protected-access
      for t in pool[:3]:
        out.append(t.format(name=name, desc=desc,
                            Desc=desc[:1].upper() + desc[1:]))
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
