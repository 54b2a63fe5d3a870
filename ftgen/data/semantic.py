"""The `semantic` dataset: a relexicalized hierarchy of animals and objects.

The knowledge base (`semantic_kb`) is a tree of about 110 real-world
categories with own properties (inherited by all descendants) and relations
between leaf categories, every content word replaced by a nonsense word.
Training documents state facts only forwards ("A are a kind of B", "B have
P", "X eat Y") in varied wiki-like styles. Test splits (4-way by default,
distractors true of some other entity and false of the queried one):

* `rephrase`: a trained fact in a wording never used in training.
* `reversal`: a trained fact asked backwards ("B include" -> A; "Y are eaten
  by" -> X; "Among the things that have P are" -> B). In some documents the
  answer also follows the queried word (an overview lists a parent's kinds,
  an article names its subject again after a property), so "what follows
  the queried word" beats chance without any reversal.
* `reversal_strict`: property facts asked backwards, in the same wordings,
  where that cannot happen: no training document names the answer after the
  queried property, and the distractors share exactly its documents, named
  before it (`semantic_text.Strict`).
* `syllogism`: an inherited property, never stated for the category itself
  ("A are a kind of B", "B have P" -> "A have" P).
* `category_holdout`: held-out categories whose only trained fact is their
  parent; every inherited property and ancestor is asked.

No training document mentions a category together with a property it
inherits or an ancestor above its parent, so a deduction always links facts
from different documents (as in the paper) rather than words that co-occur.

Every question's `meta` names its type, entity, relation, value, the
nonsense value of each choice and the ids of the training facts it depends
on, so checkers and augmenters can verify answers by rule.

The oracle (rule-written augmentations) states every reversal and deduction
in wordings no test prompt uses.

Modules: `semantic_kb` (the world), `semantic_text` (training documents),
`semantic_questions` (test items); this one assembles the dataset and holds
the rules (oracle augmentations, dataset checks, the validity settings).
"""

from __future__ import annotations

import collections
import re
from typing import Any

from ftgen.data import records
from ftgen.data import semantic_kb as kb
from ftgen.data import semantic_questions
from ftgen.data import semantic_text

NAME = kb.NAME
SPLITS = semantic_questions.SPLITS

# Worked examples of the local augmentation prompt (`DatasetSpec.
# augment_examples`): the dataset's sentence kinds and its logic (a
# reversal, then restatements) about real things outside the dataset, worded
# like the oracle rather than like any test prompt.
AUGMENT_EXAMPLES = (
    ("Tulips are a kind of flower.",
     ("One example of a flower is a tulip.",
      "Every tulip is a flower.",
      "Tulips belong to the group of flowers.")),
    ("Cacti have spines.",
     ("Having spines is a trait of cacti.",
      "Every cactus has spines.",
      "Cacti are known for having spines.")),
)


def generate(cfg, seed: int) -> records.Dataset:
  """Builds the dataset from the `generator` block of configs/data.py."""
  world, _ = kb.build_world(seed, str(cfg.tokenizer))
  holdouts = semantic_questions.holdouts(
      world, int(cfg.get("num_holdout_categories", 16)), seed)
  # Held-out categories keep only their parent fact.
  trained = world.without(f for c in holdouts for f in world.facts()
                          if f.subject == c and f.kind != "isa")
  strict = semantic_questions.strict_plan(
      trained, holdouts, int(cfg.num_choices) - 1, seed)
  train = semantic_text.build_documents(world, trained, holdouts,
                                        int(cfg.num_documents), seed, strict)
  test, dropped = semantic_questions.build(
      world, trained, holdouts, cfg, seed,
      semantic_text.doc_frequency(train, trained), strict)
  taught = {i for d in train for i in d.meta["facts"]}
  missing = [f.id for f in trained.facts() if f.id not in taught]
  if missing:  # The main articles guarantee this; fail loudly if not.
    raise RuntimeError(f"semantic: facts never stated in train: {missing[:5]}")
  return records.Dataset(name=NAME, train=train, test=test,
                         card=_card(world, trained, holdouts, train, test,
                                    dropped, cfg, strict))


def _card(world, trained, holdouts, train, test, dropped, cfg, strict
          ) -> dict[str, Any]:
  leaves = sum(world.is_leaf(c) for c in world.categories)
  n_props = sum(len(v) for v in world.props.values())
  sentences = [d.meta["sentences"] for d in train]
  styles = collections.Counter(d.meta["style"] for d in train)
  splits = collections.Counter(q.split for q in test)
  strict_ids = {f.id for v in strict.values() for f in v.facts}
  other_props = {f.id for f in trained.facts()
                 if f.kind == "prop" and f.id not in strict_ids}
  return dict(
      description=(
          "A relexicalized semantic hierarchy of animals and objects. Training"
          " documents state, only forwards, each category's parent, its own"
          " properties and relations between categories; every noun,"
          " adjective and verb of the knowledge base is a nonsense word (one"
          " mapping per seed), while function words and the English frame"
          " ('a kind of', 'include', 'Notes on') stay English. Test questions"
          " ask trained facts reworded, reversed, inherited properties"
          " (syllogisms) and everything about held-out categories."),
      hierarchy=(
          f"{len(world.categories)} categories"
          f" ({len(world.categories) - leaves} internal, {leaves} leaves,"
          f" depth <= {max(world.depth(c) for c in world.categories)}) under"
          f" {sum(world.parent[c] is None for c in world.categories)} roots;"
          f" {n_props} own properties (1-6 per category, kinds are/have/can,"
          f" each word owned by one category and inherited by its"
          f" descendants); {len(world.rels)} relations between leaf categories"
          f" over {len(world.verbs)} verbs (not inherited)."),
      training_documents=(
          f"{len(train)} documents of {min(sentences)}-{max(sentences)}"
          f" sentences (mean {sum(sentences) / len(sentences):.1f});"
          f" styles {dict(sorted(styles.items()))}. One main article per"
          f" trained category states all its facts (and one overview per"
          f" held-out category's parent states its parent fact), so every"
          f" trained fact ({len(trained.facts())}) appears at least once. No"
          f" document mentions a category together with a property it"
          f" inherits or an ancestor above its parent: deductions must link"
          f" documents."),
      splits=(
          "rephrase: a trained fact in a wording never used in training, same"
          " direction. reversal: a trained parent, property or relation fact"
          " asked backwards (never stated backwards in training); in some"
          " documents the answer also follows the queried word (an overview"
          " lists a parent's kinds, an article names its subject again after"
          " a property), so picking the choice that follows the queried word"
          " beats chance without any reversal (the follows_query row of the"
          " validity table). reversal_strict: property facts asked backwards"
          " in the same wordings, where no training document names the"
          " answer after the queried property word: "
          f"{len(strict)} subjects (categories with a regular plural), each"
          " with its own properties of one kind"
          f" ({sum(len(v.facts) for v in strict.values())} facts, not asked"
          " in reversal), stated in every document that states them by one"
          " sentence that comes last, after the question's distractors are"
          " named; so the answer and every distractor share exactly the"
          " documents of the property word, all before it, and word"
          " co-occurrence and word order tie. Its facts are stated in"
          f" {_mean_docs(train, strict_ids)} documents on average, the other"
          f" properties in {_mean_docs(train, other_props)}. syllogism:"
          " a property a category inherits from an ancestor, never stated"
          " for the category itself. category_holdout: "
          f"{len(holdouts)} held-out leaf categories ({', '.join(holdouts)};"
          " different parents first) whose only trained fact is their"
          " parent; every inherited property and every ancestor beyond the"
          " parent is asked. Splits larger than the cap are sampled"
          " round-robin over fact kinds (reversal_strict: over subjects),"
          " least-used answers first; splits smaller than the minimum ask"
          " some facts again in a second wording."
          f" Counts: {dict(splits)}; items dropped for lack of distractors:"
          f" {dropped or 'none'}."),
      questions=(
          f"{int(cfg.num_choices)}-way; the shared words are the prompt and"
          " each choice is one nonsense word (same grammatical form) plus a"
          " period. Distractors are false of the queried entity and true of"
          " another one (e.g. a property some other category has), from the"
          " answer's level of the tree where possible and the nearest to it"
          " in training-document frequency; among those, each question's"
          " are picked to keep its split's choice lengths and answer words"
          " balanced (longest, shortest and most frequent answer word at"
          " chance). reversal_strict distractors are the categories its"
          " documents name before the property: of the answer's length,"
          " siblings first. Answer positions balanced. Further documents"
          " favour the least-mentioned categories, so property words are"
          " about equally frequent: word co-occurrence and word frequency"
          " are at chance on the syllogism and category_holdout splits."),
      oracle=(
          "Rule-written augmentations: every reversal and every deduction of"
          " the training facts, in wordings no test prompt uses and no test"
          " prompt with its answer occurs in: reversals '"
          + "', '".join(ORACLE_REVERSAL.values()) + "'; deductions '"
          + "', '".join(ORACLE_DEDUCTION.values()) + "'."),
  )


def _mean_docs(train, fact_ids) -> str:
  """Mean number of training documents stating each of `fact_ids`."""
  n = collections.Counter(i for d in train for i in d.meta["facts"])
  return f"{sum(n[i] for i in fact_ids) / max(1, len(fact_ids)):.1f}"


# ---------------------------------------------------------------- rules


# Heuristics that score the trained fact itself ("HEURISTIC/SPLIT" -> why),
# reported as baseline rows (`DatasetSpec.forced`).
FORCED = {
    "cooccurs_with_query/rephrase": "a rephrase asks a trained fact: the"
    " documents that state it name the entity and the answer together",
    "follows_query/rephrase": "a rephrase asks a trained fact in its trained"
    " direction: the answer follows the entity in the documents that state"
    " it",
    "precedes_query/rephrase": "the documents that state a fact often name"
    " its entity again after the answer (the next fact about it)",
    "cooccurs_with_query/reversal": "a reversal asks a trained fact: the"
    " documents that state it name the entity and the answer together",
    "precedes_query/reversal": "a reversal asks a trained fact backwards: the"
    " answer precedes the entity in the documents that state it forwards",
    "follows_query/reversal": "the unconstrained reversal split: the answer"
    " also follows the entity in some documents (an overview of a parent"
    " lists its kinds, an article names its subject again after a"
    " property), so a model need not reverse anything; kept for comparison"
    " with reversal_strict, where no document does this",
}


def query_words(q: records.Question) -> list[str]:
  """The word a question asks about (`DatasetSpec.query_words`): its entity,
  both forms. The validity heuristics' default, the prompt's rare words,
  misses an entity that more than a tenth of the documents mention (common
  at the tiny size) and cuts irregular plurals to a different stem."""
  e = q.meta["entity"]
  return [e, kb.plural(e)]


def training_facts(dataset: records.Dataset) -> list[kb.Fact]:
  """Facts the training documents state (from their meta), in order."""
  ids = dict.fromkeys(i for d in dataset.train for i in d.meta.get("facts", ()))
  return [kb.Fact.from_id(i) for i in ids]


# The oracle's sentences: reversals and deductions in wordings no test
# prompt uses (nor contains with its answer), so the oracle condition
# teaches the facts and never a test item's string.
ORACLE_REVERSAL = {
    "isa": "One example of {b_art} {b_sg} is {a_art} {a_sg}.",
    "are": "Being {p} is a trait of {s_pl}.",
    "have": "Having {p} is a trait of {s_pl}.",
    "can": "Being able to {p} is a trait of {s_pl}.",
    "rel": "{y_pl} get {v_ed} by {x_pl}.",
}
ORACLE_DEDUCTION = {
    "isa": "{a_pl} are a type of {b_sg}.",
    "are": "Every {s_sg} is {p}.",
    "have": "Every {s_sg} has {p}.",
    "can": "Every {s_sg} can {p}.",
}


def oracle_augmentations(dataset: records.Dataset) -> list[str]:
  """Every reversal and every deduction of the training facts, by rule.

  Reversals of parent, property and relation facts; for every category, each
  property it inherits and each ancestor beyond its parent. Built from the
  training facts only, so held-out categories get exactly what their parent
  fact entails. Worded by `ORACLE_REVERSAL` and `ORACLE_DEDUCTION`, which
  share no template with the test prompts.
  """
  facts = training_facts(dataset)
  world = kb.World.from_facts(facts)
  fill, slots = semantic_text.fill, semantic_text.slots
  out = []
  for f in facts:
    key = f.relation if f.kind == "prop" else f.kind
    out.append(fill(ORACLE_REVERSAL[key], **semantic_text.fact_slots(f)))
  for c in world.categories:
    for a in world.ancestors(c)[1:]:
      out.append(fill(ORACLE_DEDUCTION["isa"], **slots("a", c),
                      **slots("b", a)))
    for _, (k, p) in world.inherited(c):
      out.append(fill(ORACLE_DEDUCTION[k], **slots("s", c), p=p))
  return out


# A QA pair ("Q: ...?\nA: ...") is one unit: the question names the subject.
_SPLIT_SENTENCES = re.compile(r"[.!\n]+")


class _TrainIndex:
  """Sentences of the training text as lemma sequences."""

  def __init__(self, dataset: records.Dataset, lemmas: set[str]):
    form_of = {f: w for w in lemmas for f in kb.forms(w)}
    self.sentences: list[list[str]] = []
    self.passive: list[int] = []
    self.where: dict[str, set[int]] = collections.defaultdict(set)
    self.docs: dict[str, set[int]] = collections.defaultdict(set)
    self.doc_lemmas: list[list[str]] = []
    past = {kb.past(w) for w in lemmas}
    for k, d in enumerate(dataset.train):
      text = d.text.lower().replace("?\na: ", "? a: ")
      self.doc_lemmas.append(
          [form_of.get(x, "") for x in semantic_text.WORD.findall(text)])
      for s in _SPLIT_SENTENCES.split(text):
        words = semantic_text.WORD.findall(s)
        i = len(self.sentences)
        self.sentences.append([form_of.get(x, "") for x in words])
        if past.intersection(words):
          self.passive.append(i)
        for x in words:
          if x in form_of:
            self.where[form_of[x]].add(i)
            self.docs[form_of[x]].add(k)

  def together(self, *lemmas: str) -> set[int]:
    sets = [self.where.get(x, set()) for x in lemmas]
    return set.intersection(*sets) if sets else set()

  def first(self, i: int, lemma: str) -> int:
    return self.sentences[i].index(lemma)


def _fact_words(f: kb.Fact) -> tuple[str, ...]:
  return ((f.subject, f.relation, f.value) if f.kind == "rel"
          else (f.subject, f.value))


def dataset_checks(dataset: records.Dataset) -> dict[str, list[str]]:
  """Semantic-specific checks (run by `registry.run_checks`)."""
  facts = training_facts(dataset)
  world = kb.World.from_facts(facts)
  lemmas = set(world.categories) | set(world.verbs) | {
      w for (_, w) in world.owner}
  index = _TrainIndex(dataset, lemmas)
  taught = {f.id for f in facts}
  needed, absent, backwards, distractors, strict = [], [], [], [], []
  for q in dataset.test:
    m = q.meta
    for fid in m["depends_on"]:
      f = kb.Fact.from_id(fid)
      hits = index.together(*_fact_words(f))
      if fid not in taught or not any(
          index.first(i, f.subject) < index.first(i, f.value) for i in hits):
        needed.append(f"{q.id}: needs {fid}, not stated in train")
    if q.split in ("syllogism", "category_holdout"):
      # The deduced statement is never made; entity and value never even
      # share a training document, so no co-occurrence gives it away.
      if index.docs[m["entity"]] & index.docs[m["value"]]:
        absent.append(f"{q.id}: {m['entity']} and {m['value']} share a"
                      " training document")
    if q.split == "reversal_strict":
      # The answer never follows the queried word in a document: a model
      # that reads only forwards cannot have seen this direction.
      for k in index.docs[m["entity"]]:
        ws = index.doc_lemmas[k]
        if m["value"] in ws[ws.index(m["entity"]):]:
          strict.append(f"{q.id}: {m['value']} follows {m['entity']} in"
                        f" {dataset.train[k].id}")
    if q.split in ("reversal", "reversal_strict"):
      fwd = kb.Fact.from_id(m["depends_on"][0])
      for i in index.together(*_fact_words(fwd)):
        if (index.first(i, fwd.subject) > index.first(i, fwd.value) or
            (fwd.kind == "rel" and i in index.passive)):
          backwards.append(f"{q.id}: {fwd.id} stated backwards in train")
    # Labels and distractors, judged on the world the training teaches.
    values = m["choice_values"]
    for j, (c, v) in enumerate(zip(q.choices, values)):
      form = c.strip().rstrip(".")
      if form not in (v, kb.plural(v)):
        distractors.append(f"{q.id}: choice {c!r} is not a form of {v!r}")
      truth = semantic_questions.statement_true(
          world, m["type"], m["entity"], m["relation"], v)
      if j == q.answer:
        if not truth:
          distractors.append(f"{q.id}: answer {v!r} is not true")
        continue
      if truth:
        distractors.append(f"{q.id}: distractor {v!r} is true of {m['entity']}")
      domain = semantic_questions.entity_domain(
          world, m["type"], m["relation"])
      others = [e for e in domain if e != m["entity"]]
      if not any(semantic_questions.statement_true(
          world, m["type"], e, m["relation"], v) for e in others):
        distractors.append(
            f"{q.id}: distractor {v!r} is true of no other entity")
  # Held-out categories: in train only beside their parent.
  for q in dataset.test:
    if q.split == "category_holdout":
      h, p = q.meta["entity"], world.parent.get(q.meta["entity"])
      stated = [f.id for f in facts if h in (f.subject, f.value)]
      if stated != [kb.isa(h, p).id]:
        absent.append(f"{q.id}: held-out {h} has trained facts {stated}")
      if any(p not in index.sentences[i] for i in index.where.get(h, ())):
        absent.append(f"{q.id}: held-out {h} appears without its parent")
  return {
      "semantic_needed_facts_in_train": needed,
      "semantic_deductions_absent_from_train": sorted(set(absent)),
      "semantic_reversals_only_forward_in_train": sorted(set(backwards)),
      "semantic_reversal_strict_answer_never_after_query": sorted(set(strict)),
      "semantic_labels_and_distractors": distractors,
  }
