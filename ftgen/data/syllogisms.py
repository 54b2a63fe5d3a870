"""The `syllogisms` dataset: valid syllogisms over nonsense terms.

Design: docs/design.md#datasets.

Each item uses three fresh nonsense words S, M, P and a valid form from
`logic.FORMS` (premises and conclusions use only all/some/no). Its training
document is a context line naming the three entities followed by the two
premises (premise order and sentence templates vary). Its test question names
the two conclusion entities and offers six conclusions, {all, some, no} x
both term orders. The correct set is computed by `logic.entails`, not typed
by hand: "some"/"no" conclusions hold in both orders (`answers` has two
entries), "all" in one; `answer` is the conclusion in its traditional S-P
order. Chance is per item: len(answers) / 6.
"""

from __future__ import annotations

import collections
import re
from typing import Iterable

from ftgen.data import logic
from ftgen.data import records
from ftgen.data import rng
from ftgen.data import vocab

NAME = "syllogisms"
SPLIT = "syllogism"
NUM_CHOICES = 6

# Premise wordings by quantifier; {x} is the subject, {y} the predicate.
TEMPLATES = {
    "all": ("All {x} are {y}.", "Every {x} is a {y}.", "Each {x} is a {y}."),
    "some": ("Some {x} are {y}.", "At least one {x} is a {y}.",
             "Some of the {x} are {y}."),
    "no": ("No {x} are {y}.", "No {x} is a {y}.", "None of the {x} are {y}."),
}
CONTEXTS = (
    "Consider {0}, {1} and {2}.",
    "This note is about {0}, {1} and {2}.",
    "Here are three kinds of things: {0}, {1} and {2}.",
    "The following concerns {0}, {1} and {2}.",
)
QUESTION = "Consider {0} and {1}. Therefore,"

_PATTERNS = tuple(
    (q, re.compile(re.escape(t).replace(r"\{x\}", r"([a-z]+)")
                   .replace(r"\{y\}", r"([a-z]+)") + "$", re.IGNORECASE))
    for q, ts in TEMPLATES.items() for t in ts)
_SENTENCE = re.compile(r"[^.?!]+[.?!]")


def parse_premises(text: str) -> list[logic.Prop]:
  """Every proposition stated in `text` with one of the premise templates."""
  found = []
  for sentence in _SENTENCE.findall(text):
    sentence = sentence.strip()
    for quantifier, pattern in _PATTERNS:
      m = pattern.match(sentence)
      if m:
        found.append(logic.Prop(quantifier, m.group(1).lower(),
                                m.group(2).lower()))
        break
  return found


def _render(prop: logic.Prop, template: str) -> str:
  return template.format(x=prop.subject, y=prop.predicate)


def _forms(cfg) -> list[str]:
  names = list(cfg.forms) if cfg.forms else list(logic.FORMS)
  unknown = [n for n in names if n not in logic.FORMS]
  if unknown:
    raise ValueError(
        f"syllogisms: unknown forms {unknown}; allowed:"
        f" {', '.join(logic.FORMS)}")
  return names


def label(premises: Iterable[logic.Prop],
          choices: Iterable[logic.Prop]) -> list[int]:
  """Indices of the choices the premises entail."""
  premises = list(premises)
  return [i for i, c in enumerate(choices) if logic.entails(premises, c)]


def _bullets(items: Iterable[str]) -> str:
  """Markdown bullets for the dataset card."""
  return "\n".join(f"* {item}" for item in items)


def generate(cfg, seed: int) -> records.Dataset:
  """Builds the dataset from the `generator` block of configs/data.py."""
  n = int(cfg.num_items)
  if n < 1:
    raise ValueError(f"syllogisms: num_items must be >= 1, got {n}")
  names = _forms(cfg)
  forms = rng.shuffled(names, seed, f"{NAME}/forms")
  words = vocab.make_words(3 * n, seed, name=f"{NAME}/entities",
                           tokenizer=cfg.tokenizer)
  positions = rng.shuffled([i % NUM_CHOICES for i in range(n)], seed,
                           f"{NAME}/answers")
  gen = rng.stream(seed, f"{NAME}/text")
  train, test = [], []
  for i in range(n):
    s, m, p = words[3 * i:3 * i + 3]
    form = forms[i % len(forms)]
    major, minor, conclusion = logic.form_props(*logic.FORMS[form],
                                                s=s, m=m, p=p)
    premises = [major, minor]
    order = [premises[j] for j in gen.permutation(2)]
    sentences = [_render(q, TEMPLATES[q.quantifier][gen.integers(3)])
                 for q in order]
    named = [words[3 * i + j] for j in gen.permutation(3)]
    context = CONTEXTS[gen.integers(len(CONTEXTS))].format(*named)
    doc_id = f"{NAME}/item{i:04d}"
    train.append(records.Document(
        id=doc_id, text=" ".join([context] + sentences),
        meta=dict(item=i, form=form)))

    candidates = list(logic.conclusion_choices(s, p))
    entailed = label(premises, candidates)
    canonical = [j for j in entailed if candidates[j].subject == s]
    if not canonical or conclusion != candidates[canonical[0]]:
      raise AssertionError(  # The form table and the checker disagree.
          f"{form}: checker entails"
          f" {[candidates[j].render() for j in entailed]}")
    # Canonical answer at its balanced position, the rest in seeded order.
    rest = [j for j in range(NUM_CHOICES) if j != canonical[0]]
    rest = [rest[j] for j in gen.permutation(len(rest))]
    slots = rest[:positions[i]] + [canonical[0]] + rest[positions[i]:]
    choices = [candidates[j] for j in slots]
    first, second = (s, p) if gen.random() < 0.5 else (p, s)
    test.append(records.Question(
        id=f"{NAME}/{SPLIT}/{i:04d}", split=SPLIT,
        prompt=QUESTION.format(first, second),
        choices=tuple(f" {c.render()}." for c in choices),
        answer=positions[i],
        answers=tuple(slots.index(j) for j in entailed),
        meta=dict(item=i, document=doc_id, form=form,
                  figure=logic.FORMS[form][0], mood=logic.FORMS[form][1],
                  premises=[q.render() for q in premises],
                  conclusion=conclusion.render())))
  counts = collections.Counter(q.meta["form"] for q in test)
  chance = sum(q.chance for q in test) / len(test)
  card = {
      "description": (
          "Valid categorical syllogisms over nonsense terms. Each training"
          " document names three entities and states two premises; each test"
          " question names the two conclusion entities and offers six"
          " conclusions ({all, some, no} x both orders)."),
      "Design choices": _bullets([
          f"{n} items over {len(names)} valid forms: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ".",
          "Modern (Boolean) semantics without existential import; forms"
          " with 'some ... are not' are excluded.",
          "Correct choices are computed by enumerating the 256 Venn-diagram"
          " models of the three terms (ftgen.data.logic), so 'some' and 'no'"
          " conclusions have two correct orders (`answers`).",
          f"Mean chance accuracy {chance:.3f} (per item len(answers)/6).",
          "Premise order, premise wording (3 templates per quantifier) and"
          " the order entities are named in vary per item; canonical answer"
          " positions are balanced over the six slots.",
          f"Nonsense words filtered against English words and the"
          f" {cfg.tokenizer or 'no'} tokenizer's single tokens.",
      ]),
      "Checks": _bullets([
          "labels_verified_by_checker: premises parsed back from each"
          " document's text, choices parsed from the question, entailed set"
          " equals `answers` and is non-empty.",
          "premises_in_train, conclusions_not_in_train, plus the generic"
          " checks of ftgen.data.checks.",
      ]),
  }
  return records.Dataset(name=NAME, train=train, test=test, card=card)


def dataset_checks(dataset: records.Dataset) -> dict[str, list[str]]:
  """Labels re-derived from the text by the checker (run by `checks`)."""
  docs = {d.id: d for d in dataset.train}
  stated = {c for d in dataset.train for c in parse_premises(d.text)}
  labels, premises_missing, conclusions_in_train = [], [], []
  for q in dataset.test:
    doc = docs.get(q.meta.get("document", ""))
    if doc is None:
      premises_missing.append(f"{q.id}: its training document is missing")
      continue
    premises = parse_premises(doc.text)
    expected = {logic.parse(p) for p in q.meta["premises"]}
    if len(premises) != 2 or set(premises) != expected:
      premises_missing.append(
          f"{q.id}: document states {[p.render() for p in premises]}")
    props = [logic.parse(c) for c in q.choices]
    if None in props:
      labels.append(f"{q.id}: unparsable choice in {q.choices}")
      continue
    entailed = label(premises, props)
    if not entailed or tuple(entailed) != q.answers:
      labels.append(f"{q.id}: checker entails {entailed}, labels {q.answers}")
    conclusions_in_train += [f"{q.id}: {props[a].render()!r} stated in train"
                             for a in q.answers if props[a] in stated]
  return {
      "labels_verified_by_checker": labels,
      "premises_in_train": premises_missing,
      "conclusions_not_in_train": conclusions_in_train,
  }


# --------------------------------------------- oracle and checkers


def oracle_augmentations(dataset: records.Dataset) -> list[str]:
  """Every conclusion entailed by each item's premises (not a premise)."""
  out: dict[str, None] = {}
  for doc in dataset.train:
    premises = parse_premises(doc.text)
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


def _props(statement: str) -> list[logic.Prop]:
  """Propositions of a generated statement: premise wordings, else one."""
  props = parse_premises(statement)
  if not props:
    prop = logic.parse(statement)
    props = [prop] if prop is not None else []
  return props


def checker(documents: Iterable[records.Document]):
  """Entailment by the premises of the one item that owns both terms.

  A statement is True when every proposition in it follows from its item's
  premises, False when one does not (or mixes terms of two items), None
  when it names a term no item uses.
  """
  premises: dict[str, list[logic.Prop]] = collections.defaultdict(list)
  owner: dict[str, str] = {}
  for doc in documents:
    for prop in parse_premises(doc.text):
      premises[doc.id].append(prop)
      for term in prop.terms:
        owner[term] = doc.id

  def check(statement: str) -> bool | None:
    props = _props(statement)
    if not props:
      return None
    verdicts = []
    for prop in props:
      items = {owner.get(t) for t in prop.terms}
      if None in items:
        verdicts.append(None)
      elif len(items) > 1:
        verdicts.append(False)  # Terms of unrelated items: never entailed.
      else:
        verdicts.append(logic.entails(premises[items.pop()], prop))
    if False in verdicts:
      return False
    return None if None in verdicts else True

  return check


def restatement_checker(documents: Iterable[records.Document]):
  """True for statements whose every proposition is a stated premise."""
  stated = {p for d in documents for p in parse_premises(d.text)}
  return lambda s: bool(_props(s)) and all(p in stated for p in _props(s))
