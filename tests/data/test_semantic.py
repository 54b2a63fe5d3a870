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
from ftgen.data import semantic_questions
from ftgen.data import semantic_text
from ftgen.data import validity
from ftgen.data import vocab

SPLITS = ("rephrase", "reversal", "reversal_strict", "syllogism",
          "category_holdout")


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
    elif q.split in ("reversal", "reversal_strict"):
      (f,) = deps
      assert m["type"].endswith("_rev") and f.subject == v
      assert f.value == m["entity"]
      assert q.split == "reversal" or m["type"] == "prop_rev"
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

  # A forward statement that names the subject again after the property.
  q = _first(ds, "reversal_strict")
  s, p = q.meta["value"], q.meta["entity"]
  again = vocab.capitalize(
      f"{kb.plural(s)} {q.meta['relation']} {p}. {kb.plural(s)} are fine.")
  assert "semantic_reversal_strict_answer_never_after_query" in (
      registry.failures(with_doc(again)))

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


def _oracle_expected(q):
  """The oracle sentence that states question `q`'s fact."""
  m, fill = q.meta, semantic_text.fill
  if q.split in ("reversal", "reversal_strict"):
    f = kb.Fact.from_id(m["depends_on"][0])
    key = f.relation if f.kind == "prop" else f.kind
    return fill(semantic.ORACLE_REVERSAL[key], **semantic_text.fact_slots(f))
  if m["type"] == "isa":
    return fill(semantic.ORACLE_DEDUCTION["isa"],
                **semantic_text.slots("a", m["entity"]),
                **semantic_text.slots("b", m["value"]))
  return fill(semantic.ORACLE_DEDUCTION[m["relation"]],
              **semantic_text.slots("s", m["entity"]), p=m["value"])


def test_oracle_states_every_reversal_and_deduction_and_nothing_untrained():
  ds = _dataset(tiny=False)
  oracle = semantic.oracle_augmentations(ds)
  assert set(oracle) >= {_oracle_expected(q) for q in ds.test
                         if q.split != "rephrase"}
  # Only words the training documents or the oracle's own templates use,
  # so held-out categories get no more than their parent fact entails.
  train_text = "\n".join(d.text for d in ds.train).lower()
  train_words = set(re.findall(r"[a-z]+", train_text))
  world = kb.World.from_facts(semantic.training_facts(ds))
  frame = {w for t in (*semantic.ORACLE_REVERSAL.values(),
                       *semantic.ORACLE_DEDUCTION.values())
           for w in re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", t.lower()))}
  allowed = train_words | {kb.past(v) for v in world.verbs} | frame
  for s in oracle:
    assert set(re.findall(r"[a-z]+", s.lower())) <= allowed, s
  assert len(set(oracle)) == len(oracle)


def _test_template_patterns(world):
  """One regex per test prompt template followed by its answer slot, with
  each slot matching the dataset words it can hold."""
  cats = sorted(world.categories, key=len, reverse=True)
  alt = lambda ws: "(?:" + "|".join(map(re.escape, ws)) + ")"
  props = [w for (_, w) in world.owner]
  slot_re = {"sg": alt(cats), "pl": alt([kb.plural(c) for c in cats]),
             "art": "(?:a|an)"}
  patterns = []
  for table in (semantic_questions.REPHRASE, semantic_questions.REVERSAL,
                semantic_questions.DEDUCTION):
    for templates in table.values():
      for prompt, slot in templates:
        text = checks.normalize(prompt + " {" + slot + "}")
        parts = re.split(r"(\{\w+\})", text)
        out = []
        for part in parts:
          name = part.strip("{}")
          if not part.startswith("{"):
            out.append(re.escape(part))
          elif name == "p":
            out.append(alt(props))
          elif name == "v":
            out.append(alt(world.verbs))
          elif name == "v_ed":
            out.append(alt([kb.past(v) for v in world.verbs]))
          else:
            out.append(slot_re[name.split("_")[-1]])
        patterns.append((prompt, re.compile(r"\b" + "".join(out) + r"\b")))
  return patterns


@pytest.mark.parametrize("tiny", (False, True))
def test_oracle_shares_no_template_and_no_answer_with_the_test(tiny):
  ds = _dataset(tiny=tiny)
  oracle = semantic.oracle_augmentations(ds)
  overlap = checks.test_overlap(oracle, ds.test)
  assert overlap["coincide_with_test_answer"] == 0, overlap["examples"]
  world = kb.World.from_facts(semantic.training_facts(ds))
  patterns = _test_template_patterns(world)
  for s in oracle:
    for prompt, pattern in patterns:
      assert not pattern.search(checks.normalize(s)), (s, prompt)
  # The patterns do find a test prompt with its answer.
  q = _first(ds, "syllogism")
  assert any(p.search(checks.normalize(q.prompt + q.choices[q.answer]))
             for _, p in patterns)


@pytest.mark.parametrize("tiny", (False, True))
def test_reversal_strict_never_names_the_answer_after_the_query(tiny):
  ds = _dataset(tiny=tiny)
  qs = [q for q in ds.test if q.split == "reversal_strict"]
  assert len(qs) == (200 if not tiny else 20)
  docs = [re.findall(r"[a-z]+", d.text.lower()) for d in ds.train]
  for q in qs:
    m = q.meta
    assert m["type"] == "prop_rev"
    stating = [ws for ws in docs if m["entity"] in ws]
    assert stating, q.id
    for ws in stating:
      first = ws.index(m["entity"])
      # The answer never after the queried property; it and every
      # distractor named before it in each of its documents.
      for j, v in enumerate(m["choice_values"]):
        forms = {v, kb.plural(v)}
        assert not forms & set(ws[first:]), (q.id, v)
        assert forms & set(ws[:first]), (q.id, v)
  # Its facts are asked in no other reversal question.
  strict = {q.meta["depends_on"][0] for q in qs}
  assert not strict & {q.meta["depends_on"][0] for q in ds.test
                       if q.split == "reversal"}


@functools.lru_cache(maxsize=None)
def _validity(tiny, seed):
  return registry.validity(_dataset(tiny=tiny, seed=seed))


@pytest.mark.parametrize("tiny,seed", ((False, 0), (True, 0), (True, 1),
                                       (True, 2)))
def test_validity_heuristics_at_chance_unless_forced(tiny, seed):
  v = _validity(tiny, seed)
  assert v["problems"] == []
  assert set(v["chance"]) == set(SPLITS)
  for name, accs in v["heuristics"].items():
    for split, acc in accs.items():
      near = abs(acc - v["chance"][split]) <= validity.TOLERANCE
      assert near or validity.is_forced(v["forced"], name, split), (
          name, split, acc)
      if split in ("reversal_strict", "syllogism", "category_holdout"):
        assert near, (name, split, acc)
  # Forced: only the trained fact itself (rephrase, reversal) and the
  # shortcut reversal_strict removes, which is real on reversal.
  assert {k.split("/")[1] for k in v["forced"]} == {"rephrase", "reversal"}
  assert v["heuristics"]["follows_query"]["reversal"] > (
      v["chance"]["reversal"] + validity.TOLERANCE)
  assert all(reason for reason in v["forced"].values())


def test_augment_examples_are_worked_examples_in_english():
  examples = registry.get("semantic").augment_examples
  assert len(examples) == 2
  lexicon = set(kb.build_world(0)[1].values())
  for statement, restatements in examples:
    assert isinstance(statement, str) and isinstance(restatements, tuple)
    assert restatements and all(isinstance(r, str) for r in restatements)
    for text in (statement, *restatements):
      assert not lexicon & set(re.findall(r"[a-z]+", text.lower())), text
      # Never a test prompt's wording.
      assert not re.search(r"\binclude\b|among the|without exception|sort"
                           r" of|one kind of| are \w+ed by", text.lower())


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


# At least 2 held-out categories: a category_holdout split of 20 questions
# about one category asks its few facts 2-3 times each, and the validity
# check rightly flags the repeated answer (majority_first_word).
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(2, 4),
       holdouts=st.integers(2, 6), docs=st.integers(115, 160))
def test_property_generation(seed, k, holdouts, docs):
  cfg = _cfg(num_choices=k, num_holdout_categories=holdouts,
             num_documents=docs)
  ds = semantic.generate(cfg, seed)
  assert len(ds.train) == docs
  counts = collections.Counter(q.split for q in ds.test)
  assert counts == {s: 20 for s in SPLITS}
  assert all(len(q.choices) == k for q in ds.test)
  assert registry.failures(ds) == {}
