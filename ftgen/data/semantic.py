"""The `semantic` dataset: a relexicalized hierarchy of animals and objects.

The knowledge base (`semantic_kb`) is a tree of about 110 real-world
categories with own properties (inherited by all descendants) and relations
between leaf categories, every content word replaced by a nonsense word.
Training documents state facts only forwards ("A are a kind of B", "B have
P", "X eat Y") in varied wiki-like styles. Test splits (4-way by default,
distractors true of some other entity and false of the queried one):

* `rephrase`: a trained fact in a wording never used in training.
* `reversal`: a trained fact asked backwards ("B include" -> A; "Y are eaten
  by" -> X; "Among the things that have P are" -> B).
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
"""

from __future__ import annotations

import collections
import math
import re
from typing import Any, Callable

from ftgen.data import records
from ftgen.data import rng
from ftgen.data import semantic_kb as kb
from ftgen.data import vocab

NAME = "semantic"
SPLITS = ("rephrase", "reversal", "syllogism", "category_holdout")
STYLES = ("encyclopedic", "field_notes", "qa", "list", "overview", "relations",
          "glossary")
_STYLE_WEIGHTS = (0.25, 0.15, 0.15, 0.15, 0.1, 0.1, 0.1)
MIN_SENTENCES, MAX_SENTENCES = 4, 20

# ---------------------------------------------------------------- templates
# Slots: {a_sg} {a_pl} {a_art} for a category slot "a" (likewise b, s, x, y),
# {p} a property word, {v} a relation verb, {v_ed} its participle.

TRAIN_ISA = (
    "{a_pl} are a kind of {b_sg}.",
    "{a_art} {a_sg} is a kind of {b_sg}.",
    "{a_pl} are a type of {b_sg}.",
    "Every {a_sg} is {b_art} {b_sg}.",
    "{a_pl} are {b_pl}.",
    "The {a_sg} is a type of {b_sg}.",
    "{a_pl} belong to the group of {b_pl}.",
)
TRAIN_PROP = {
    "are": ("{s_pl} are {p}.", "All {s_pl} are {p}.", "Every {s_sg} is {p}.",
            "{s_art} {s_sg} is always {p}.", "{s_pl} are known for being {p}."),
    "have": ("{s_pl} have {p}.", "All {s_pl} have {p}.",
             "Every {s_sg} has {p}.", "{s_art} {s_sg} always has {p}.",
             "{s_pl} are known for having {p}."),
    "can": ("{s_pl} can {p}.", "All {s_pl} can {p}.", "Every {s_sg} can {p}.",
            "{s_pl} are able to {p}.", "{s_pl} are known to {p}."),
}
TRAIN_REL = (
    "{x_pl} {v} {y_pl}.",
    "All {x_pl} {v} {y_pl}.",
    "It is known that {x_pl} {v} {y_pl}.",
    "{x_pl} regularly {v} {y_pl}.",
    "{x_art} {x_sg} will {v} {y_pl}.",
)
PRONOUN_PROP = {"are": "They are {p}.", "have": "They have {p}.",
                "can": "They can {p}."}
PRONOUN_REL = "They {v} {y_pl}."
QA_QUESTION = {
    "isa": "Q: What kind of thing is {a_art} {a_sg}?",
    "are": "Q: What are {s_pl} like?",
    "have": "Q: What do {s_pl} have?",
    "can": "Q: What can {s_pl} do?",
    "rel": "Q: What do {x_pl} {v}?",
}
HEADERS = {
    "encyclopedic": "{f_sg_cap}",
    "field_notes": "Notes on {f_pl}, entry {n}.",
    "qa": "Questions and answers about {f_pl}.",
    "list": "Facts about {f_pl}:",
    "overview": "An overview of {f_pl} and their kinds.",
    "relations": "{f_pl_cap} and their neighbours.",
    "glossary": "{f_sg} (noun, plural {f_pl})",
}

# Test prompts: (prompt, answer slot). Rephrase wordings never occur in
# training; reversal wordings ask the trained facts backwards; deduction
# wordings ask facts that follow from training but are never stated.
REPHRASE = {
    "isa": (("Scientists classify {a_pl} as a sort of", "b_sg"),
            ("In most classifications, {a_art} {a_sg} counts as a sort of",
             "b_sg")),
    "are": (("Without exception, {s_pl} are", "p"),
            ("One trait that {s_pl} share is being", "p")),
    "have": (("Without exception, {s_pl} have", "p"),
             ("One thing that {s_pl} share is having", "p")),
    "can": (("Without exception, {s_pl} can", "p"),
            ("One thing that {s_pl} share is the ability to", "p")),
    "rel": (("Observers report that {x_pl} tend to {v}", "y_pl"),
            ("Without exception, {x_pl} {v}", "y_pl")),
}
REVERSAL = {
    "isa": (("{b_pl} include", "a_pl"), ("One kind of {b_sg} is the", "a_sg")),
    "are": (("Among the things that are {p} are", "s_pl"),
            ("Things that are {p} include", "s_pl")),
    "have": (("Among the things that have {p} are", "s_pl"),
             ("Things that have {p} include", "s_pl")),
    "can": (("Among the things that can {p} are", "s_pl"),
            ("Things that can {p} include", "s_pl")),
    "rel": (("{y_pl} are {v_ed} by", "x_pl"),
            ("Among the things that {v} {y_pl} are", "x_pl")),
}
DEDUCTION = {
    "isa": (("{a_pl} are a kind of", "b_sg"),
            ("{a_art} {a_sg} is a kind of", "b_sg")),
    "are": (("{s_pl} are", "p"), ("{s_art} {s_sg} is", "p")),
    "have": (("{s_pl} have", "p"), ("{s_art} {s_sg} has", "p")),
    "can": (("{s_pl} can", "p"), ("{s_art} {s_sg} can", "p")),
}


def _slots(name: str, c: str) -> dict[str, str]:
  return {f"{name}_sg": c, f"{name}_pl": kb.plural(c),
          f"{name}_art": kb.article(c)}


def _fill(template: str, **kw) -> str:
  return vocab.capitalize(template.format(**kw))


def fact_slots(f: kb.Fact) -> dict[str, str]:
  """Template slots of a fact (subject "a"/"s"/"x", value "b"/"p"/"y")."""
  if f.kind == "isa":
    return {**_slots("a", f.subject), **_slots("b", f.value)}
  if f.kind == "prop":
    return {**_slots("s", f.subject), "p": f.value}
  return {**_slots("x", f.subject), **_slots("y", f.value), "v": f.relation,
          "v_ed": kb.past(f.relation)}


def _render(f: kb.Fact, gen) -> str:
  """One training sentence stating `f` forwards."""
  if f.kind == "isa":
    templates = TRAIN_ISA
  elif f.kind == "prop":
    templates = TRAIN_PROP[f.relation]
  else:
    templates = TRAIN_REL
  return _fill(templates[gen.integers(len(templates))], **fact_slots(f))


def _join(words: list[str]) -> str:
  if len(words) == 1:
    return words[0]
  return ", ".join(words[:-1]) + " and " + words[-1]


# ---------------------------------------------------------------- documents


def _sentences(facts: list[kb.Fact], style: str, focus: str, gen,
               merge: bool = True) -> list[tuple[str, list[str]]]:
  """Renders facts in a style; groups same-kind properties sometimes."""
  out: list[tuple[str, list[str]]] = []
  i = 0
  mentioned = False
  while i < len(facts):
    f = facts[i]
    group = [f]
    if merge and f.kind == "prop" and style in ("encyclopedic", "overview",
                                                "glossary"):
      j = i + 1
      while (j < len(facts) and facts[j].kind == "prop" and
             facts[j].subject == f.subject and facts[j].relation == f.relation
             and len(group) < 3):
        group.append(facts[j])
        j += 1
      if len(group) > 1 and gen.random() < 0.5:
        group = group[:1]
    i += len(group)
    ids = [g.id for g in group]
    if len(group) > 1:
      text = _fill("{s_pl} " + f.relation + " {p}.", **_slots("s", f.subject),
                   p=_join([g.value for g in group]))
    elif (style == "field_notes" and mentioned and f.subject == focus and
          f.kind != "isa" and gen.random() < 0.5):
      text = (PRONOUN_PROP[f.relation].format(p=f.value) if f.kind == "prop"
              else PRONOUN_REL.format(**fact_slots(f)))
    else:
      text = _render(f, gen)
    if f.subject == focus:
      mentioned = True
    if style == "qa":
      key = f.kind if f.kind != "prop" else f.relation
      text = _fill(QA_QUESTION[key], **fact_slots(f)) + "\nA: " + text
    elif style == "list":
      text = "- " + text
    out.append((text, ids))
  return out


def _doc_text(style: str, focus: str, sentences: list[str], gen) -> str:
  header = HEADERS[style].format(
      f_sg=focus, f_pl=kb.plural(focus), f_sg_cap=vocab.capitalize(focus),
      f_pl_cap=vocab.capitalize(kb.plural(focus)), n=int(gen.integers(1, 60)))
  if style in ("qa", "list"):
    return header + "\n" + "\n".join(sentences)
  if style == "encyclopedic" and len(sentences) > 6:
    cut = int(gen.integers(3, len(sentences) - 2))
    return (header + "\n\n" + " ".join(sentences[:cut]) + "\n\n" +
            " ".join(sentences[cut:]))
  sep = "\n\n" if style in ("encyclopedic", "glossary") else "\n"
  return header + sep + " ".join(sentences)


class _Facts:
  """Trained facts indexed for building documents."""

  def __init__(self, world: kb.World):
    self.world = world
    self.by_subject: dict[str, list[kb.Fact]] = collections.defaultdict(list)
    self.rel_as_object: dict[str, list[kb.Fact]] = collections.defaultdict(list)
    for f in world.facts():
      self.by_subject[f.subject].append(f)
      if f.kind == "rel":
        self.rel_as_object[f.value].append(f)

  def own(self, c: str) -> list[kb.Fact]:
    return list(self.by_subject[c])

  def props(self, c: str) -> list[kb.Fact]:
    return [f for f in self.by_subject[c] if f.kind == "prop"]


def _pools(facts: _Facts, focus: str, style: str, gen
           ) -> tuple[list[kb.Fact], list[kb.Fact]]:
  """(primary, secondary) facts for a document about `focus`, before the
  co-mention filter (`_Mentions`) drops what a document may not hold."""
  w = facts.world
  parent = w.parent[focus]
  siblings = [c for c in w.children[parent] if c != focus] if parent else []
  own = facts.own(focus)
  isa_first = [f for f in own if f.kind == "isa"]
  primary = isa_first + _shuffle([f for f in own if f.kind != "isa"], gen)
  kids = [[kb.isa(c, focus)] + facts.props(c) for c in w.children[focus]]
  if style == "overview":  # The kinds of `focus`, not its own properties.
    return [f for g in _shuffle(kids, gen) for f in g], primary
  groups = [[kb.isa(s, parent)] + facts.props(s) for s in siblings]
  groups += [[f] for f in facts.rel_as_object[focus]] + kids
  if parent is not None:
    groups.append(facts.own(parent))
  secondary = [f for g in _shuffle(groups, gen) for f in g]
  if style == "relations":  # Who relates to whom first, then the rest.
    rels = [f for f in own if f.kind == "rel"] + facts.rel_as_object[focus]
    neighbours = [f.value if f.subject == focus else f.subject for f in rels]
    more = [g for n in neighbours for g in facts.own(n) if g.kind == "rel"]
    return (_shuffle(rels, gen) + isa_first,
            _shuffle(list(dict.fromkeys(more)), gen) + primary + secondary)
  return primary, secondary


class _Mentions:
  """What one document mentions; refuses facts that would put a category
  beside a property it inherits or an ancestor above its parent.

  So a deduction ("dogs have fur" from "dogs are canines", "canines are
  mammals", "mammals have fur") always links facts from different documents
  and never rests on words that merely co-occur in one.
  """

  def __init__(self, world: kb.World, focus: str):
    self.world = world
    self.cats: set[str] = set()
    self.owners: set[str] = set()  # Owners of the mentioned properties.
    self.up: set[str] = set()  # Ancestors of the mentioned categories.
    self.far: set[str] = set()  # Ancestors above their parents.
    self._add({focus}, set())

  def _add(self, cats: set[str], owners: set[str]):
    self.cats |= cats
    self.owners |= owners
    for c in cats:
      self.up.update(self.world.ancestors(c))
      self.far.update(self.world.ancestors(c)[1:])

  def admit(self, f: kb.Fact) -> bool:
    cats = {f.subject} if f.kind == "prop" else {f.subject, f.value}
    owners = ({self.world.owner[(f.relation, f.value)][0]}
              if f.kind == "prop" else set())
    all_cats, all_owners = self.cats | cats, self.owners | owners
    for c in cats:
      up = self.world.ancestors(c)
      if (c in self.far or all_cats.intersection(up[1:]) or
          all_owners.intersection(up)):
        return False
    if owners & self.up:
      return False
    self._add(cats, owners)
    return True


def _shuffle(items: list, gen) -> list:
  order = gen.permutation(len(items))
  return [items[i] for i in order]


def _documents(world: kb.World, trained: kb.World, holdouts: list[str],
               num_documents: int, seed: int) -> list[records.Document]:
  facts = _Facts(trained)
  focuses = [c for c in world.categories if c not in holdouts]
  # Main documents: one article per trained category (all its own facts)
  # and an overview of each held-out category's parent (its parent fact).
  plans = [("encyclopedic", c, True) for c in focuses]
  plans += [("overview", p, True)
            for p in dict.fromkeys(world.parent[h] for h in holdouts)]
  if num_documents < len(plans):
    raise ValueError(
        f"semantic: num_documents must be >= {len(plans)} (one main article"
        f" per trained category and held-out parent), got {num_documents}")
  gen = rng.stream(seed, f"{NAME}/documents")
  everything = trained.facts()

  def make(style: str, focus: str, main: bool) -> tuple[str, dict]:
    primary, secondary = _pools(facts, focus, style, gen)
    mentions = _Mentions(trained, focus)
    chosen = [f for f in dict.fromkeys(primary + secondary)
              if mentions.admit(f)]
    rendered = _sentences(chosen, style, focus, gen)
    if len(rendered) < MIN_SENTENCES:  # Thin pool: one fact per sentence.
      rendered = _sentences(chosen, style, focus, gen, merge=False)
    if len(rendered) < MIN_SENTENCES:  # Still thin: borrow unrelated facts.
      for f in _shuffle(everything, gen):
        if len(chosen) >= MIN_SENTENCES:
          break
        if f not in chosen and mentions.admit(f):
          chosen.append(f)
      rendered = _sentences(chosen, style, focus, gen, merge=False)
    if main:
      must = {f.id for f in primary if f.kind == "isa" or style != "overview"}
      n = 1 + max([i for i, (_, ids) in enumerate(rendered)
                   if must.intersection(ids)], default=0)
      n = max(MIN_SENTENCES, n)
    else:
      n = int(gen.integers(MIN_SENTENCES, MAX_SENTENCES + 1))
    rendered = rendered[:n]
    if not MIN_SENTENCES <= len(rendered) <= MAX_SENTENCES:
      raise RuntimeError(
          f"semantic: document about {focus!r} has {len(rendered)} sentences")
    text = _doc_text(style, focus, [t for t, _ in rendered], gen)
    return text, dict(style=style, focus=focus, sentences=len(rendered),
                      facts=[i for _, ids in rendered for i in ids])

  docs = [make(*plan) for plan in plans]
  # Further documents favour categories whose own properties have been
  # mentioned least: a root's properties can share no document with its
  # many descendants, and would otherwise be rarer than the rest (a
  # frequency cue for syllogism answers).
  seen = collections.Counter(
      i for _, meta in docs for i in meta["facts"] if i.startswith("prop:"))
  own = {c: [f.id for f in facts.props(c)] for c in focuses}
  internal = [c for c in focuses if not world.is_leaf(c)]
  related = [c for c in focuses if facts.rel_as_object[c] or any(
      f.kind == "rel" for f in facts.own(c))]
  for _ in range(num_documents - len(plans)):
    style = STYLES[gen.choice(len(STYLES), p=_STYLE_WEIGHTS)]
    pool = {"overview": internal, "relations": related}.get(style, focuses)
    need = [sum(seen[i] for i in own[c]) / len(own[c]) for c in pool]
    lowest = sorted(range(len(pool)), key=lambda j: (need[j], j))[:5]
    focus = pool[lowest[gen.integers(len(lowest))]]
    docs.append(make(style, focus, False))
    seen.update(i for i in docs[-1][1]["facts"] if i.startswith("prop:"))
  order = rng.stream(seed, f"{NAME}/document-order").permutation(len(docs))
  return [records.Document(id=f"{NAME}/doc{k:05d}", text=docs[i][0],
                           meta=docs[i][1]) for k, i in enumerate(order)]


# ---------------------------------------------------------------- questions


def statement_true(world: kb.World, qtype: str, entity: str, relation: str,
                   value: str) -> bool:
  """Whether "prompt about `entity`" + `value` is true in `world`."""
  if qtype == "isa":
    return value in world.ancestors(entity)
  if qtype == "prop":
    return world.holds_prop(entity, relation, value)
  if qtype == "rel":
    return world.holds_rel(entity, relation, value)
  if qtype == "isa_rev":
    return entity in world.ancestors(value)
  if qtype == "prop_rev":
    return world.holds_prop(value, relation, entity)
  if qtype == "rel_rev":
    return world.holds_rel(value, relation, entity)
  raise ValueError(f"semantic: unknown question type {qtype!r}")


def entity_domain(world: kb.World, qtype: str, relation: str) -> list[str]:
  """Everything a question of this type can be about."""
  if qtype == "prop_rev":
    return list(dict.fromkeys(w for (k, w) in world.owner if k == relation))
  return world.categories


def _candidates(world: kb.World, it: dict) -> list[str]:
  """Distractors false of the entity and true of some other entity."""
  t, e, r, ans = it["type"], it["entity"], it["relation"], it["value"]
  w = world
  if t == "isa":
    pool = [c for c in w.categories if not w.is_leaf(c)]
  elif t == "prop":
    pool = [p for (k, p) in w.owner if k == r]
  elif t == "rel":
    pool = list(dict.fromkeys(y for _, v, y in w.rels if v == r))
  elif t == "isa_rev":
    pool = [c for c in w.categories if w.parent[c] is not None]
  elif t == "prop_rev":
    owner = w.owner[(r, e)][0]
    pool = [c for c in w.categories if c not in w.ancestors(owner) and any(
        k == r and p != e for _, (k, p) in w.inherited(c) + [
            (c, kp) for kp in w.props[c]])]
  else:  # rel_rev
    pool = list(dict.fromkeys(x for x, v, _ in w.rels if v == r))
  return [c for c in pool if c != ans and c != e and
          not statement_true(w, t, e, r, c)]


def _hardness(world: kb.World, it: dict) -> Callable[[str], tuple]:
  """Sort key: distractors closest to the answer (or entity) come first."""
  w, t, ans = world, it["type"], it["value"]
  if t == "prop":
    home = w.owner[(it["relation"], ans)][0]
    return lambda c: (abs(w.depth(w.owner[(it["relation"], c)][0]) -
                          w.depth(home)),
                      w.distance(w.owner[(it["relation"], c)][0], it["entity"]))
  if t in ("isa", "isa_rev", "prop_rev"):
    return lambda c: (abs(w.depth(c) - w.depth(ans)), w.distance(c, ans))
  return lambda c: (0, w.distance(c, ans))


def _items(world: kb.World, trained: kb.World, holdouts: list[str]
           ) -> dict[str, list[dict]]:
  """Every question each split could ask, before sampling."""
  def item(t, e, r, v, deps, key):
    return dict(type=t, entity=e, relation=r, value=v,
                depends_on=[d.id for d in deps], key=key)

  def chain(c, top):  # isa facts from c up to its ancestor `top`.
    out, x = [], c
    while x != top:
      out.append(kb.isa(x, world.parent[x]))
      x = world.parent[x]
    return out

  items = {s: [] for s in SPLITS}
  for f in trained.facts():
    if f.kind == "isa":
      items["rephrase"].append(
          item("isa", f.subject, "isa", f.value, [f], "isa"))
      items["reversal"].append(
          item("isa_rev", f.value, "isa", f.subject, [f], "isa"))
    elif f.kind == "prop":
      items["rephrase"].append(
          item("prop", f.subject, f.relation, f.value, [f], f.relation))
      items["reversal"].append(
          item("prop_rev", f.value, f.relation, f.subject, [f], f.relation))
    else:
      items["rephrase"].append(
          item("rel", f.subject, f.relation, f.value, [f], "rel"))
      items["reversal"].append(
          item("rel_rev", f.value, f.relation, f.subject, [f], "rel"))
  for c in world.categories:
    split = "category_holdout" if c in holdouts else "syllogism"
    for owner, (k, p) in world.inherited(c):
      # Sampled round-robin over owners: a root's properties are inherited
      # by every category and would crowd out the rest.
      items[split].append(item("prop", c, k, p, chain(c, owner) +
                               [kb.prop(owner, k, p)], owner))
    if c in holdouts:
      for a in world.ancestors(c)[1:]:
        items[split].append(item("isa", c, "isa", a, chain(c, a), "isa"))
  return items


def _select(items: list[dict], lo: int, hi: int, seed: int, split: str
            ) -> list[tuple[dict, int]]:
  """(item, variant): round-robin over item keys up to `hi`; below `lo`,
  items are asked again in another wording (variant 1, 2, ...)."""
  by_key: dict[str, list[dict]] = {}
  for it in rng.shuffled(items, seed, f"{NAME}/{split}/select"):
    by_key.setdefault(it["key"], []).append(it)
  order = []
  queues = [collections.deque(v) for v in by_key.values()]
  while any(queues):
    for q in queues:
      if q:
        order.append(q.popleft())
  seen = collections.Counter()
  for it in order:  # Wordings alternate within each kind of item.
    it["base_template"] = seen[it["key"]]
    seen[it["key"]] += 1
  chosen = [(it, 0) for it in order[:hi]]
  variant = 1
  while len(chosen) < lo:
    if not order:
      raise ValueError(f"semantic: split {split!r} has no items")
    again = rng.shuffled(order, seed, f"{NAME}/{split}/variant{variant}")
    chosen += [(it, variant) for it in again[:lo - len(chosen)]]
    variant += 1
  return chosen


def _render_question(world: kb.World, split: str, it: dict, variant: int,
                     k: int, freq: dict[str, int], gen
                     ) -> tuple[str, str, list[str], dict] | None:
  t = it["type"]
  table = {"rephrase": REPHRASE, "reversal": REVERSAL}.get(split, DEDUCTION)
  key = ("isa" if t.startswith("isa") else "rel" if t.startswith("rel")
         else it["relation"])
  template = (it["base_template"] + variant) % len(table[key])
  prompt_t, slot = table[key][template]
  e, r, v = it["entity"], it["relation"], it["value"]
  if t == "isa":
    slots = {**_slots("a", e), **_slots("b", v)}
  elif t == "isa_rev":
    slots = {**_slots("b", e), **_slots("a", v)}
  elif t == "prop":
    slots = {**_slots("s", e), "p": v}
  elif t == "prop_rev":
    slots = {**_slots("s", v), "p": e}
  elif t == "rel":
    slots = {**_slots("x", e), **_slots("y", v), "v": r, "v_ed": kb.past(r)}
  else:
    slots = {**_slots("y", e), **_slots("x", v), "v": r, "v_ed": kb.past(r)}
  cands = _candidates(world, it)
  if len(cands) < k - 1:
    return None
  cands = _shuffle(cands, gen)
  hard = _hardness(world, it)
  # Among equally close ones, prefer the answer's length: no length cue.
  size = lambda c: abs(len(kb.plural(c)) - len(kb.plural(v)))
  keys = {c: hard(c) + (size(c),) for c in cands}
  cands.sort(key=keys.__getitem__)
  # Same level as the answer where there are enough, else the closest.
  level = [c for c in cands if keys[c][0] == keys[cands[0]][0]]
  pool = level if len(level) >= k - 1 else cands[:max(2 * (k - 1), k + 2)]
  # Then the nearest in training frequency (documents mentioning the word),
  # so that neither the most nor the least frequent choice is a cue.
  near = lambda c: abs(math.log((1 + freq.get(c, 0)) / (1 + freq.get(v, 0))))
  pool = sorted(pool, key=near)[:max(2 * (k - 1), k + 1)]
  picks = gen.choice(len(pool), size=k - 1, replace=False)
  distractors = [pool[i] for i in picks]
  form = slot.split("_")[-1] if "_" in slot else "word"

  def choice(c):
    return " " + (kb.plural(c) if form == "pl" else c) + "."

  prompt = _fill(prompt_t, **slots)
  meta = dict(type=t, entity=e, relation=r, value=v,
              depends_on=it["depends_on"], template=template,
              variant=variant)
  return prompt, choice(v), [choice(c) for c in distractors], dict(
      meta, distractors=distractors)


def _questions(world: kb.World, trained: kb.World, holdouts: list[str], cfg,
               seed: int, freq: dict[str, int]
               ) -> tuple[list[records.Question], dict[str, int]]:
  k = int(cfg.num_choices)
  lo = int(cfg.min_questions_per_split)
  hi = int(cfg.get("max_questions_per_split", max(lo, 300)))
  if k < 2 or lo < 1 or hi < lo:
    raise ValueError(
        f"semantic: need num_choices >= 2 and 1 <= min_questions_per_split <="
        f" max_questions_per_split, got {k}, {lo}, {hi}")
  # Distractors are judged on what training teaches: the held-out
  # categories' own properties exist nowhere else.
  world = trained
  items = _items(world, trained, holdouts)
  questions, dropped = [], {}
  for split in SPLITS:
    gen = rng.stream(seed, f"{NAME}/{split}/distractors")
    rendered = []
    for it, variant in _select(items[split], lo, hi, seed, split):
      q = _render_question(world, split, it, variant, k, freq, gen)
      if q is None:
        dropped[split] = dropped.get(split, 0) + 1
      else:
        rendered.append(q)
    if len(rendered) < lo:
      raise ValueError(
          f"semantic: split {split!r} has only {len(rendered)} questions with"
          f" {k - 1} valid distractors; lower num_choices or"
          f" min_questions_per_split")
    positions = rng.shuffled([i % k for i in range(len(rendered))], seed,
                             f"{NAME}/{split}/answers")
    for i, ((prompt, right, wrong, meta), pos) in enumerate(
        zip(rendered, positions)):
      choices = list(wrong)
      choices.insert(pos, right)
      values = list(meta.pop("distractors"))
      values.insert(pos, meta["value"])
      questions.append(records.Question(
          id=f"{NAME}/{split}/{i:04d}", split=split, prompt=prompt,
          choices=tuple(choices), answer=pos,
          meta=dict(meta, choice_values=values,
                    holdout=meta["entity"] in holdouts)))
  return questions, dropped


# ---------------------------------------------------------------- generate


def _doc_frequency(train: list[records.Document], world: kb.World
                   ) -> dict[str, int]:
  """Lemma -> number of training documents that mention it (any form)."""
  lemmas = set(world.categories) | {w for (_, w) in world.owner}
  form_of = {f: w for w in lemmas for f in kb.forms(w)}
  freq = collections.Counter()
  for d in train:
    freq.update({form_of[x] for x in _WORD.findall(d.text.lower())
                 if x in form_of})
  return dict(freq)


def _holdouts(world: kb.World, n: int, seed: int) -> list[str]:
  in_rel = {c for x, _, y in world.rels for c in (x, y)}
  eligible = [c for c in world.categories if world.is_leaf(c) and
              c not in in_rel and world.depth(c) >= 2]
  if not 0 <= n <= len(eligible):
    raise ValueError(
        f"semantic: num_holdout_categories must be in 0..{len(eligible)}, got"
        f" {n}")
  return sorted(rng.shuffled(eligible, seed, f"{NAME}/holdouts")[:n],
                key=world.categories.index)


def generate(cfg, seed: int) -> records.Dataset:
  """Builds the dataset from the `generator` block of configs/data.py."""
  world, _ = kb.build_world(seed, str(cfg.tokenizer))
  holdouts = _holdouts(world, int(cfg.get("num_holdout_categories", 16)), seed)
  # Held-out categories keep only their parent fact.
  trained = world.without(f for c in holdouts for f in world.facts()
                          if f.subject == c and f.kind != "isa")
  train = _documents(world, trained, holdouts, int(cfg.num_documents), seed)
  test, dropped = _questions(world, trained, holdouts, cfg, seed,
                             _doc_frequency(train, trained))
  taught = {i for d in train for i in d.meta["facts"]}
  missing = [f.id for f in trained.facts() if f.id not in taught]
  if missing:  # The main articles guarantee this; fail loudly if not.
    raise RuntimeError(f"semantic: facts never stated in train: {missing[:5]}")
  return records.Dataset(name=NAME, train=train, test=test,
                         card=_card(world, trained, holdouts, train, test,
                                    dropped, cfg))


def _card(world, trained, holdouts, train, test, dropped, cfg
          ) -> dict[str, Any]:
  leaves = sum(world.is_leaf(c) for c in world.categories)
  n_props = sum(len(v) for v in world.props.values())
  sentences = [d.meta["sentences"] for d in train]
  styles = collections.Counter(d.meta["style"] for d in train)
  splits = collections.Counter(q.split for q in test)
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
          " asked backwards (never stated backwards in training). syllogism:"
          " a property a category inherits from an ancestor, never stated"
          " for the category itself. category_holdout: "
          f"{len(holdouts)} held-out leaf categories ({', '.join(holdouts)})"
          " whose only trained fact is their parent; every inherited property"
          " and every ancestor beyond the parent is asked. Splits larger than"
          " the cap are sampled round-robin over fact kinds; splits smaller"
          " than the minimum ask some facts again in a second wording."
          f" Counts: {dict(splits)}; items dropped for lack of distractors:"
          f" {dropped or 'none'}."),
      questions=(
          f"{int(cfg.num_choices)}-way; the shared words are the prompt and"
          " each choice is one nonsense word (same grammatical form) plus a"
          " period. Distractors are false of the queried entity and true of"
          " another one (e.g. a property some other category has), from the"
          " answer's level of the tree where possible and the nearest to it"
          " in training-document frequency and length; answer positions"
          " balanced. Further documents favour the least-mentioned"
          " categories, so property words are about equally frequent: word"
          " co-occurrence and word frequency are at chance on the syllogism"
          " and category_holdout splits."),
  )


# ---------------------------------------------------------------- rules


def training_facts(dataset: records.Dataset) -> list[kb.Fact]:
  """Facts the training documents state (from their meta), in order."""
  ids = dict.fromkeys(i for d in dataset.train for i in d.meta.get("facts", ()))
  return [kb.Fact.from_id(i) for i in ids]


def oracle_augmentations(dataset: records.Dataset) -> list[str]:
  """Every reversal and every deduction of the training facts, by rule.

  Reversals of parent, property and relation facts; for every category, each
  property it inherits and each ancestor beyond its parent. Built from the
  training facts only, so held-out categories get exactly what their parent
  fact entails.
  """
  facts = training_facts(dataset)
  world = kb.World.from_facts(facts)
  out = []
  for f in facts:
    s = fact_slots(f)
    if f.kind == "isa":
      out.append(_fill("{b_pl} include {a_pl}.", **s))
    elif f.kind == "prop":
      out.append(_fill("Among the things that " + f.relation + " {p} are"
                       " {s_pl}.", **s))
    else:
      out.append(_fill("{y_pl} are {v_ed} by {x_pl}.", **s))
  for c in world.categories:
    for a in world.ancestors(c)[1:]:
      out.append(_fill("{a_pl} are a kind of {b_sg}.",
                       **_slots("a", c), **_slots("b", a)))
    for _, (k, p) in world.inherited(c):
      out.append(_fill("{s_pl} " + k + " {p}.", **_slots("s", c), p=p))
  return out


# A QA pair ("Q: ...?\nA: ...") is one unit: the question names the subject.
_SPLIT_SENTENCES = re.compile(r"[.!\n]+")
_WORD = re.compile(r"[a-z]+")


class _TrainIndex:
  """Sentences of the training text as lemma sequences."""

  def __init__(self, dataset: records.Dataset, lemmas: set[str]):
    form_of = {f: w for w in lemmas for f in kb.forms(w)}
    self.sentences: list[list[str]] = []
    self.passive: list[int] = []
    self.where: dict[str, set[int]] = collections.defaultdict(set)
    self.docs: dict[str, set[int]] = collections.defaultdict(set)
    past = {kb.past(w) for w in lemmas}
    for k, d in enumerate(dataset.train):
      text = d.text.lower().replace("?\na: ", "? a: ")
      for s in _SPLIT_SENTENCES.split(text):
        words = _WORD.findall(s)
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
  """Semantic-specific checks (run by `checks.run_checks`)."""
  facts = training_facts(dataset)
  world = kb.World.from_facts(facts)
  lemmas = set(world.categories) | set(world.verbs) | {
      w for (_, w) in world.owner}
  index = _TrainIndex(dataset, lemmas)
  taught = {f.id for f in facts}
  needed, absent, backwards, distractors = [], [], [], []
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
    if q.split == "reversal":
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
      truth = statement_true(world, m["type"], m["entity"], m["relation"], v)
      if j == q.answer:
        if not truth:
          distractors.append(f"{q.id}: answer {v!r} is not true")
        continue
      if truth:
        distractors.append(f"{q.id}: distractor {v!r} is true of {m['entity']}")
      domain = entity_domain(world, m["type"], m["relation"])
      if not any(statement_true(world, m["type"], e, m["relation"], v)
                 for e in domain if e != m["entity"]):
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
      "semantic_labels_and_distractors": distractors,
  }
