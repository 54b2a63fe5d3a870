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
pair of adjacent nodes, e.g. (sum, func) in `T(h(x) + 3)`. A seeded subset
of the combinations of composite rules is held out: training documents
(worked rewrites, step by step) never contain them; the `heldout_combinations`
test split uses at least one, `seen_combinations` none (new expressions).

Test prompts are `T(expr) =>`; the 4 choices are the correct output and
outputs with a wrong rule applied at exactly one node (likelihood scoring).
`meta.reference` and `references.jsonl` hold the exact output for
exact-match scoring of generations.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable

from ftgen.data import records
from ftgen.data import rng
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


def combinations(node: Node) -> set[tuple[str, str]]:
  """(parent rule, child rule) pairs of adjacent nodes."""
  return {(kind(n), kind(c)) for _, n in nodes(node)
          for c in n if isinstance(c, tuple)}


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
    if combinations(node) & held:
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
  for split in ("seen_combinations", "heldout_combinations"):
    positions = rng.shuffled(
        [i % cfg.num_choices for i in range(len(got[split]))],
        seed, f"process/positions/{split}")
    for i, node in enumerate(got[split]):
      answer = transform(node, lang)
      dgen = rng.stream(seed, f"process/distractors/{split}/{i}")
      wrong = distractors(node, lang)
      pick = sorted(dgen.choice(len(wrong), cfg.num_choices - 1, replace=False))
      pos = positions[i]
      outs = [to_str(wrong[j][1], lang) for j in pick]
      choices = [" " + c for c in outs[:pos] + [to_str(answer, lang)]
                 + outs[pos:]]
      qid = f"process-{split}-{i:04d}"
      prompt = f"{lang.op}({to_str(node, lang)}) =>"
      meta = {
          "expression": to_str(node, lang),
          "reference": to_str(answer, lang),
          "combinations": sorted("/".join(p) for p in combinations(node)),
          "distractor_rules": [wrong[j][0] for j in pick],
          "operator": lang.op,
          "functions": list(lang.functions),
      }
      test.append(records.Question(qid, split, prompt, tuple(choices), pos,
                                   meta=meta))
      refs.append(json.dumps({"id": qid, "split": split, "prompt": prompt,
                              "reference": meta["reference"]}))
  return records.Dataset(
      "process", train, test,
      card={
          "description": (
              f"Process knowledge: the transform `{lang.op}` rewrites"
              " expressions over x by unusual derivative-like rules"
              f" (functions {', '.join(lang.functions)} cycle under it)."
              " Training documents show worked rewrites step by step;"
              " `heldout_combinations` tests rule combinations never seen"
              " in training, `seen_combinations` new expressions made of"
              " seen ones. Distractors apply one wrong rule at one node."),
          "rules": "\n".join(f"* {t}" for t in _rule_documents(lang)),
          "held-out combinations": ", ".join(
              f"({p} over {c})" for p, c in sorted(held)),
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
      train_pairs |= combinations(node)
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
    pairs = combinations(node)
    if q.split == "heldout_combinations" and pairs <= train_pairs:
      held_in_train.append(f"{q.id}: all its combinations appear in train")
    if q.split == "seen_combinations" and not pairs <= train_pairs:
      held_in_train.append(f"{q.id}: uses combinations absent from train")
  return {"labels_match_interpreter": labels,
          "heldout_combinations_absent_from_train": held_in_train,
          "test_expressions_not_in_train": repeated}

