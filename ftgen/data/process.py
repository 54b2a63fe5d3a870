"""Process knowledge: a derivative-like transform with unusual rules (§4).

Expressions over one variable `x`: digits 1-8, unary functions with nonsense
names, `+` and `*` (`*` binds tighter; both left-associative). A transform
operator `T` (a nonsense name) rewrites expressions by rules that resemble
differentiation but differ from it:

  var:    T(x)       = x
  const:  T(n)       = n + 1 (a digit: T(3) = 4)
  sum:    T(a + b)   = T(a) * b
  prod:   T(a * b)   = T(a) + T(b)
  func:   T(h(a))    = h'(T(a)), with h -> h' a fixed cycle of the functions

Labels are computed by a small interpreter (parse -> AST -> rewrite ->
print), never typed by hand. A "combination" is a (parent rule, child rule)
pair the derivation applies: the child's rule rewrites an operand that the
parent's rule transforms, e.g. (sum, func) in `T(h(x) + 3)`, but not in
`T(3 + h(x))`, whose sum rule copies `h(x)` untransformed. A seeded subset of
the combinations of composite rules is held out: training documents (worked
rewrites, step by step) never apply them; every `heldout_combinations` test
item applies at least one, every `seen_combinations` item none (new
expressions).

Test prompts are `T(expr) =>`; the 4 choices are the correct output and
outputs with a wrong rule applied at exactly one node (likelihood scoring).
The distractors of a split are chosen so that surface features (length,
how much of the expression is rewritten, closeness to the other choices, the
first word) point to the correct output no more often than to any other
choice (`HEURISTICS`, `ftgen.data.validity`). `meta.reference` and
`references.jsonl` hold the exact output for exact-match scoring of
generations.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import re
from typing import Any, Callable, Sequence

from ftgen.data import records
from ftgen.data import rng
from ftgen.data import validity
from ftgen.data import vocab

# ------------------------------------------------------------------ AST
# Nodes are tuples: ("x",), ("n", k), ("f", name, a), ("+", a, b),
# ("*", a, b), ("T", a) for a pending application of the transform.
Node = tuple
RULES = ("var", "const", "sum", "prod", "func")
COMPOSITE = ("sum", "prod", "func")
_KIND = {"x": "var", "n": "const", "f": "func", "+": "sum", "*": "prod"}
_PREC = {"+": 1, "*": 2}


@dataclasses.dataclass(frozen=True)
class Language:
  """The nonsense names: the operator and the function cycle."""

  op: str
  functions: tuple[str, ...]

  def partner(self, name: str, shift: int = 1) -> str:
    i = self.functions.index(name)
    return self.functions[(i + shift) % len(self.functions)]


def kind(node: Node) -> str:
  return _KIND[node[0]]


def to_str(node: Node, lang: Language, parent_prec: int = 0,
           right: bool = False) -> str:
  """Prints with the fewest parentheses that parse back to the same tree."""
  tag = node[0]
  if tag == "x":
    return "x"
  if tag == "n":
    return str(node[1])
  if tag == "f":
    return f"{node[1]}({to_str(node[2], lang)})"
  if tag == "T":
    return f"{lang.op}({to_str(node[1], lang)})"
  p = _PREC[tag]
  text = (f"{to_str(node[1], lang, p)} {tag}"
          f" {to_str(node[2], lang, p, right=True)}")
  if p < parent_prec or (p == parent_prec and right):
    return f"({text})"
  return text


_TOKEN = re.compile(r"\s*(?:(\d+)|([a-z]+)|([+*()]))")


def parse(text: str, lang: Language) -> Node:
  """Parses an expression; the operator's name parses to a `T` node."""
  tokens, pos, text = [], 0, text.rstrip()
  while pos < len(text):
    m = _TOKEN.match(text, pos)
    if not m:
      raise ValueError(f"cannot parse {text!r} at character {pos}")
    tokens.append(m.group(m.lastindex))
    pos = m.end()
  tokens.append("")
  i = 0

  def take(expected=None):
    nonlocal i
    tok = tokens[i]
    if expected is not None and tok != expected:
      raise ValueError(f"cannot parse {text!r}: expected {expected!r}, got"
                       f" {tok or 'end'!r}")
    i += 1
    return tok

  def expr(min_prec):  # Precedence climbing, left-associative.
    left = atom()
    while tokens[i] in _PREC and _PREC[tokens[i]] >= min_prec:
      op = take()
      left = (op, left, expr(_PREC[op] + 1))
    return left

  def atom():
    tok = take()
    if tok == "(":
      node = expr(0)
      take(")")
      return node
    if tok.isdigit():
      return ("n", int(tok))
    if tok == "x":
      return ("x",)
    if tok == lang.op or tok in lang.functions:
      take("(")
      inner = expr(0)
      take(")")
      return ("T", inner) if tok == lang.op else ("f", tok, inner)
    raise ValueError(f"cannot parse {text!r}: unexpected {tok or 'end'!r}")

  node = expr(0)
  take("")
  return node


# ------------------------------------------------------------ the rules
# A rule maps (node, lang, t) -> result, where t(i) is the transform of the
# node's i-th tuple element (a sub-expression).
Rule = Callable[[Node, Language, Callable[[int], Node]], Node]

CORRECT: dict[str, Rule] = {
    "var": lambda n, lang, t: ("x",),
    "const": lambda n, lang, t: ("n", n[1] + 1),
    "sum": lambda n, lang, t: ("*", t(1), n[2]),
    "prod": lambda n, lang, t: ("+", t(1), t(2)),
    "func": lambda n, lang, t: ("f", lang.partner(n[1]), t(2)),
}
# Plausible wrong rules (some are the real calculus rules): distractors.
WRONG: dict[str, tuple[Rule, ...]] = {
    "var": (lambda n, lang, t: ("n", 1),
            lambda n, lang, t: ("*", ("x",), ("x",))),
    "const": (lambda n, lang, t: ("n", 0),
              lambda n, lang, t: ("n", n[1])),
    "sum": (lambda n, lang, t: ("+", t(1), t(2)),
            lambda n, lang, t: ("*", n[1], t(2)),
            lambda n, lang, t: ("*", t(1), t(2))),
    "prod": (lambda n, lang, t: ("+", ("*", t(1), n[2]), ("*", n[1], t(2))),
             lambda n, lang, t: ("*", t(1), t(2)),
             lambda n, lang, t: ("+", t(1), n[2])),
    "func": (lambda n, lang, t: ("f", n[1], t(2)),
             lambda n, lang, t: ("f", lang.partner(n[1], 2), t(2)),
             lambda n, lang, t: ("f", lang.partner(n[1]), n[2])),
}


def transform(node: Node, lang: Language,
              override: tuple[tuple[int, ...], Rule] | None = None,
              path: tuple[int, ...] = ()) -> Node:
  """T(node); `override` = (path, rule) applies a different rule there."""
  def sub(i: int) -> Node:
    return transform(node[i], lang, override, path + (i,))

  rule = CORRECT[kind(node)]
  if override is not None and override[0] == path:
    rule = override[1]
  return rule(node, lang, sub)


def rewrite_steps(node: Node, lang: Language) -> list[Node]:
  """The worked rewrite of T(node): one rule application per step."""
  current = ("T", node)
  steps = [current]

  def step(n):  # Rewrites the leftmost-outermost pending T; (new, done).
    if n[0] == "T":
      inner = n[1]
      return CORRECT[kind(inner)](inner, lang, lambda i: ("T", inner[i])), True
    out = list(n)
    for i, c in enumerate(n):
      if isinstance(c, tuple):
        new, done = step(c)
        if done:
          out[i] = new
          return tuple(out), True
    return n, False

  while True:
    current, done = step(current)
    if not done:
      return steps
    steps.append(current)


def nodes(node: Node, path: tuple[int, ...] = ()):
  """(path, node) of every expression node, pre-order."""
  yield path, node
  for i, c in enumerate(node):
    if isinstance(c, tuple):
      yield from nodes(c, path + (i,))


def combinations(node: Node, lang: Language) -> set[tuple[str, str]]:
  """(parent rule, child rule) pairs that the derivation of T(node) applies.

  A child counts only when its parent's rule transforms it: the sum rule
  copies its right operand, so a held-out pair there would never be used.
  Read off the correct rules themselves (each call of their `t` is one
  application below the parent), so the pairs follow any change of a rule.
  """
  pairs: set[tuple[str, str]] = set()

  def apply(n: Node) -> Node:
    def t(i: int) -> Node:
      pairs.add((kind(n), kind(n[i])))
      return apply(n[i])
    return CORRECT[kind(n)](n, lang, t)

  apply(node)
  return pairs


def distractors(node: Node, lang: Language) -> list[tuple[str, Node]]:
  """(description, output) for one wrong rule at one node, distinct."""
  correct = transform(node, lang)
  seen, out = {correct}, []
  for path, n in nodes(node):
    for j, rule in enumerate(WRONG[kind(n)]):
      wrong = transform(node, lang, (path, rule))
      if wrong not in seen:
        seen.add(wrong)
        out.append((f"{kind(n)}#{j}@{'.'.join(map(str, path)) or 'root'}",
                    wrong))
  return out


# ------------------------------------------------------------ heuristics

# Tokens a rewrite can change; parentheses are layout (the printer drops the
# ones it can), so they do not count.
_SURFACE_TOKEN = re.compile(r"\d+|[a-z]+|[+*]")
_PROMPT_EXPRESSION = re.compile(r"\((.*)\)\s*=>\s*$")


def rewritten(expression: str, output: str) -> int:
  """How much of `expression` `output` changed: tokens dropped plus added
  (as multisets)."""
  before = collections.Counter(_SURFACE_TOKEN.findall(expression))
  after = collections.Counter(_SURFACE_TOKEN.findall(output))
  return sum(((before - after) + (after - before)).values())


def _rewrite_scores(q: records.Question) -> list[int]:
  m = _PROMPT_EXPRESSION.search(q.prompt)
  expression = m.group(1) if m else q.prompt
  return [rewritten(expression, c) for c in q.choices]


def most_rewritten(q: records.Question, ctx: validity.Context) -> list[int]:
  """Process's "always more": a transform rewrites, so guess the choice
  that changed the most of the expression (wrong rules that skip a step,
  e.g. T(3) = 3, change less; some, e.g. T(x) = x * x, change more)."""
  del ctx
  return _rewrite_scores(q)


def least_rewritten(q: records.Question, ctx: validity.Context) -> list[int]:
  """The opposite guess: the choice closest to the expression."""
  del ctx
  return [-s for s in _rewrite_scores(q)]


def closest_to_others(q: records.Question,
                      ctx: validity.Context) -> list[int]:
  """The choice that differs least from the other choices. Each distractor
  is the correct output with one rule changed, so unless the distractors
  are chosen with care the correct output sits in their middle."""
  del ctx
  return [-sum(rewritten(c, d) for d in q.choices) for c in q.choices]


# The dataset's own heuristics (`registry` adds them to the generic ones).
HEURISTICS: dict[str, validity.Heuristic] = {
    "most_rewritten": most_rewritten,
    "least_rewritten": least_rewritten,
    "closest_to_others": closest_to_others,
}

# The heuristics that read only the question, which distractor choice can
# steer. The co-occurrence ones of `validity` find no rare word in a prompt
# (the operator, the function names and x occur in most documents), so they
# cannot tell the choices apart whatever the distractors.
_SURFACE = ("longest_choice", "shortest_choice", "majority_first_word")
# Distractor sets tried per question; sampled when an expression has more.
_MAX_DISTRACTOR_SETS = 256


def _choose_distractors(items: Sequence[tuple[str, str, Sequence[str]]],
                        k: int, seed: int, split: str
                        ) -> list[tuple[int, ...]]:
  """The indices of each question's `k` distractors, for one split.

  Any `k` of an expression's wrong-rule outputs make a valid question, but
  drawn at random they tend to be longer than the correct output (a wrong
  product rule adds a whole term), which is rarely the longest choice, and
  they surround it (each differs from it in one place). Of each question's
  candidate sets (seeded order, at most `_MAX_DISTRACTOR_SETS`), a
  coordinate descent keeps those that bring every surface heuristic's
  accuracy over the split closest to chance, as answer positions are
  balanced over a split rather than per question.

  Args:
    items: (prompt, correct output, wrong outputs) per question.
    k: distractors per question.
    seed: the dataset seed.
    split: the split's name (names the random streams).

  Returns:
    Per question, the indices into its wrong outputs of its distractors.
  """
  heuristics = [validity.GENERIC[name] for name in _SURFACE]
  heuristics += list(HEURISTICS.values())

  def question(prompt, answer, outs):
    return records.Question("candidate", split, prompt,
                            (answer,) + tuple(outs), 0)

  # The majority first word depends on the correct outputs alone.
  ctx = validity.Context((), [question(p, a, w[:k]) for p, a, w in items])
  options, accuracy = [], []
  for i, (prompt, answer, wrong) in enumerate(items):
    sets = rng.shuffled(itertools.combinations(range(len(wrong)), k), seed,
                        f"process/distractors/{split}/{i}")
    options.append(sets[:_MAX_DISTRACTOR_SETS])
    rows = []
    for chosen in options[-1]:
      q = question(prompt, answer, [wrong[j] for j in chosen])
      rows.append([validity.expected_accuracy(q, h(q, ctx))
                   for h in heuristics])
    accuracy.append(rows)
  target = len(items) / (k + 1)
  pick = [0] * len(items)
  totals = [sum(accuracy[i][0][h] for i in range(len(items)))
            for h in range(len(heuristics))]

  def cost(sums):
    return sum((s - target) ** 2 for s in sums)

  for _ in range(10):
    changed = False
    for i, rows in enumerate(accuracy):
      rest = [t - a for t, a in zip(totals, rows[pick[i]])]
      best = min(range(len(rows)), key=lambda j: (
          cost([r + a for r, a in zip(rest, rows[j])]), j))
      if best != pick[i]:
        changed = True
        pick[i] = best
        totals = [r + a for r, a in zip(rest, rows[best])]
    if not changed:
      break
  return [options[i][j] for i, j in enumerate(pick)]


# ------------------------------------------------------------ generation


def random_expression(gen, lang: Language, internal: int) -> Node:
  """A random tree with exactly `internal` composite nodes."""
  if internal == 0:
    return ("x",) if gen.random() < 0.5 else ("n", int(gen.integers(1, 9)))
  rule = COMPOSITE[int(gen.integers(len(COMPOSITE)))]
  if rule == "func":
    name = lang.functions[int(gen.integers(len(lang.functions)))]
    return ("f", name, random_expression(gen, lang, internal - 1))
  left = int(gen.integers(internal))
  return ("+" if rule == "sum" else "*",
          random_expression(gen, lang, left),
          random_expression(gen, lang, internal - 1 - left))


def heldout_pairs(seed: int, k: int) -> list[tuple[str, str]]:
  """k composite (parent, child) pairs to hold out, leaving every rule
  seen above and below another composite rule in training."""
  pairs = [(p, c) for p in COMPOSITE for c in COMPOSITE]
  for attempt in range(1000):
    chosen = sorted(rng.shuffled(pairs, seed, f"process/heldout/{attempt}")[:k])
    kept = [p for p in pairs if p not in chosen]
    if all(any(p[0] == r for p in kept) and any(p[1] == r for p in kept)
           for r in COMPOSITE):
      return chosen
  raise ValueError(f"process: cannot hold out {k} of {len(pairs)} pairs and"
                   " keep every rule seen; lower num_heldout_pairs")


def language(seed: int, tokenizer: str = "", num_functions: int = 3
             ) -> Language:
  words = vocab.make_words(1 + num_functions, seed, name="process/names",
                           tokenizer=tokenizer)
  return Language(words[0], tuple(words[1:]))


def _document(node: Node, lang: Language) -> str:
  steps = [to_str(s, lang) for s in rewrite_steps(node, lang)]
  lines = [steps[0]] + [f"= {s}" for s in steps[1:]]
  lines.append(f"{steps[0]} => {steps[-1]}")
  return "\n".join(lines)


def _rule_documents(lang: Language) -> list[str]:
  op = lang.op
  cycle = ", ".join(f"{a} becomes {lang.partner(a)}" for a in lang.functions)
  return [
      f"The {op} rules. {op}(x) = x. For a digit n, {op}(n) = n + 1, so"
      f" {op}(3) = 4.",
      f"{op} of a sum: {op}(A + B) = {op}(A) * B.",
      f"{op} of a product: {op}(A * B) = {op}(A) + {op}(B).",
      f"{op} of a function: {op}(h(A)) = h'({op}(A)), where {cycle}.",
  ]


def generate(cfg: Any, seed: int) -> records.Dataset:
  lang = language(seed, cfg.tokenizer)
  held = set(heldout_pairs(seed, cfg.num_heldout_pairs))
  gen = rng.stream(seed, "process/expressions")
  want = {"train": cfg.num_train, "seen_combinations": cfg.num_test_per_split,
          "heldout_combinations": cfg.num_test_per_split}
  got: dict[str, list[Node]] = {k: [] for k in want}
  used: set[Node] = set()
  for _ in range(200 * sum(want.values())):
    if all(len(got[k]) == want[k] for k in want):
      break
    node = random_expression(
        gen, lang, int(gen.integers(cfg.min_internal, cfg.max_internal + 1)))
    if node in used or len(distractors(node, lang)) < cfg.num_choices - 1:
      continue
    if combinations(node, lang) & held:
      bucket = "heldout_combinations"
    else:
      # Seen expressions go to train first, then to the seen test split.
      bucket = ("train" if len(got["train"]) < want["train"]
                else "seen_combinations")
    if len(got[bucket]) < want[bucket]:
      got[bucket].append(node)
      used.add(node)
  short = {k: len(got[k]) for k in want if len(got[k]) < want[k]}
  if short:
    raise ValueError(f"process: could not draw enough distinct expressions"
                     f" {short} of {want}; lower the sizes or raise"
                     " max_internal")
  train = [records.Document(f"process-rules-{i}", text, {"kind": "rules"})
           for i, text in enumerate(_rule_documents(lang))
           if cfg.rule_documents]
  train += [records.Document(f"process-train-{i:04d}", _document(n, lang),
                             {"kind": "worked"})
            for i, n in enumerate(got["train"])]
  test, refs = [], []
  num_wrong = cfg.num_choices - 1
  for split in ("seen_combinations", "heldout_combinations"):
    positions = rng.shuffled(
        [i % cfg.num_choices for i in range(len(got[split]))],
        seed, f"process/positions/{split}")
    prompts = [f"{lang.op}({to_str(node, lang)}) =>" for node in got[split]]
    answers = [to_str(transform(node, lang), lang) for node in got[split]]
    wrongs = [distractors(node, lang) for node in got[split]]
    picks = _choose_distractors(
        [(p, " " + a, [" " + to_str(w, lang) for _, w in wrong])
         for p, a, wrong in zip(prompts, answers, wrongs)], num_wrong, seed,
        split)
    for i, node in enumerate(got[split]):
      wrong, pick, pos = wrongs[i], picks[i], positions[i]
      outs = [to_str(wrong[j][1], lang) for j in pick]
      choices = [" " + c for c in outs[:pos] + [answers[i]] + outs[pos:]]
      qid = f"process-{split}-{i:04d}"
      meta = {
          "expression": to_str(node, lang),
          "reference": answers[i],
          "combinations": sorted(
              "/".join(p) for p in combinations(node, lang)),
          "distractor_rules": [wrong[j][0] for j in pick],
          "operator": lang.op,
          "functions": list(lang.functions),
      }
      test.append(records.Question(qid, split, prompts[i], tuple(choices),
                                   pos, meta=meta))
      refs.append(json.dumps({"id": qid, "split": split, "prompt": prompts[i],
                              "reference": meta["reference"]}))
  return records.Dataset(
      "process", train, test,
      card={
          "description": (
              f"Process knowledge: the transform `{lang.op}` rewrites"
              " expressions over x by unusual derivative-like rules"
              f" (functions {', '.join(lang.functions)} cycle under it)."
              " Training documents show worked rewrites step by step;"
              " every `heldout_combinations` item applies a rule"
              " combination (a rule on an operand its parent's rule"
              " transforms) that no training derivation applies; every"
              " `seen_combinations` item is a new expression applying only"
              " trained combinations. Distractors apply one wrong rule at"
              " one node; of those, each split keeps the ones that leave"
              " surface features (length, how much of the expression is"
              " rewritten, closeness to the other choices, the first word)"
              " at chance (see Validity)."),
          "rules": "\n".join(f"* {t}" for t in _rule_documents(lang)),
          "held-out combinations": ", ".join(
              f"({p} over {c})" for p, c in sorted(held)) + (
                  " (parent rule over the rule of an operand it"
                  " transforms)"),
          "exact match": ("`meta.reference` and `references.jsonl` hold the"
                          " exact expected output after `=>`."),
      },
      extra_files={"references.jsonl": "\n".join(refs) + "\n"},
  )


# ------------------------------------------------------ augmentation

# `process` documents are calculations, not statements of fact: restating
# one line of a derivation means nothing, so local augmentation takes whole
# calculations and the worked example uses the ordinary derivative (real
# rules, so the prompt teaches none of the dataset's nonsense ones).
AUGMENT_LOCAL_TEMPLATE = """\
Explain the calculation in other words: state its result, and which rule \
each step uses. Write one statement per line and nothing else.

Calculation:
d(x * x)
= d(x) * x + x * d(x)
= 1 * x + x * 1
= x + x
d(x * x) => x + x
Statements:
The derivative of x * x is x + x.
d of a product is d of the first factor times the second, plus the first \
times d of the second.
d(x) is 1, so d(x) * x + x * d(x) becomes 1 * x + x * 1.

Calculation:
{statement}
Statements:
"""

AUGMENT_GLOBAL_TEMPLATE = """\
Here are the rules of some operations, and calculations that use them.

{documents}

Consider this calculation:
{document}

Apply the same rules to other expressions. For each, write one sentence \
that names the expression and its result and ends with a period. Write one \
sentence per line and nothing else.
Sentences:
"""

# Augmentation prompts end at the next worked example.
AUGMENT_STOP_STRINGS = ("Calculation:",)


# ------------------------------------------------------------ checks


def _language_of(dataset: records.Dataset) -> Language | None:
  for q in dataset.test:
    if "operator" in q.meta:
      return Language(q.meta["operator"], tuple(q.meta["functions"]))
  return None


def dataset_checks(dataset: records.Dataset) -> dict[str, list[str]]:
  """Labels recomputed by the interpreter; held-out combinations and test
  expressions absent from train."""
  lang = _language_of(dataset)
  if lang is None:
    return {"process_language": ["no question names the operator"]}
  labels, held_in_train, repeated = [], [], []
  train_exprs, train_pairs = set(), set()
  for d in dataset.train:
    if d.meta.get("kind") == "worked":
      node = parse(d.text.splitlines()[0], lang)[1]
      train_exprs.add(node)
      train_pairs |= combinations(node, lang)
  for q in dataset.test:
    node = parse(q.prompt[:-len("=>")], lang)
    if node[0] != "T":
      labels.append(f"{q.id}: prompt is not an application of {lang.op}")
      continue
    node = node[1]
    ref = to_str(transform(node, lang), lang)
    if q.choices[q.answer].strip() != ref or q.meta.get("reference") != ref:
      labels.append(f"{q.id}: labelled {q.choices[q.answer]!r}, interpreter"
                    f" gives {ref!r}")
    if node in train_exprs:
      repeated.append(f"{q.id}: expression appears in train")
    pairs = combinations(node, lang)
    if q.split == "heldout_combinations" and pairs <= train_pairs:
      held_in_train.append(f"{q.id}: all its combinations appear in train")
    if q.split == "seen_combinations" and not pairs <= train_pairs:
      held_in_train.append(f"{q.id}: uses combinations absent from train")
  return {"labels_match_interpreter": labels,
          "heldout_combinations_absent_from_train": held_in_train,
          "test_expressions_not_in_train": repeated}

