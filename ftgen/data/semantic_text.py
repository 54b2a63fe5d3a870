"""How facts of the `semantic` world become training documents.

Sentence templates per fact kind (stated forwards only), document styles,
and the document builder: one main article per trained category, then
further documents favouring the least-mentioned categories, with a
co-mention filter (`_Mentions`) that keeps every deduction spread over
several documents.
"""

from __future__ import annotations

import collections
import re

from ftgen.data import records
from ftgen.data import rng
from ftgen.data import semantic_kb as kb
from ftgen.data import vocab

NAME = kb.NAME
STYLES = ("encyclopedic", "field_notes", "qa", "list", "overview", "relations",
          "glossary")
_STYLE_WEIGHTS = (0.25, 0.15, 0.15, 0.15, 0.1, 0.1, 0.1)
MIN_SENTENCES, MAX_SENTENCES = 4, 20
WORD = re.compile(r"[a-z]+")

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


def slots(name: str, c: str) -> dict[str, str]:
  """Template slots of category `c` under slot name `name`."""
  return {f"{name}_sg": c, f"{name}_pl": kb.plural(c),
          f"{name}_art": kb.article(c)}


def fill(template: str, **kw) -> str:
  """A filled template, capitalized as a sentence."""
  return vocab.capitalize(template.format(**kw))


def fact_slots(f: kb.Fact) -> dict[str, str]:
  """Template slots of a fact (subject "a"/"s"/"x", value "b"/"p"/"y")."""
  if f.kind == "isa":
    return {**slots("a", f.subject), **slots("b", f.value)}
  if f.kind == "prop":
    return {**slots("s", f.subject), "p": f.value}
  return {**slots("x", f.subject), **slots("y", f.value), "v": f.relation,
          "v_ed": kb.past(f.relation)}


def _render(f: kb.Fact, gen) -> str:
  """One training sentence stating `f` forwards."""
  if f.kind == "isa":
    templates = TRAIN_ISA
  elif f.kind == "prop":
    templates = TRAIN_PROP[f.relation]
  else:
    templates = TRAIN_REL
  return fill(templates[gen.integers(len(templates))], **fact_slots(f))


def _join(words: list[str]) -> str:
  if len(words) == 1:
    return words[0]
  return ", ".join(words[:-1]) + " and " + words[-1]


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
      text = fill("{s_pl} " + f.relation + " {p}.", **slots("s", f.subject),
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
      text = fill(QA_QUESTION[key], **fact_slots(f)) + "\nA: " + text
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
  primary = isa_first + shuffle([f for f in own if f.kind != "isa"], gen)
  kids = [[kb.isa(c, focus)] + facts.props(c) for c in w.children[focus]]
  if style == "overview":  # The kinds of `focus`, not its own properties.
    return [f for g in shuffle(kids, gen) for f in g], primary
  groups = [[kb.isa(s, parent)] + facts.props(s) for s in siblings]
  groups += [[f] for f in facts.rel_as_object[focus]] + kids
  if parent is not None:
    groups.append(facts.own(parent))
  secondary = [f for g in shuffle(groups, gen) for f in g]
  if style == "relations":  # Who relates to whom first, then the rest.
    rels = [f for f in own if f.kind == "rel"] + facts.rel_as_object[focus]
    neighbours = [f.value if f.subject == focus else f.subject for f in rels]
    more = [g for n in neighbours for g in facts.own(n) if g.kind == "rel"]
    return (shuffle(rels, gen) + isa_first,
            shuffle(list(dict.fromkeys(more)), gen) + primary + secondary)
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


def shuffle(items: list, gen) -> list:
  """`items` in the order of a permutation drawn from `gen`."""
  order = gen.permutation(len(items))
  return [items[i] for i in order]


def build_documents(world: kb.World, trained: kb.World, holdouts: list[str],
                    num_documents: int, seed: int) -> list[records.Document]:
  """`num_documents` training documents stating the `trained` facts."""
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
      for f in shuffle(everything, gen):
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


def doc_frequency(train: list[records.Document], world: kb.World
                   ) -> dict[str, int]:
  """Lemma -> number of training documents that mention it (any form)."""
  lemmas = set(world.categories) | {w for (_, w) in world.owner}
  form_of = {f: w for w in lemmas for f in kb.forms(w)}
  freq = collections.Counter()
  for d in train:
    freq.update({form_of[x] for x in WORD.findall(d.text.lower())
                 if x in form_of})
  return dict(freq)
