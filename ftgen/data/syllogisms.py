"""The `syllogisms` dataset: categorical syllogisms over nonsense terms.

Design: docs/design.md#datasets.

Each item uses three fresh nonsense words S, M, P. Its training document is a
context line naming the three entities followed by two premises (premise
order and sentence templates vary). Its test question names the two end
terms and offers six conclusions, {all, some, no} x both term orders, in the
canonical wording of `logic.Prop.render`. Three test splits:

* `syllogism`: a valid form of `logic.FORMS`. The correct set is computed by
  `logic.entails`, not typed by hand: "some"/"no" conclusions hold in both
  orders (`answers` has two entries), "all" in one; `answer` is the
  conclusion in its traditional S-P order. Chance is per item:
  len(answers) / 6. The conclusions' quantifiers are balanced: all, some and
  no each close a third of the items (Barbara is the only "all" form, so it
  closes a third on its own; the four "some" and the four "no" forms share
  the other two thirds).
* `control_invalid`: a premise pair from which no conclusion about the end
  terms follows (`INVALID_PAIRS`); its document is trained like the others.
  No choice is entailed; `answer` is the conclusion a quantifier copier
  picks: the premises' "atmosphere" quantifier (`atmosphere`) with the term
  the question names first as subject. Its accuracy is the share of items
  where a model prefers that unentailed statement: near chance (1/6) for a
  reasoning model, near 1 for a copier.
* `control_other_premises`: a valid item whose document is withheld from
  training, so fine-tuning never sees its premises and in-context learning
  sees only other items' premises. Labeled as `syllogism` (by the withheld
  premises); a reasoning model scores chance, a model that exploits
  quantifier priors does not.

The premises never use the words of the choices' quantifiers ("all",
"some", "no"): "every"/"each", "at least one", "not one"/"none of the"
instead. Otherwise the surface rule "pick the choice whose quantifier word
occurs in the item's document" would answer the valid items without
reasoning (`ftgen.data.validity.cooccurs_with_query`); the task forces only
the semantic version of that rule (`copy_premise_quantifier`, a baseline).

Dataset heuristics (`HEURISTICS`, reported with the generic ones of
`ftgen.data.validity`): `copy_premise_quantifier` (forced on `syllogism` and
`control_invalid`, `FORCED` says why) and `keep_question_order` (the
question's term order; forced on `control_invalid` only, whose answers take
that order).
"""

from __future__ import annotations

import collections
import itertools
import re
from typing import Iterable, Sequence

from ftgen.data import logic
from ftgen.data import records
from ftgen.data import rng
from ftgen.data import validity
from ftgen.data import vocab

NAME = "syllogisms"
SPLIT = "syllogism"
CONTROL_INVALID = "control_invalid"
CONTROL_OTHER_PREMISES = "control_other_premises"
NUM_CHOICES = 6
# The quantifiers of the test choices, in `logic.conclusion_choices` order.
CONCLUSION_QUANTIFIERS = ("all", "some", "no")

# Premise wordings of the training documents (and of the oracle's
# statements); {x} is the subject, {y} the predicate. None of them contains
# "all", "some" or "no", the words that open the test choices: see the
# module docstring.
TEMPLATES = {
    "all": ("Every {x} is a {y}.", "Each {x} is a {y}.",
            "Everything that is a {x} is a {y}."),
    "some": ("At least one {x} is a {y}.", "There is a {x} that is a {y}.",
             "One or more {x} are {y}."),
    "no": ("Not one {x} is a {y}.", "None of the {x} are {y}.",
           "Nothing that is a {x} is a {y}."),
}
# Further wordings the checkers read in model-written statements; never
# written by the generator.
OTHER_WORDINGS = {
    "all": ("All {x} are {y}.",),
    "some": ("Some {x} are {y}.", "Some of the {x} are {y}.",
             "Some {x} is a {y}."),
    "no": ("No {x} are {y}.", "No {x} is a {y}."),
}
CONTEXTS = (
    "Consider {0}, {1} and {2}.",
    "This note is about {0}, {1} and {2}.",
    "Here are three kinds of things: {0}, {1} and {2}.",
    "The following concerns {0}, {1} and {2}.",
)
QUESTION = "Consider {0} and {1}. Therefore,"
_QUESTION = re.compile(r"^Consider ([a-z]+) and ([a-z]+)\. Therefore,$")


def _pattern(template: str) -> re.Pattern:
  """A template as a regex: terms are words, "a" may be "an"."""
  text = re.escape(template).replace(r"\{x\}", "([a-z]+)")
  text = text.replace(r"\{y\}", "([a-z]+)")
  # re.escape escapes spaces in some Python versions and not in others.
  text = text.replace(r"\ a\ ", r"\ an?\ ").replace(" a ", " an? ")
  return re.compile(text + "$", re.IGNORECASE)


_PATTERNS = tuple(
    (q, _pattern(t))
    for wordings in (TEMPLATES, OTHER_WORDINGS)
    for q, ts in wordings.items() for t in ts)
_SENTENCE = re.compile(r"[^.?!]+[.?!]")


def parse_premises(text: str) -> list[logic.Prop]:
  """Every proposition stated in `text` in one of the known wordings."""
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


def atmosphere(premises: Iterable[logic.Prop]) -> str:
  """The conclusion quantifier the premises' moods suggest ("atmosphere").

  A negative premise gives "no", else a particular one gives "some", else
  "all". On every valid form of `logic.FORMS` it is the valid conclusion's
  quantifier, which is why copying it is a forced baseline.
  """
  quantifiers = {p.quantifier for p in premises}
  if quantifiers & {"no", "some_not"}:
    return "no"
  return "some" if "some" in quantifiers else "all"


def _end_terms(premises: Sequence[logic.Prop]) -> tuple[str, ...]:
  """The terms in exactly one premise, in order of appearance."""
  counts = collections.Counter(t for p in premises for t in p.terms)
  return tuple(t for t in dict.fromkeys(t for p in premises for t in p.terms)
               if counts[t] == 1)


def concludes_nothing(premises: Sequence[logic.Prop]) -> bool:
  """No proposition about the end terms (any quantifier, either order)
  follows from the premises."""
  ends = _end_terms(premises)
  if len(premises) != 2 or len(ends) != 2:
    return False
  return not any(logic.entails(premises, logic.Prop(q, a, b))
                 for q in logic.QUANTIFIERS for a, b in (ends, ends[::-1]))


def _invalid_pairs() -> dict[str, tuple[tuple[int, str], ...]]:
  """(figure, premise moods) that conclude nothing, by atmosphere."""
  out: dict[str, list[tuple[int, str]]] = {
      q: [] for q in CONCLUSION_QUANTIFIERS}
  for figure in (1, 2, 3, 4):
    for letters in itertools.product("AEI", repeat=2):
      mood = "".join(letters)
      # The third mood letter (the conclusion) is unused.
      major, minor, _ = logic.form_props(figure, mood + "A")
      if concludes_nothing([major, minor]):
        out[atmosphere([major, minor])].append((figure, mood))
  return {q: tuple(v) for q, v in out.items()}


# Premise pairs of control_invalid: by enumeration, not by hand.
INVALID_PAIRS = _invalid_pairs()


def _forms(cfg) -> list[str]:
  names = list(cfg.forms) if cfg.forms else list(logic.FORMS)
  unknown = [n for n in names if n not in logic.FORMS]
  if unknown:
    raise ValueError(
        f"syllogisms: unknown forms {unknown}; allowed:"
        f" {', '.join(logic.FORMS)}")
  return names


def _num_controls(cfg, n: int) -> int:
  """Items per control split: `num_control_items` when the config has it,
  else about a third of `num_items` in a multiple of 6 (balanced answer
  positions and thirds of quantifiers); at least 6."""
  k = cfg.get("num_control_items", None)
  if k is None:
    return 6 * max(1, round(n / 18))
  if int(k) < 1:
    raise ValueError(f"syllogisms: num_control_items must be >= 1, got {k}")
  return int(k)


def _balanced(groups: dict[str, Sequence], n: int, seed: int,
              name: str) -> list[tuple[str, object]]:
  """n (group, member) pairs: the groups in equal shares, each group's
  members in turn (their order seeded), the whole list shuffled."""
  keys = [k for k in CONCLUSION_QUANTIFIERS if groups.get(k)]
  members = {k: rng.shuffled(groups[k], seed, f"{name}/{k}") for k in keys}
  used: collections.Counter = collections.Counter()
  plan = []
  for i in range(n):
    k = keys[i % len(keys)]
    plan.append((k, members[k][used[k] % len(members[k])]))
    used[k] += 1
  return rng.shuffled(plan, seed, name)


def _first_named(plan: Sequence[tuple[str, object]]) -> list[bool]:
  """Per item, whether the question names the conclusion's subject first:
  alternating within each quantifier, so that the named order says nothing
  about the direction of an "all" conclusion."""
  seen: collections.Counter = collections.Counter()
  out = []
  for quantifier, _ in plan:
    out.append(seen[quantifier] % 2 == 0)
    seen[quantifier] += 1
  return out


def label(premises: Iterable[logic.Prop],
          choices: Iterable[logic.Prop]) -> list[int]:
  """Indices of the choices the premises entail."""
  premises = list(premises)
  return [i for i, c in enumerate(choices) if logic.entails(premises, c)]


def _bullets(items: Iterable[str]) -> str:
  """Markdown bullets for the dataset card."""
  return "\n".join(f"* {item}" for item in items)


def _document(i: int, premises: Sequence[logic.Prop], terms: Sequence[str],
              gen, meta: dict) -> records.Document:
  """A context line naming the three terms, then the premises."""
  order = [premises[j] for j in gen.permutation(2)]
  sentences = [_render(q, TEMPLATES[q.quantifier][gen.integers(3)])
               for q in order]
  named = [terms[j] for j in gen.permutation(3)]
  context = CONTEXTS[gen.integers(len(CONTEXTS))].format(*named)
  return records.Document(id=f"{NAME}/item{i:04d}",
                          text=" ".join([context] + sentences), meta=meta)


def _question(split: str, i: int, candidates: Sequence[logic.Prop],
              canonical: int, answers: Sequence[int], position: int,
              named: tuple[str, str], gen, meta: dict) -> records.Question:
  """Candidate `canonical` at `position`, the rest in seeded order."""
  rest = [j for j in range(NUM_CHOICES) if j != canonical]
  rest = [rest[j] for j in gen.permutation(len(rest))]
  slots = rest[:position] + [canonical] + rest[position:]
  return records.Question(
      id=f"{NAME}/{split}/{i:04d}", split=split,
      prompt=QUESTION.format(*named),
      choices=tuple(f" {candidates[j].render()}." for j in slots),
      answer=position, answers=tuple(slots.index(j) for j in answers),
      meta=meta)


def _valid_item(split: str, i: int, form: str, terms: Sequence[str],
                subject_first: bool, position: int, gen, **meta):
  """(document, question) of a valid form; the conclusion is S-P; `meta`
  is added to the question's."""
  s, m, p = terms
  major, minor, conclusion = logic.form_props(*logic.FORMS[form],
                                              s=s, m=m, p=p)
  premises = [major, minor]
  doc = _document(i, premises, terms, gen, dict(item=i, form=form))
  candidates = list(logic.conclusion_choices(s, p))
  entailed = label(premises, candidates)
  canonical = candidates.index(conclusion)
  if canonical not in entailed:
    raise AssertionError(  # The form table and the checker disagree.
        f"{form}: checker entails"
        f" {[candidates[j].render() for j in entailed]}")
  question = _question(
      split, i, candidates, canonical, entailed, position,
      (s, p) if subject_first else (p, s), gen,
      dict(item=i, document=doc.id, form=form, figure=logic.FORMS[form][0],
           mood=logic.FORMS[form][1],
           premises=[q.render() for q in premises],
           conclusion=conclusion.render(), **meta))
  return doc, question


def _invalid_item(i: int, figure: int, mood: str, terms: Sequence[str],
                  s_first: bool, position: int, gen):
  """(document, question) of a premise pair that concludes nothing."""
  s, m, p = terms
  major, minor, _ = logic.form_props(figure, mood + "A", s=s, m=m, p=p)
  premises = [major, minor]
  doc = _document(i, premises, terms, gen,
                  dict(item=i, figure=figure, mood=mood,
                       control=CONTROL_INVALID))
  named = (s, p) if s_first else (p, s)
  # The copier's pick: the atmosphere quantifier, the question's order.
  copied = logic.Prop(atmosphere(premises), *named)
  candidates = list(logic.conclusion_choices(s, p))
  if label(premises, candidates) or not concludes_nothing(premises):
    raise AssertionError(f"{figure}{mood}: premises entail a conclusion")
  canonical = candidates.index(copied)
  question = _question(
      CONTROL_INVALID, i, candidates, canonical, [canonical], position,
      named, gen,
      dict(item=i, document=doc.id, figure=figure, mood=mood,
           premises=[q.render() for q in premises],
           copied_conclusion=copied.render()))
  return doc, question


def generate(cfg, seed: int) -> records.Dataset:
  """Builds the dataset from the `generator` block of configs/data.py."""
  n = int(cfg.num_items)
  if n < 1:
    raise ValueError(f"syllogisms: num_items must be >= 1, got {n}")
  k = _num_controls(cfg, n)
  names = _forms(cfg)
  # One word list, sliced: words of different items are never near
  # duplicates (`vocab.make_words` keeps them an edit apart).
  words = vocab.make_words(3 * (n + 2 * k), seed, name=f"{NAME}/entities",
                           tokenizer=cfg.tokenizer)
  # Forms by their conclusion's quantifier (the mood's third letter).
  by_quantifier = {
      q: [f for f in names if logic.LETTERS[logic.FORMS[f][1][2]] == q]
      for q in CONCLUSION_QUANTIFIERS}
  train, test = [], []

  def terms(i):
    return words[3 * i:3 * i + 3]

  def positions(count, split):
    return rng.shuffled([j % NUM_CHOICES for j in range(count)], seed,
                        f"{NAME}/{split}/answers")

  # The main split (stream names kept from the first version).
  plan = _balanced(by_quantifier, n, seed, f"{NAME}/forms")
  gen = rng.stream(seed, f"{NAME}/text")
  for i, ((_, form), first, pos) in enumerate(
      zip(plan, _first_named(plan), positions(n, SPLIT))):
    doc, question = _valid_item(SPLIT, i, form, terms(i), first, pos, gen)
    train.append(doc)
    test.append(question)

  plan = _balanced(INVALID_PAIRS, k, seed, f"{NAME}/{CONTROL_INVALID}/pairs")
  gen = rng.stream(seed, f"{NAME}/{CONTROL_INVALID}/text")
  for j, ((_, (figure, mood)), first, pos) in enumerate(
      zip(plan, _first_named(plan), positions(k, CONTROL_INVALID))):
    doc, question = _invalid_item(n + j, figure, mood, terms(n + j), first,
                                  pos, gen)
    train.append(doc)
    test.append(question)

  plan = _balanced(by_quantifier, k, seed,
                   f"{NAME}/{CONTROL_OTHER_PREMISES}/forms")
  gen = rng.stream(seed, f"{NAME}/{CONTROL_OTHER_PREMISES}/text")
  for j, ((_, form), first, pos) in enumerate(
      zip(plan, _first_named(plan), positions(k, CONTROL_OTHER_PREMISES))):
    i = n + k + j
    # The document is withheld: only the question's meta knows it.
    _, question = _valid_item(CONTROL_OTHER_PREMISES, i, form, terms(i),
                              first, pos, gen, withheld=True)
    test.append(question)

  # Control documents interleaved with the others: an in-context learner
  # must not find them by their place in the context.
  train = rng.shuffled(train, seed, f"{NAME}/train_order")
  return records.Dataset(name=NAME, train=train, test=test,
                         card=_card(cfg, names, test))


def _card(cfg, names: Sequence[str], test: Sequence[records.Question]
          ) -> dict[str, str]:
  """The dataset card's facts, counted from the questions."""
  by_split: dict[str, list[records.Question]] = collections.defaultdict(list)
  for q in test:
    by_split[q.split].append(q)
  main = by_split[SPLIT]
  forms = collections.Counter(q.meta["form"] for q in main)
  conclusions = collections.Counter(
      q.meta["conclusion"].split()[0] for q in main)
  copied = collections.Counter(
      q.meta["copied_conclusion"].split()[0] for q in by_split[CONTROL_INVALID])
  pairs = sorted({f"{q.meta['figure']}{q.meta['mood']}"
                  for q in by_split[CONTROL_INVALID]})

  def chance(split):
    qs = by_split[split]
    return sum(q.chance for q in qs) / len(qs)

  def shares(counts):
    return ", ".join(f"{q} {counts.get(q, 0)}" for q in CONCLUSION_QUANTIFIERS)

  return {
      "description": (
          "Categorical syllogisms over nonsense terms. Each training"
          " document names three entities and states two premises; each test"
          " question names the two end terms and offers six conclusions"
          " ({all, some, no} x both orders). Split `syllogism` asks for the"
          " valid conclusion; two controls separate reasoning from copying"
          " the premises' quantifiers (see Controls)."),
      "Design choices": _bullets([
          f"{len(main)} valid items over {len(names)} forms: "
          + ", ".join(f"{k} {v}" for k, v in sorted(forms.items())) + ".",
          "Conclusion quantifiers balanced (" + shares(conclusions) + "):"
          " always answering one quantifier is right on a third of the items"
          " only. Barbara is the only valid 'all' form, so it alone closes a"
          " third; the four 'some' and the four 'no' forms share the rest.",
          "Modern (Boolean) semantics without existential import; forms"
          " with 'some ... are not' are excluded.",
          "Correct choices are computed by enumerating the 256 Venn-diagram"
          " models of the three terms (ftgen.data.logic), so 'some' and 'no'"
          " conclusions have two correct orders (`answers`).",
          f"Mean chance accuracy {chance(SPLIT):.3f} (per item"
          " len(answers)/6).",
          "Premises are worded with 'every'/'each'/'everything that is',"
          " 'at least one'/'there is'/'one or more' and 'not one'/'none of"
          " the'/'nothing that is', never with the choices' words 'all',"
          " 'some', 'no': finding the choice's quantifier word in the"
          " item's document is no shortcut.",
          "Premise order, premise wording (3 templates per quantifier) and"
          " the order entities are named in vary per item; the question"
          " names the conclusion's subject first in half the items of each"
          " quantifier; canonical answer positions are balanced over the six"
          " slots in every split; control documents are interleaved with the"
          " others.",
          f"Nonsense words filtered against English words and the"
          f" {cfg.tokenizer or 'no'} tokenizer's single tokens.",
      ]),
      "Controls": _bullets([
          f"`{CONTROL_INVALID}` ({len(by_split[CONTROL_INVALID])} items):"
          " premise pairs from which nothing about the end terms follows"
          " (figure and moods " + ", ".join(pairs) + "), trained like the"
          " others. No choice is entailed; `answer` is the atmosphere"
          " conclusion a quantifier copier picks: 'no' if a premise is"
          " negative, else 'some' if one is particular, else 'all'"
          " (" + shares(copied) + "), with the term the question names first"
          " as subject. Accuracy = share of items where the model prefers"
          " that unentailed statement: a reasoning model stays near chance"
          " (1/6), a quantifier copier near 1.",
          f"`{CONTROL_OTHER_PREMISES}`"
          f" ({len(by_split[CONTROL_OTHER_PREMISES])} items): valid items"
          " whose documents are withheld from training, so in context only"
          " other items' premises are seen; labeled by the withheld premises"
          f" (chance {chance(CONTROL_OTHER_PREMISES):.3f}). A reasoning model"
          " scores chance; above chance means quantifier priors.",
          "The rule-written (oracle) augmentations cover valid items only,"
          " in the documents' wording, never the choices'.",
      ]),
      "Checks": _bullets([
          "labels_verified_by_checker: premises parsed back from each"
          " document's text (the withheld items': from `meta.premises`),"
          " choices parsed from the question, entailed set equals `answers`"
          " and is non-empty; in control_invalid no choice is entailed and"
          " `answer` is the atmosphere conclusion.",
          "premises_in_train, withheld_premises_not_in_train,"
          " conclusions_not_in_train, plus the generic checks of"
          " ftgen.data.checks.",
      ]),
  }


def _prompt_terms(prompt: str) -> tuple[str, str] | None:
  m = _QUESTION.match(prompt)
  return (m.group(1), m.group(2)) if m else None


def dataset_checks(dataset: records.Dataset) -> dict[str, list[str]]:
  """Labels re-derived from the text by the checker (run by `checks`)."""
  docs = {d.id: d for d in dataset.train}
  stated = {c for d in dataset.train for c in parse_premises(d.text)}
  trained_words = {w.lower() for d in dataset.train
                   for w in re.findall(r"[A-Za-z]+", d.text)}
  labels, premises_missing, conclusions_in_train, leaked = [], [], [], []
  for q in dataset.test:
    expected = [logic.parse(p) for p in q.meta.get("premises", ())]
    if q.split == CONTROL_OTHER_PREMISES:
      premises = expected
      if q.meta.get("document") in docs:
        leaked.append(f"{q.id}: its document is in train")
      terms = sorted({t for p in premises if p for t in p.terms})
      leaked += [f"{q.id}: {t!r} occurs in train" for t in terms
                 if t in trained_words]
    else:
      doc = docs.get(q.meta.get("document", ""))
      if doc is None:
        premises_missing.append(f"{q.id}: its training document is missing")
        continue
      premises = parse_premises(doc.text)
      if len(premises) != 2 or set(premises) != set(expected):
        premises_missing.append(
            f"{q.id}: document states {[p.render() for p in premises]}")
    props = [logic.parse(c) for c in q.choices]
    if None in props or None in premises:
      labels.append(f"{q.id}: unparsable choice or premise in {q.choices}")
      continue
    entailed = label(premises, props)
    if q.split == CONTROL_INVALID:
      named = _prompt_terms(q.prompt)
      copied = logic.Prop(atmosphere(premises), *named) if named else None
      if entailed or not concludes_nothing(premises):
        labels.append(f"{q.id}: premises entail a conclusion ({entailed})")
      if props[q.answer] != copied or q.answers != (q.answer,):
        labels.append(f"{q.id}: answer {props[q.answer].render()!r} is not"
                      " the atmosphere conclusion in the question's order")
    elif not entailed or tuple(entailed) != q.answers:
      labels.append(f"{q.id}: checker entails {entailed}, labels {q.answers}")
    conclusions_in_train += [f"{q.id}: {props[a].render()!r} stated in train"
                             for a in q.answers if props[a] in stated]
  return {
      "labels_verified_by_checker": labels,
      "premises_in_train": premises_missing,
      "withheld_premises_not_in_train": leaked,
      "conclusions_not_in_train": conclusions_in_train,
  }


# --------------------------------------------- heuristic


def copy_premise_quantifier(q: records.Question,
                            ctx: validity.Context) -> list[float]:
  """The choices with the atmosphere quantifier of the premises found in
  the training document that names both of the question's terms (both
  orders score alike); every choice alike when no document does."""
  named = _prompt_terms(q.prompt)
  premises: list[logic.Prop] = []
  if named is not None:
    docs = set.intersection(
        *(set(ctx.postings.get(validity.stem(t), ())) for t in named))
    for i in sorted(docs):
      found = parse_premises(ctx.documents[i].text)
      if set(named) <= {t for p in found for t in p.terms}:
        premises = found
        break
  if len(premises) != 2:
    return [0.0] * len(q.choices)  # Nothing to copy.
  quantifier = atmosphere(premises)
  out = []
  for choice in q.choices:
    prop = logic.parse(choice)
    out.append(float(prop is not None and prop.quantifier == quantifier))
  return out


def keep_question_order(q: records.Question,
                        ctx: validity.Context) -> list[float]:
  """The choices whose subject is the term the question names first."""
  del ctx
  named = _prompt_terms(q.prompt)
  out = []
  for choice in q.choices:
    prop = logic.parse(choice)
    out.append(float(named is not None and prop is not None
                     and prop.subject == named[0]))
  return out


HEURISTICS = {"copy_premise_quantifier": copy_premise_quantifier,
              "keep_question_order": keep_question_order}
FORCED = {
    f"copy_premise_quantifier/{SPLIT}": (
        "the logic itself ties the premises' moods to the valid"
        " conclusion's quantifier (on every valid all/some/no form a"
        " negative premise gives 'no', else a particular one 'some', else"
        " 'all'), so copying it is right wherever the term order does not"
        " matter; control_invalid measures whether a model copies"),
    f"copy_premise_quantifier/{CONTROL_INVALID}": (
        "control_invalid is built so that its answer is the conclusion this"
        " heuristic picks (it scores 0.5, not 1, because it does not prefer"
        " a term order)"),
    f"keep_question_order/{CONTROL_INVALID}": (
        "a single answer needs a term order, and control_invalid's is the"
        " question's (the copier's continuation), so preferring that order"
        " alone scores 1/3 there: quantifier copying shows as accuracy above"
        " this row (at chance on the other splits, where the question names"
        " the conclusion's subject first in half the items)"),
}
CONTROLS = {
    CONTROL_INVALID: (
        "share of items where the model prefers the premises' atmosphere"
        " conclusion, which they do not entail: a reasoning model stays near"
        " chance (1/6), a quantifier copier near 1"),
    CONTROL_OTHER_PREMISES: (
        "accuracy on items whose premises were never trained (in context"
        " only other items' premises): a reasoning model scores chance,"
        " above chance means quantifier priors"),
}
# Worked examples of the local augmentation prompt: the documents' wording,
# modern logic ("every" never licenses "some" in either order).
AUGMENT_EXAMPLES = (
    ("Every violin is a string instrument.",
     ("Each violin is a string instrument.",
      "All violins are string instruments.",
      "Everything that is a violin is a string instrument.")),
    ("Not one whale is a fish.",
     ("No whale is a fish.",
      "Not one fish is a whale.",
      "None of the fish are whales.")),
)


# --------------------------------------------- oracle and checkers


def oracle_augmentations(dataset: records.Dataset) -> list[str]:
  """Every conclusion entailed by a valid item's premises (not a premise).

  Written in the documents' premise wordings (the templates in turn), never
  in the test choices' wording. Items whose premises conclude nothing
  (control_invalid) get no statements: the control measures the model's own
  tendency to copy quantifiers, not one taught by the oracle.
  """
  out: dict[str, None] = {}
  turn = 0
  for doc in dataset.train:
    premises = parse_premises(doc.text)
    if len(premises) != 2 or concludes_nothing(premises):
      continue
    terms = sorted({t for p in premises for t in p.terms})
    stated = set(premises)
    for x in terms:
      for y in terms:
        if x == y:
          continue
        for q in CONCLUSION_QUANTIFIERS:
          prop = logic.Prop(q, x, y)
          if prop not in stated and logic.entails(premises, prop):
            templates = TEMPLATES[q]
            out[_render(prop, templates[turn % len(templates)])] = None
            turn += 1
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
