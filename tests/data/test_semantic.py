"""Tests for the semantic dataset (hierarchy, documents, splits, checks)."""

import collections
import functools
import re

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from configs import data as data_configs
from ftgen.data import checks
from ftgen.data import records
from ftgen.data import registry
from ftgen.data import semantic
from ftgen.data import semantic_kb as kb
from ftgen.data import semantic_text
from ftgen.data import vocab

SPLITS = ("rephrase", "reversal", "syllogism", "category_holdout")


def _cfg(tiny=True, **overrides):
  name = "semantic,tiny" if tiny else "semantic"
  cfg = data_configs.get_config(name).generator
  cfg = cfg.copy_and_resolve_references()
  cfg.unlock()
  cfg.tokenizer = ""  # No model files needed.
  cfg.update(overrides)
  return cfg


@functools.lru_cache(maxsize=None)
def _dataset(tiny=True, seed=0):
  return semantic.generate(_cfg(tiny), seed)


def _sentences(ds):
  return [s.strip() for d in ds.train
          for s in re.split(r"[.!\n]+", d.text.replace("?\nA: ", "? A: "))]


def test_hierarchy_is_real_world_sized_and_consistent():
  w = kb.english_world()
  assert 100 <= len(w.categories) <= 120
  roots = {c for c in w.categories if w.parent[c] is None}
  assert roots == {"animal", "object"}
  assert w.parent["dog"] == "canine" and w.ancestors("dog") == (
      "canine", "mammal", "animal")
  assert all(1 <= len(w.props[c]) <= 6 for c in w.categories)
  words = [p for c in w.categories for _, p in w.props[c]]
  assert len(words) == len(set(words))
  assert w.holds_prop("dog", "have", "fur") and not w.holds_prop(
      "eagle", "have", "fur")
  for verb in w.verbs:
    pairs = [(x, y) for x, v, y in w.rels if v == verb]
    assert len({x for x, _ in pairs}) >= 4 and len({y for _, y in pairs}) >= 4
    assert all(w.is_leaf(x) and w.is_leaf(y) for x, y in pairs)


def test_relexicalization_is_nonsense_consistent_and_seeded():
  world, lex = kb.build_world(0)
  english = vocab.english_words()
  assert len(set(lex.values())) == len(lex)
  assert not english.intersection(lex.values())
  en = kb.english_world()
  assert world.parent[lex["cat:dog"]] == lex["cat:canine"]
  assert ("have", lex["prop:fur"]) in world.props[lex["cat:mammal"]]
  assert (lex["cat:wolf"], lex["verb:eat"], lex["cat:sheep"]) in world.rels
  assert len(world.categories) == len(en.categories)
  # Surface forms never collide or end with one another (substring checks).
  forms = [f for w in lex.values() for f in kb.forms(w)]
  assert len(forms) == len(set(forms))
  assert kb.build_world(0)[1] == lex
  other = kb.build_world(1)[1]
  assert sum(lex[k] == other[k] for k in lex) < len(lex) // 10


def test_morphology():
  assert kb.plural("blix") == "blixes" and kb.plural("flum") == "flums"
  assert kb.plural("smoy") == "smoys" and kb.plural("trelby") == "trelbies"
  assert kb.past("glim") == "glimed" and kb.past("snoke") == "snoked"
  assert kb.article("olm") == "an" and kb.article("flum") == "a"


def test_full_size_dataset_matches_design():
  ds = _dataset(tiny=False)
  assert len(ds.train) == 2200
  counts = collections.Counter(q.split for q in ds.test)
  assert set(counts) == set(SPLITS)
  assert all(200 <= n <= 300 for n in counts.values())
  assert all(len(q.choices) == 4 for q in ds.test)
  lengths = [d.meta["sentences"] for d in ds.train]
  assert min(lengths) >= 4 and max(lengths) <= 20
  styles = collections.Counter(d.meta["style"] for d in ds.train)
  assert set(styles) == set(semantic_text.STYLES)
  assert any(d.text.count("\nQ: ") >= 3 for d in ds.train)
  for split in SPLITS:
    answers = collections.Counter(q.answer for q in ds.test if q.split == split)
    assert max(answers.values()) - min(answers.values()) <= 1
  assert registry.failures(ds) == {}
  # Choices are one word plus a period, of similar length.
  for q in ds.test:
    assert all(re.fullmatch(r" [a-z]+\.", c) for c in q.choices)
    assert max(map(len, q.choices)) - min(map(len, q.choices)) <= 4


def test_splits_ask_what_they_claim():
  ds = _dataset(tiny=False)
  facts = semantic.training_facts(ds)
  world = kb.World.from_facts(facts)
  taught = {f.id for f in facts}
  sentences = _sentences(ds)
  holdouts = {q.meta["entity"] for q in ds.test
              if q.split == "category_holdout"}
  assert len(holdouts) == 16
  for q in ds.test:
    m, v = q.meta, q.meta["value"]
    deps = [kb.Fact.from_id(i) for i in m["depends_on"]]
    assert all(d.id in taught for d in deps)
    if q.split == "rephrase":
      (f,) = deps
      assert (f.subject, f.value) == (m["entity"], v)
      # The wording is new: the prompt minus its nonsense words is no
      # training sentence's prefix.
      frame = q.prompt.split(" ")[0]
      assert frame in ("Without", "One", "Scientists", "In", "Observers")
    elif q.split == "reversal":
      (f,) = deps
      assert m["type"].endswith("_rev") and f.subject == v
      assert f.value == m["entity"]
    else:
      assert not any(d.subject == m["entity"] and d.value == v for d in deps)
      assert all(d.subject != m["entity"] or d.kind == "isa" for d in deps)
      if m["type"] == "prop":
        owner = deps[-1].subject
        assert owner in world.ancestors(m["entity"])
        assert (m["relation"], v) not in world.props[m["entity"]]
      assert (q.split == "category_holdout") == (m["entity"] in holdouts)
  # Deduced statements link documents: entity and value never share one.
  docs_of = collections.defaultdict(set)
  for k, d in enumerate(ds.train):
    for x in re.findall(r"[a-z]+", d.text.lower()):
      docs_of[x].add(k)
  for q in ds.test:
    if q.split in ("syllogism", "category_holdout"):
      e, v = q.meta["entity"], q.meta["value"]
      assert not (docs_of[e] | docs_of[kb.plural(e)]) & (
          docs_of[v] | docs_of[kb.plural(v)]), q.id
  # A held-out category's words appear only beside its parent.
  for h in holdouts:
    parent = kb.plural(world.parent[h])
    for s in sentences:
      words = set(re.findall(r"[a-z]+", s.lower()))
      if {h, kb.plural(h)} & words:
        assert {world.parent[h], parent} & words, s


def test_shallow_heuristics_are_at_chance_on_deductions():
  """Word co-occurrence and word frequency in train do not solve syllogisms."""
  ds = _dataset(tiny=False)
  docs_of, freq = collections.defaultdict(set), collections.Counter()
  for k, d in enumerate(ds.train):
    for x in re.findall(r"[a-z]+", d.text.lower()):
      docs_of[x].add(k)
      freq[x] += 1
  acc = collections.defaultdict(list)
  for q in ds.test:
    words = [w for w in re.findall(r"[a-z]+", q.prompt.lower())
             if 0 < len(docs_of[w]) < len(ds.train) // 4]
    values = [c.strip(" .") for c in q.choices]
    for name, scores in (
        ("cooccur", [sum(len(docs_of[w] & docs_of[v]) for w in words)
                     for v in values]),
        ("frequent", [freq[v] for v in values]),
        ("rare", [-freq[v] for v in values])):
      best = [i for i, x in enumerate(scores) if x == max(scores)]
      acc[(q.split, name)].append((q.answer in best) / len(best))
  mean = {k: sum(v) / len(v) for k, v in acc.items()}
  for split in ("syllogism", "category_holdout"):
    for name in ("cooccur", "frequent", "rare"):
      assert mean[(split, name)] < 0.33, (split, name, mean[(split, name)])
  # The stated facts themselves co-occur, as they must.
  assert mean[("rephrase", "cooccur")] > 0.6


def test_trained_facts_never_appear_backwards_or_deduced():
  ds = _dataset(tiny=False)
  text = checks.normalize("\n".join(d.text for d in ds.train))
  for marker in (" include ", "among the things", "sort of",
                 "without exception"):
    assert marker not in text
  world = kb.World.from_facts(semantic.training_facts(ds))
  passives = {kb.past(v) for v in world.verbs}
  assert not passives & set(re.findall(r"[a-z]+", text))


def _first(ds, split, **meta):
  return next(q for q in ds.test if q.split == split and all(
      q.meta[k] == v for k, v in meta.items()))


def test_checks_catch_leaks_missing_facts_and_bad_labels():
  ds = _dataset()
  assert registry.failures(ds) == {}

  def with_doc(text):
    doc = records.Document(id="extra", text=text)
    return records.Dataset(ds.name, ds.train + [doc], ds.test, ds.card)

  q = _first(ds, "syllogism")
  stated = q.prompt + q.choices[q.answer]
  problems = registry.failures(with_doc("Field notes. " + stated))
  assert "semantic_deductions_absent_from_train" in problems
  assert "no_test_answer_in_train" in problems

  q = _first(ds, "reversal", type="isa_rev")
  backwards = vocab.capitalize(
      f"{kb.plural(q.meta['entity'])} are the parent of"
      f" {kb.plural(q.meta['value'])}.")
  assert "semantic_reversals_only_forward_in_train" in registry.failures(
      with_doc(backwards))

  q = _first(ds, "category_holdout")
  h = q.meta["entity"]
  other = next(c for c in (f.subject for f in semantic.training_facts(ds))
               if c != h)
  assert "semantic_deductions_absent_from_train" in registry.failures(
      with_doc(vocab.capitalize(f"{kb.plural(h)} chase {kb.plural(other)}.")))

  # Drop every document that states a needed fact.
  need = _first(ds, "rephrase").meta["depends_on"][0]
  kept = [d for d in ds.train if need not in d.meta["facts"]]
  assert "semantic_needed_facts_in_train" in registry.failures(
      records.Dataset(ds.name, kept, ds.test, ds.card))

  # A wrong label, and a distractor that is true of the entity.
  flipped = [records.Question(q.id, q.split, q.prompt, q.choices,
                              (q.answer + 1) % len(q.choices), meta=q.meta)
             for q in ds.test]
  assert "semantic_labels_and_distractors" in registry.failures(
      records.Dataset(ds.name, ds.train, flipped, ds.card))
  q = _first(ds, "rephrase", type="isa")
  bad_values = list(q.meta["choice_values"])
  wrong = next(i for i in range(len(bad_values)) if i != q.answer)
  grandparent = kb.World.from_facts(semantic.training_facts(ds)).ancestors(
      q.meta["entity"])
  if len(grandparent) > 1:
    bad_values[wrong] = grandparent[1]
    choices = list(q.choices)
    choices[wrong] = f" {grandparent[1]}."
    bad = records.Question(q.id, q.split, q.prompt, tuple(choices), q.answer,
                           meta=dict(q.meta, choice_values=bad_values))
    tests = [bad if x.id == q.id else x for x in ds.test]
    problems = registry.failures(
        records.Dataset(ds.name, ds.train, tests, ds.card))
    assert any("is true of" in p for p in
               problems["semantic_labels_and_distractors"])


def test_oracle_states_every_reversal_and_deduction_and_nothing_untrained():
  ds = _dataset(tiny=False)
  oracle = semantic.oracle_augmentations(ds)
  normalized = {checks.normalize(s).rstrip(".") for s in oracle}
  for q in ds.test:
    if q.split in ("reversal", "syllogism", "category_holdout") and (
        q.meta["template"] == 0):
      target = checks.normalize(q.prompt + q.choices[q.answer]).rstrip(".")
      assert target in normalized, target
  # Only words the training documents use, so held-out categories get no
  # more than their parent fact entails.
  train_text = "\n".join(d.text for d in ds.train).lower()
  train_words = set(re.findall(r"[a-z]+", train_text))
  world = kb.World.from_facts(semantic.training_facts(ds))
  allowed = train_words | {kb.past(v) for v in world.verbs} | {
      "include", "among", "things", "by"}
  for s in oracle:
    assert set(re.findall(r"[a-z]+", s.lower())) <= allowed, s
  assert len(set(oracle)) == len(oracle)


def test_card_and_deterministic_generation():
  ds = _dataset()
  assert "115 categories" in ds.card["hierarchy"]
  assert {"description", "hierarchy", "splits"} <= set(ds.card)
  again = semantic.generate(_cfg(), 0)
  assert [d.to_json() for d in again.train] == [d.to_json() for d in ds.train]
  assert [q.to_json() for q in again.test] == [q.to_json() for q in ds.test]
  other = semantic.generate(_cfg(), 1)
  assert other.train[0].text != ds.train[0].text


def test_bad_config_values_are_named():
  with pytest.raises(ValueError, match="num_documents must be >= "):
    semantic.generate(_cfg(num_documents=10), 0)
  with pytest.raises(ValueError, match="num_holdout_categories must be in"):
    semantic.generate(_cfg(num_holdout_categories=500), 0)
  with pytest.raises(ValueError, match="min_questions_per_split"):
    semantic.generate(_cfg(min_questions_per_split=30,
                           max_questions_per_split=20), 0)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 4),
       holdouts=st.integers(1, 6), docs=st.integers(115, 160))
def test_property_generation(seed, k, holdouts, docs):
  cfg = _cfg(num_choices=k, num_holdout_categories=holdouts,
             num_documents=docs)
  ds = semantic.generate(cfg, seed)
  assert len(ds.train) == docs
  counts = collections.Counter(q.split for q in ds.test)
  assert counts == {s: 20 for s in SPLITS}
  assert all(len(q.choices) == k for q in ds.test)
  assert registry.failures(ds) == {}
