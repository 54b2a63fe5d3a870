"""How facts of the `semantic` world become training documents.

Sentence templates per fact kind (stated forwards only), document styles,
and the document builder: one main article per trained category, then
further documents favouring the least-mentioned categories, with a
co-mention filter (`_Mentions`) that keeps every deduction spread over
several documents, and the placement of the `reversal_strict` facts
(`Strict`): stated last in every document that states them, after their
distractors, so no document names the queried word before the answer.
"""

from __future__ import annotations

import collections
import dataclasses
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


def _block_sentence(block: list[kb.Fact], style: str, gen
                    ) -> tuple[str, list[str]]:
  """The one sentence stating a strict subject's facts (same subject and
  kind), always naming the subject: never a pronoun, never split, since a
  second sentence would name the subject after the first property."""
  f = block[0]
  if len(block) == 1:
    text = _render(f, gen)
  else:
    text = fill("{s_pl} " + f.relation + " {p}.", **slots("s", f.subject),
                p=_join([g.value for g in block]))
  if style == "qa":
    text = fill(QA_QUESTION[f.relation], **fact_slots(f)) + "\nA: " + text
  elif style == "list":
    text = "- " + text
  return text, [g.id for g in block]


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


@dataclasses.dataclass
class Strict:
  """A subject of the `reversal_strict` split and its distractors.

  Its strict facts (own properties of one kind) are stated, in every
  document that states them, by one sentence that comes last, after every
  distractor has been named. So no training document names the subject or
  a distractor after a queried property word, and all of them share exactly
  the documents of that word: word co-occurrence and word order tie.

  Attributes:
    subject: the category; its plural is the singular + "s", so both forms
      are one word to the word matching of `ftgen.data.validity`.
    facts: its strict facts.
    ranking: distractor candidates, best first (valid for every fact).
    num_distractors: how many distractors a question needs.
    distractors: the chosen ones, filled in by `build_documents` in the
      subject's main article (the first candidates it can name there).
  """

  subject: str
  facts: tuple[kb.Fact, ...]
  ranking: tuple[str, ...]
  num_distractors: int
  distractors: tuple[str, ...] = ()


def _named(facts: list[kb.Fact]) -> set[str]:
  """The categories that sentences stating `facts` name."""
  return {c for f in facts
          for c in ((f.subject,) if f.kind == "prop" else (f.subject, f.value))}


def _block_order(subjects: list[str], strict: dict[str, Strict]
                 ) -> list[str] | None:
  """`subjects` ordered so that each strict sentence comes after those of
  the subjects among its distractors (they name them first) and before the
  rest; None if no order does (two subjects each other's distractors)."""
  order, left = [], list(subjects)
  while left:
    free = [s for s in left
            if not set(left).intersection(strict[s].distractors)]
    if not free:
      return None
    order.append(free[0])
    left.remove(free[0])
  return order


def build_documents(world: kb.World, trained: kb.World, holdouts: list[str],
                    num_documents: int, seed: int,
                    strict: dict[str, Strict] | None = None
                    ) -> list[records.Document]:
  """`num_documents` training documents stating the `trained` facts.

  `strict` (subject -> `Strict`) is completed in place: each subject's
  distractors are filled in, and a subject whose main article cannot name
  enough of them is removed (its facts are then stated like any other).
  """
  facts = _Facts(trained)
  strict = {} if strict is None else strict
  strict_of = {f.id: s for s, plan in strict.items() for f in plan.facts}
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

  def name_distractors(plan: Strict, chosen: list[kb.Fact], focus: str,
                       mentions: _Mentions, before: set[str]
                       ) -> list[kb.Fact] | None:
    """Facts naming each distractor of `plan`, adding a distractor's parent
    fact where nothing names it (the header names the focus, and the strict
    sentences of the subjects in `before` come first); None if one cannot
    be named. Chooses the distractors when `plan` has none yet."""
    out, got = [], []
    for c in plan.distractors or plan.ranking:
      if len(got) == plan.num_distractors:
        break
      if not plan.distractors and c in strict and (
          plan.subject in strict[c].distractors):
        continue  # Each other's distractors could share no document.
      by = next((f for f in chosen if c in _named([f])), None)
      if by is None and c != focus and c not in before:
        by = kb.isa(c, trained.parent[c])
        if not mentions.admit(by):
          if plan.distractors:
            return None
          continue
      got.append(c)
      if by is not None and by not in out:
        out.append(by)
    if len(got) < plan.num_distractors:
      return None
    plan.distractors = tuple(got)
    return out

  def make(style: str, focus: str, main: bool) -> tuple[str, dict]:
    primary, secondary = _pools(facts, focus, style, gen)
    mentions = _Mentions(trained, focus)
    # Strict subject -> its facts here, each stated by one sentence after
    # everything else (`_block_order`).
    chosen, blocks = [], {}
    # A subject's distractors are chosen in its main article, which states
    # no other subject's strict facts.
    choosing = main and focus in strict and not strict[focus].distractors
    for f in dict.fromkeys(primary + secondary):
      s = strict_of.get(f.id)
      if s is not None:
        if choosing and s != focus:
          continue
        if not (strict[s].distractors or choosing):
          continue
        if s not in blocks and _block_order(list(blocks) + [s],
                                            strict) is None:
          continue
      if mentions.admit(f):
        if s is None:
          chosen.append(f)
        else:
          blocks.setdefault(s, []).append(f)
    naming = []
    for s in list(blocks):
      by = name_distractors(strict[s], chosen, focus, mentions,
                            set(blocks) - {s})
      if by is None and choosing:
        # Its main article cannot name enough distractors: not strict.
        for f in strict.pop(s).facts:
          del strict_of[f.id]
        chosen += blocks.pop(s)
      elif by is None:  # Not stated in this document.
        del blocks[s]
      else:
        naming += [f for f in by if f not in naming]
    # What names the distractors comes early, so that a cut keeps it.
    head = [f for f in chosen if f in primary and f not in naming]
    chosen = head + naming + [f for f in chosen
                              if f not in head and f not in naming]
    rendered = _sentences(chosen, style, focus, gen)
    if len(rendered) < MIN_SENTENCES:  # Thin pool: one fact per sentence.
      rendered = _sentences(chosen, style, focus, gen, merge=False)
    if len(rendered) < MIN_SENTENCES:  # Still thin: borrow unrelated facts.
      for f in shuffle(everything, gen):
        if len(chosen) >= MIN_SENTENCES:
          break
        if f not in chosen and f.id not in strict_of and mentions.admit(f):
          chosen.append(f)
      rendered = _sentences(chosen, style, focus, gen, merge=False)
    if main:
      must = {f.id for f in primary if f.kind == "isa" or style != "overview"}
      must |= {f.id for f in naming}
      least = 1 + max([i for i, (_, ids) in enumerate(rendered)
                       if must.intersection(ids)], default=0)
      n = None
    else:
      least = 1
      n = int(gen.integers(MIN_SENTENCES, MAX_SENTENCES + 1))
    # The strict sentences come last, each after its distractors are named;
    # one whose distractor a cut leaves unnamed is dropped (and so, in
    # turn, are those that count on its sentence).
    order = _block_order(list(blocks), strict) or []
    while True:
      room = (max(least, MIN_SENTENCES - len(order)) if n is None else
              max(least, n - len(order)))
      body = rendered[:room]
      ids = {i for _, fids in body for i in fids}
      names = {focus} | _named([f for f in chosen if f.id in ids])
      keep = []
      for s in order:
        if set(strict[s].distractors) <= names | set(keep):
          keep.append(s)
      if len(body) + len(keep) > MAX_SENTENCES:
        keep = keep[:MAX_SENTENCES - len(body)]
      if keep == order:
        break
      order = keep
    kept = body + [_block_sentence(blocks[s], style, gen) for s in order]
    if not MIN_SENTENCES <= len(kept) <= MAX_SENTENCES:
      raise RuntimeError(
          f"semantic: document about {focus!r} has {len(kept)} sentences")
    text = _doc_text(style, focus, [t for t, _ in kept], gen)
    return text, dict(style=style, focus=focus, sentences=len(kept),
                      facts=[i for _, ids in kept for i in ids])

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
