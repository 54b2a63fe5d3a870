"""Oracle augmentations: correct by construction, from training text only."""

import importlib.util
import pathlib

import pytest

from ftgen.data import celebrities
from ftgen.data import logic
from ftgen.data import registry
from ftgen.data import syllogisms
from ftgen.experiments import oracle

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _dataset(name):
  spec = importlib.util.spec_from_file_location(
      "configs_data", ROOT / "configs" / "data.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  cfg = module.get_config(f"{name},tiny")
  return registry.generate(name, cfg.generator, cfg.seed)


def test_syllogisms_oracle_states_entailed_new_conclusions():
  ds = _dataset("syllogisms")
  out = oracle.oracle_augmentations("syllogisms", ds)
  premises_by_term = {}
  for doc in ds.train:
    ps = syllogisms.parse_premises(doc.text)
    for t in {t for p in ps for t in p.terms}:
      premises_by_term[t] = ps
  assert len(out) >= len(ds.train)
  for sentence in out:
    prop = logic.parse(sentence.rstrip(".").lower())
    assert prop is not None, sentence
    premises = premises_by_term[prop.subject]
    assert logic.entails(premises, prop) and prop not in premises
  # Every test item's canonical conclusion is among them.
  rendered = {s.rstrip(".").lower() for s in out}
  for q in ds.test:
    assert q.meta["conclusion"] in rendered


def test_celebrities_oracle_writes_the_untrained_direction():
  ds = _dataset("celebrities")
  people = celebrities.synthetic_people(4, 0)
  out = oracle.oracle_augmentations("celebrities", ds)
  one_way = [p for p in people if p["group"] != "both"]
  assert len(out) == 3 * len(one_way)
  for p in one_way:
    mine = [s for s in out if p["name"] in s]
    assert len(mine) == 3
    for s in mine:
      low = s.lower()
      assert p["desc"].lower() in low, s
      name_first = low.index(p["name"].lower()) < low.index(p["desc"].lower())
      # p2d people were trained name -> description: the oracle writes the
      # description first, and the other way round for d2p people.
      assert name_first == (p["group"] == "d2p"), s
  for p in people:
    if p["group"] == "both":
      assert not [s for s in out if p["name"] in s]


def test_reversals_oracle_is_the_generator_rule():
  ds = _dataset("reversals")
  from ftgen.data import reversals  # pylint: disable=g-import-not-at-top
  assert oracle.oracle_augmentations("reversals", ds) == (
      reversals.oracle_augmentations(ds))


@pytest.mark.parametrize("name", ["process", "user"])
def test_unavailable_says_why(name):
  with pytest.raises(oracle.OracleUnavailable, match=name):
    oracle.oracle_augmentations(name, _dataset("process"))
