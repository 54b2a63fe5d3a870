"""The dataset registry: every entry complete, and each part doing its job.

Oracle augmentations are correct by construction, from training text only;
checkers judge generated statements against the training documents.
"""

import pytest

from ftgen import configs
from ftgen.augment import prompts
from ftgen.data import celebrities
from ftgen.data import celebrities_text
from ftgen.data import checks
from ftgen.data import logic
from ftgen.data import records
from ftgen.data import registry
from ftgen.data import reversals
from ftgen.data import splitting
from ftgen.data import syllogisms
from ftgen.data import validity

SYNTHETIC = [n for n in registry.DATASETS if registry.get(n).synthetic]


def _dataset(name):
  cfg = configs.load(f"data:{name},tiny")
  return registry.generate(name, cfg.generator, cfg.seed)


# ------------------------------------------------------------ completeness


def test_names_are_the_registry_keys_and_unknown_names_list_them():
  assert registry.DATASETS == tuple(registry.SPECS)
  assert all(registry.get(n).name == n for n in registry.DATASETS)
  with pytest.raises(ValueError, match="allowed: reversals, syllogisms"):
    registry.get("nope")


@pytest.mark.parametrize("name", SYNTHETIC)
def test_every_synthetic_entry_has_all_its_parts(name):
  """A new dataset needs its module and its entry, nothing else."""
  spec = registry.get(name)
  ds = _dataset(name)
  assert ds.name == name and ds.train and ds.test
  assert spec.checks is not None
  assert registry.failures(ds) == {}
  # Its own checks run after the generic ones.
  assert set(spec.checks(ds)) < set(registry.run_checks(ds))
  assert spec.split_mode in splitting.MODES
  assert spec.augment_unit in ("sentence", "document")
  # An oracle, or the reason there is none.
  if spec.oracle is None:
    assert spec.no_oracle
    with pytest.raises(records.OracleUnavailable, match=name):
      registry.oracle_augmentations(name, ds)
  else:
    assert not spec.no_oracle
    assert all(isinstance(s, str) and s
               for s in registry.oracle_augmentations(name, ds))
  # A checker comes with its restatement checker, and judges the oracle.
  assert (spec.checker is None) == (spec.restatement_checker is None)
  if spec.checker is not None:
    check = spec.checker(ds.train)
    restates = spec.restatement_checker(ds.train)
    # A training document is correct and restates what was trained.
    for doc in ds.train[:5]:
      assert check(doc.text) is True and restates(doc.text) is True
    if spec.oracle is not None:
      oracle = registry.oracle_augmentations(name, ds)
      assert all(check(s) is True for s in oracle)
  # Augmentation prompts: the dataset's own or the generic ones, valid.
  for strategy in prompts.REQUIRED_FIELDS:
    template = prompts.default_template(name, strategy)
    prompts.validate_template(template, strategy, name)
    own = spec.augment_templates.get(strategy)
    if own is None and strategy == "local" and spec.augment_examples:
      own = prompts.local_template(spec.augment_examples)
      # Its worked examples, in the dataset's wording, are in the prompt.
      for statement, restatements in spec.augment_examples:
        assert statement in own and all(r in own for r in restatements)
    assert template == (own or prompts.GENERIC_TEMPLATES[strategy])


def test_user_documents_are_not_synthetic():
  spec = registry.get("user")
  assert not spec.synthetic and spec.oracle is None and spec.no_oracle
  assert spec.split_mode in splitting.MODES


def test_configs_read_the_registry():
  """Split mode and augmentation facts come from the entry, in every config."""
  for name in registry.DATASETS:
    spec = registry.get(name)
    assert configs.load(f"finetune:{name}").data.split_mode == spec.split_mode
    assert configs.load(f"experiment:{name}").split_mode == "paper"
    aug = configs.load(f"augment:{name},local")
    assert aug.unit == spec.augment_unit
    assert set(spec.augment_stop_strings) <= set(aug.stop_strings)
  assert configs.module("data").DATASETS == registry.DATASETS


def test_only_your_own_documents_may_lack_questions(monkeypatch):
  train_only = records.Dataset("toy", [records.Document("d", "Glon.")], [])
  for synthetic in (True, False):
    monkeypatch.setitem(registry.SPECS, "toy", registry.DatasetSpec(
        "toy", lambda cfg, seed: train_only, synthetic=synthetic))
    if synthetic:
      with pytest.raises(ValueError, match="empty train or test set"):
        registry.generate("toy", None, 0)
    else:
      assert registry.generate("toy", None, 0) is train_only


# ------------------------------------------------------------------ oracle


def test_syllogisms_oracle_states_entailed_new_conclusions():
  ds = _dataset("syllogisms")
  out = registry.oracle_augmentations("syllogisms", ds)
  premises_by_term = {}
  for doc in ds.train:
    ps = syllogisms.parse_premises(doc.text)
    for t in {t for p in ps for t in p.terms}:
      premises_by_term[t] = ps
  valid = [d for d in ds.train if "form" in d.meta]
  assert len(out) >= len(valid)
  props = set()
  for sentence in out:
    # In the documents' wording, never the test's.
    assert logic.parse(sentence.rstrip(".").lower()) is None, sentence
    [prop] = syllogisms.parse_premises(sentence)
    premises = premises_by_term[prop.subject]
    assert logic.entails(premises, prop) and prop not in premises
    props.add(prop)
  # Every main-split item's canonical conclusion is among them.
  for q in ds.test:
    if q.split == syllogisms.SPLIT:
      assert logic.parse(q.meta["conclusion"]) in props


def test_celebrities_oracle_writes_the_untrained_direction():
  ds = _dataset("celebrities")
  people = celebrities.synthetic_people(4, 0)
  out = registry.oracle_augmentations("celebrities", ds)
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


def test_celebrities_oracle_refuses_other_wordings():
  ds = _dataset("celebrities")
  other = records.Dataset(
      "celebrities", [records.Document(d.id, "Q: " + d.text)
                      for d in ds.train], ds.test)
  with pytest.raises(records.OracleUnavailable, match="synthetic set only"):
    registry.oracle_augmentations("celebrities", other)


def test_reversals_oracle_is_the_generator_rule():
  ds = _dataset("reversals")
  assert registry.oracle_augmentations("reversals", ds) == (
      reversals.oracle_augmentations(ds))


@pytest.mark.parametrize("name", ["process", "user"])
def test_unavailable_says_why(name):
  with pytest.raises(records.OracleUnavailable, match=name):
    registry.oracle_augmentations(name, _dataset("process"))


# ---------------------------------------------------------------- checkers


def test_checkers_judge_dataset_statements():
  rev = _dataset("reversals")
  spec = registry.get("reversals")
  check = spec.checker(rev.train)
  restates = spec.restatement_checker(rev.train)
  fact = reversals.training_facts(rev)[0]
  forward = fact.statement().capitalize() + "."
  backward = fact.reversed().statement().capitalize() + "."
  wrong = reversals.Fact(fact.b, fact.a, fact.dimension, fact.direction)
  assert check(forward) is True and restates(forward)
  assert check(backward) is True and not restates(backward)
  assert check(wrong.statement() + ".") is False
  assert check("The sky is blue.") is None

  syl = _dataset("syllogisms")
  check = registry.get("syllogisms").checker(syl.train)
  q = syl.test[0]
  good = [q.choices[a] for a in q.answers]
  bad = [c for i, c in enumerate(q.choices) if i not in q.answers]
  assert all(check(c.strip()) is True for c in good)
  assert all(check(c.strip()) is False for c in bad)
  other = syl.test[1].meta["premises"][0].split()[1]  # a term of item 1
  mixed = f"All {q.meta['premises'][0].split()[1]} are {other}."
  assert check(mixed) is False
  assert registry.get("semantic").checker is None


def test_celebrities_checker_judges_pairs_and_direction():
  ds = _dataset("celebrities")
  people, matched = celebrities_text.trained_people(ds.train)
  assert matched == len(ds.train)
  spec = registry.get("celebrities")
  check = spec.checker(ds.train)
  restates = spec.restatement_checker(ds.train)
  p2d = next(p for p in people.values() if p.directions == {"p2d"})
  d2p = next(p for p in people.values() if p.directions == {"d2p"})
  forward = f"{p2d.name} is {p2d.description}."
  backward = f"The{p2d.description[3:]} is {p2d.name}."
  assert check(forward) is True and restates(forward)
  assert check(backward) is True and not restates(backward)
  assert check(f"{d2p.name} is {d2p.description}.") is True
  assert not restates(f"{d2p.name} is {d2p.description}.")
  # Another person's description, or one of two wrong: wrong.
  assert check(f"{p2d.name} is {d2p.description}.") is False
  assert check(f"{p2d.name}, {p2d.description}, is {d2p.description}."
               ) is False
  # A different adjective is still judged by the unique last word.
  assert check(f"{p2d.name} is the much loved {p2d.thing.lower()}.") is True
  # Nothing to judge: no trained name, no description, or two people.
  assert check(f"The{p2d.description[3:]} is famous.") is None
  assert check(f"{p2d.name} is famous.") is None
  assert check(f"{p2d.name} and {d2p.name} met {p2d.thing}.") is None
  # The Berglund et al. wordings are not parsed: no checker.
  other = [records.Document(d.id, "Q: " + d.text) for d in ds.train]
  assert spec.checker(other) is None


# ------------------------------------------------------------ validity


@pytest.mark.parametrize("variant", ["", ",tiny"])
@pytest.mark.parametrize("name", SYNTHETIC)
def test_shortcut_heuristics_sit_at_chance_and_the_oracle_writes_no_test_item(
    name, variant):
  """A number means what its label says only if no cheap rule produces it:
  every heuristic of `ftgen.data.validity` is within 0.1 of chance on every
  split, at the default and tiny sizes, unless the spec says why the task
  forces it; and the oracle states no test item in the test's words."""
  cfg = configs.load(f"data:{name}{variant}")
  ds = registry.generate(name, cfg.generator, cfg.seed)
  spec = registry.get(name)
  section = registry.validity(ds)
  assert section["problems"] == []
  assert set(section["chance"]) == set(ds.splits)
  for key, reason in spec.forced.items():
    heuristic = key.split("/")[0]
    assert heuristic in section["heuristics"], key
    assert len(reason) > 20, key  # A reason, not a label.
  for split in spec.controls:
    assert split in ds.splits, split
  if spec.oracle is not None:
    overlap = checks.test_overlap(registry.oracle_augmentations(name, ds),
                                  ds.test)
    assert overlap["coincide_with_test_answer"] == 0, overlap["examples"]


def test_a_shortcut_is_reported_unless_forced():
  """The check can fail: a split whose answer is always the longest choice."""
  qs = [records.Question(f"q{i}", "s", "Blim are", (" zorp.", " zorp zorp."),
                         1) for i in range(10)]
  ds = records.Dataset("made_up", [records.Document("d", "Blim are zorp.")],
                       qs)
  problems = validity.report(ds)["problems"]
  assert any("longest_choice scores 1.000" in p for p in problems)
  forced = validity.report(ds, forced={"longest_choice/s": "by design"})
  assert not any("longest_choice" in p for p in forced["problems"])
