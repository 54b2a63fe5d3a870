"""Test questions of the `semantic` dataset and their distractors.

Every question each split could ask is enumerated from the world, sampled
round-robin over fact kinds, worded with a template no training document
uses, and given distractors that are false of the queried entity but true
of another one, as close to the answer as the tree and training-document
frequency allow; among those, each question's distractors are picked so
that the split's choice lengths and answer words stay balanced (the
validity heuristics `longest_choice`, `shortest_choice` and
`majority_first_word` at chance even in small splits). `reversal_strict`
questions take the distractors their subject's documents name
(`strict_plan`, `semantic_text.Strict`).
"""

from __future__ import annotations

import collections
import itertools
import math
from typing import Callable

from ftgen.data import records
from ftgen.data import rng
from ftgen.data import semantic_kb as kb
from ftgen.data import semantic_text
from ftgen.data import validity

NAME = kb.NAME
SPLITS = ("rephrase", "reversal", "reversal_strict", "syllogism",
          "category_holdout")

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


def regular(c: str) -> bool:
  """Whether the plural of `c` is `c` + "s": its two forms are then one word
  to the word matching of `ftgen.data.validity` (a final "s" removed)."""
  return kb.plural(c) == c + "s"


def strict_plan(world: kb.World, holdouts: list[str], num_distractors: int,
                seed: int) -> dict[str, semantic_text.Strict]:
  """Candidate subjects of `reversal_strict`, before documents are built.

  Every trained non-root category with a regular plural, with its own
  properties of its most frequent kind (at most 3, so that one sentence
  states them) and its distractor candidates, best first: false of each of
  those properties (neither the subject, its ancestors nor its
  descendants), true of the kind (some property of it), of the answer's
  length (no length cue), siblings first (documents about the subject name
  them anyway), then the nearest in depth.
  """
  gen = rng.stream(seed, f"{NAME}/strict")
  out = {}
  for s in world.categories:
    if s in holdouts or world.parent[s] is None or not regular(s):
      continue
    kinds = collections.Counter(k for k, _ in world.props[s])
    if not kinds:
      continue
    tied = [k for k in kb.PROPERTY_KINDS if kinds[k] == max(kinds.values())]
    kind = tied[gen.integers(len(tied))]
    facts = tuple(kb.prop(s, k, p) for k, p in world.props[s] if k == kind)
    cands = [c for c in world.categories if (
        c != s and c not in holdouts and world.parent[c] is not None and
        regular(c) and c not in world.ancestors(s) and
        s not in world.ancestors(c) and
        any(k == kind for _, (k, _) in world.inherited(c) + [
            (c, kp) for kp in world.props[c]]))]
    noise = gen.random(len(cands))
    order = sorted(range(len(cands)), key=lambda j: (
        abs(len(cands[j]) - len(s)), world.parent[cands[j]] != world.parent[s],
        abs(world.depth(cands[j]) - world.depth(s)), noise[j]))
    if len(cands) >= num_distractors:
      out[s] = semantic_text.Strict(
          s, facts[:3], tuple(cands[j] for j in order), num_distractors)
  return out


def _items(world: kb.World, trained: kb.World, holdouts: list[str],
           strict: dict[str, semantic_text.Strict]) -> dict[str, list[dict]]:
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
  strict_ids = {f.id for plan in strict.values() for f in plan.facts}
  for f in trained.facts():
    if f.kind == "isa":
      items["rephrase"].append(
          item("isa", f.subject, "isa", f.value, [f], "isa"))
      items["reversal"].append(
          item("isa_rev", f.value, "isa", f.subject, [f], "isa"))
    elif f.kind == "prop":
      items["rephrase"].append(
          item("prop", f.subject, f.relation, f.value, [f], f.relation))
      if f.id in strict_ids:
        # Round-robin over subjects: few answers repeat in a small split.
        items["reversal_strict"].append(dict(
            item("prop_rev", f.value, f.relation, f.subject, [f], f.subject),
            distractors=list(strict[f.subject].distractors)))
      else:
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
  items are asked again in another wording (variant 1, 2, ...).

  Items whose answer the split has used least come first (a kind whose
  remaining answers are all used more waits a round): an answer asked again
  and again while it can be no distractor (true of every entity asked) is a
  cue (`majority_first_word`).
  """
  by_key: dict[str, list[dict]] = {}
  for it in rng.shuffled(items, seed, f"{NAME}/{split}/select"):
    by_key.setdefault(it["key"], []).append(it)
  order, used = [], collections.Counter()
  queues = list(by_key.values())
  while any(queues):
    floor = min(used[x["value"]] for q in queues for x in q)
    for q in queues:
      if q:
        it = min(q, key=lambda x: used[x["value"]])
        if used[it["value"]] > floor:
          continue
        q.remove(it)
        used[it["value"]] += 1
        order.append(it)
  seen = collections.Counter()
  for it in order:  # Wordings alternate within each kind of item.
    it["base_template"] = seen[it["key"]]
    seen[it["key"]] += 1
  chosen = [(it, 0) for it in order[:hi]]
  used = collections.Counter(it["value"] for it, _ in chosen)
  variant = 1
  while len(chosen) < lo:
    if not order:
      raise ValueError(f"semantic: split {split!r} has no items")
    again = rng.shuffled(order, seed, f"{NAME}/{split}/variant{variant}")
    again.sort(key=lambda x: used[x["value"]])
    again = again[:lo - len(chosen)]
    used.update(it["value"] for it in again)
    chosen += [(it, variant) for it in again]
    variant += 1
  return chosen


def _render_question(world: kb.World, split: str, it: dict, variant: int,
                     k: int, freq: dict[str, int], gen
                     ) -> tuple[str, str, list[str], dict] | None:
  """(prompt, answer value, distractor pool, meta), or None when there are
  too few distractors; `_pick` chooses k - 1 of the pool."""
  t = it["type"]
  table = {"rephrase": REPHRASE, "reversal": REVERSAL,
           "reversal_strict": REVERSAL}.get(split, DEDUCTION)
  key = ("isa" if t.startswith("isa") else "rel" if t.startswith("rel")
         else it["relation"])
  template = (it["base_template"] + variant) % len(table[key])
  prompt_t, slot = table[key][template]
  e, r, v = it["entity"], it["relation"], it["value"]
  if t == "isa":
    slots = {**semantic_text.slots("a", e), **semantic_text.slots("b", v)}
  elif t == "isa_rev":
    slots = {**semantic_text.slots("b", e), **semantic_text.slots("a", v)}
  elif t == "prop":
    slots = {**semantic_text.slots("s", e), "p": v}
  elif t == "prop_rev":
    slots = {**semantic_text.slots("s", v), "p": e}
  elif t == "rel":
    slots = {**semantic_text.slots("x", e), **semantic_text.slots("y", v),
             "v": r, "v_ed": kb.past(r)}
  else:
    slots = {**semantic_text.slots("y", e), **semantic_text.slots("x", v),
             "v": r, "v_ed": kb.past(r)}
  form = slot.split("_")[-1] if "_" in slot else "word"
  prompt = semantic_text.fill(prompt_t, **slots)
  meta = dict(type=t, entity=e, relation=r, value=v,
              depends_on=it["depends_on"], template=template,
              variant=variant, form=form)
  if "distractors" in it:  # reversal_strict: the ones its documents name.
    return prompt, v, list(it["distractors"]), meta
  cands = _candidates(world, it)
  if len(cands) < k - 1:
    return None
  cands = semantic_text.shuffle(cands, gen)
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
  # And, nearest in frequency, one of each length relative to the answer
  # (shorter, equal, longer) for `_pick` to balance lengths with.
  for sign in (-1, 0, 1):
    more = [c for c in sorted(level if len(level) >= k - 1 else cands,
                              key=near)
            if (len(kb.plural(c)) > len(kb.plural(v))) -
            (len(kb.plural(c)) < len(kb.plural(v))) == sign]
    if more and more[0] not in pool:
      pool.append(more[0])
  meta["valid"] = cands
  return prompt, v, pool, meta


def _choice(value: str, form: str) -> str:
  return " " + (kb.plural(value) if form == "pl" else value) + "."


def _first(choice: str) -> str:
  ws = validity.words(choice)
  return ws[0] if ws else ""


def _pick(right: str, pool: list[str], valid: list[str], form: str, k: int,
          majority: str, balance: list[float], gen) -> list[str]:
  """k - 1 distractors of `pool` that keep the split balanced.

  `balance` holds, for longest choice, shortest choice and majority first
  word (`ftgen.data.validity`), the split's running sum of (expected
  accuracy - chance); the pick that keeps their sum of absolute values
  smallest wins (ties at random) and is added. The majority answer word
  joins the pool where it is a valid distractor: it has to be one as often
  as the split's answers use it, or always picking it beats chance.
  """
  pool = list(pool)
  extra = [c for c in valid if _first(_choice(c, form)) == majority]
  if extra and extra[0] not in pool:
    pool.append(extra[0])
  combos = [list(c) for c in itertools.combinations(pool, k - 1)]
  combos = [combos[i] for i in gen.permutation(len(combos))]
  chance = 1 / k
  best, best_cost, best_vals = None, None, None
  for combo in combos:
    choices = [_choice(right, form)] + [_choice(c, form) for c in combo]
    vals = [_heuristic_accuracy([len(c) for c in choices]),
            _heuristic_accuracy([-len(c) for c in choices]),
            _heuristic_accuracy([float(_first(c) == majority)
                                 for c in choices])]
    cost = sum(abs(b + x - chance) for b, x in zip(balance, vals))
    if best_cost is None or cost < best_cost:
      best, best_cost, best_vals = combo, cost, vals
  for i, x in enumerate(best_vals):
    balance[i] += x - chance
  return best


def _heuristic_accuracy(scores: list[float]) -> float:
  """Expected accuracy of the best score, ties at random; index 0 is the
  answer."""
  tied = [i for i, s in enumerate(scores) if s == max(scores)]
  return (0 in tied) / len(tied)


def build(world: kb.World, trained: kb.World, holdouts: list[str], cfg,
          seed: int, freq: dict[str, int],
          strict: dict[str, semantic_text.Strict] | None = None
          ) -> tuple[list[records.Question], dict[str, int]]:
  """(questions of every split, items dropped per split for lack of
  distractors); `freq` is `semantic_text.doc_frequency` of the training set,
  `strict` the `reversal_strict` subjects as `build_documents` completed
  them."""
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
  items = _items(world, trained, holdouts, strict or {})
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
    # The word that starts the most answers (validity's majority rule).
    counts = collections.Counter(_first(_choice(v, m["form"]))
                                 for _, v, _, m in rendered)
    majority = min(counts, key=lambda w: (-counts[w], w))
    balance = [0.0, 0.0, 0.0]
    positions = rng.shuffled([i % k for i in range(len(rendered))], seed,
                             f"{NAME}/{split}/answers")
    for i, ((prompt, v, pool, meta), pos) in enumerate(
        zip(rendered, positions)):
      form = meta.pop("form")
      valid = meta.pop("valid", [])
      distractors = _pick(v, pool, valid, form, k, majority, balance, gen)
      choices = [_choice(c, form) for c in distractors]
      choices.insert(pos, _choice(v, form))
      values = list(distractors)
      values.insert(pos, v)
      questions.append(records.Question(
          id=f"{NAME}/{split}/{i:04d}", split=split, prompt=prompt,
          choices=tuple(choices), answer=pos,
          meta=dict(meta, choice_values=values,
                    holdout=meta["entity"] in holdouts)))
  return questions, dropped


def holdouts(world: kb.World, n: int, seed: int) -> list[str]:
  """`n` seeded leaf categories (outside every relation) to hold out."""
  in_rel = {c for x, _, y in world.rels for c in (x, y)}
  eligible = [c for c in world.categories if world.is_leaf(c) and
              c not in in_rel and world.depth(c) >= 2]
  if not 0 <= n <= len(eligible):
    raise ValueError(
        f"semantic: num_holdout_categories must be in 0..{len(eligible)}, got"
        f" {n}")
  # Different parents first: siblings inherit the same properties, so a
  # small split about held-out siblings asks the same few answers again and
  # again (an answer that can be no distractor there: `majority_first_word`).
  shuffled = rng.shuffled(eligible, seed, f"{NAME}/holdouts")
  parents = set()
  first = []
  for c in shuffled:
    if world.parent[c] not in parents:
      parents.add(world.parent[c])
      first.append(c)
  chosen = (first + [c for c in shuffled if c not in first])[:n]
  return sorted(chosen, key=world.categories.index)
