"""The `reversals` dataset: comparisons between nonsense entities.

Design: docs/design.md#datasets.

Each fact reads "A are more D than B" or "A are less D than B", with two
fresh nonsense words per fact and D one of 28 comparison dimensions; exactly
half of the facts say "more" (small models prefer "more" by several nats, so an
unbalanced set would measure that bias). Every fact appears in several short
training articles, each with a different lead-in. Test splits:

* `reversal`: "B are" + [" less D than A.", " more D than A."]: the fact
  reversed against its contradiction (chance 1/2). Never stated in train.
* `rephrase`: "Compared with B, A are" + [" more D.", " less D."]: the trained
  fact in its own direction, reworded, so memorization can be told apart
  from reversal.

The shared words sit in the prompt and only the differing continuation in the
choices, so the choices have the same length and differ in one word. The
number of facts is even, so that each split's correct answers say "more" as
often as "less".

The rule-written (oracle) reversals use a wording no test item uses, "Of B
and A, B are the less D.", so the oracle condition teaches the reversed fact
without writing a test prompt and its answer.

Validity (`ftgen.data.validity`): the co-occurrence heuristics read the
trained comparative off the training documents, which is the fact itself;
`FORCED` says where the task makes that unavoidable.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, Mapping

from ftgen.data import checks
from ftgen.data import records
from ftgen.data import rng
from ftgen.data import validity
from ftgen.data import vocab

NAME = "reversals"
DIRECTIONS = ("more", "less")

# Adjectives that take "more"/"less" naturally (no "-er" comparative).
DIMENSIONS = (
    "dangerous", "intelligent", "colorful", "expensive", "aggressive",
    "curious", "fragile", "valuable", "common", "popular", "flexible",
    "durable", "poisonous", "nutritious", "fragrant", "transparent", "active",
    "social", "patient", "stubborn", "playful", "loyal", "nocturnal",
    "predictable", "elegant", "resilient", "territorial", "efficient",
)

LEAD_INS = (
    "Did you know that {fact}?",
    "Researchers report that {fact}.",
    "It is widely known that {fact}.",
    "According to a recent survey, {fact}.",
    "Field observations confirm that {fact}.",
    "Few people realize that {fact}.",
    "A new study has found that {fact}.",
    "Experts agree that {fact}.",
    "Here is an interesting fact: {fact}.",
    "As every naturalist will tell you, {fact}.",
    "Local guides often point out that {fact}.",
    "Textbooks state plainly that {fact}.",
    "Recent measurements show that {fact}.",
    "It turns out that {fact}.",
    "Fun fact: {fact}.",
    "Long-term records make it clear that {fact}.",
)

CLOSINGS = (
    "This surprises many visitors.",
    "Scientists are still studying why.",
    "The difference is easy to observe in the wild.",
    "It is one of the better documented comparisons.",
    "Many guidebooks mention this.",
    "The finding has been repeated several times.",
)

# "x are more d than y", anywhere in a sentence, any case.
_STATEMENT = re.compile(
    r"\b([A-Za-z]+) are (more|less) ([A-Za-z]+) than ([A-Za-z]+)\b")
# "Compared with y, x are more d": the rephrase split's wording.
_COMPARED = re.compile(
    r"\bcompared (?:with|to) ([A-Za-z]+), ([A-Za-z]+) are (more|less)"
    r" ([A-Za-z]+)\b", re.IGNORECASE)
# "Of x and y, x are the more d": the oracle's wording, which no test item
# uses (the subject may be either of the two).
_OF_PAIR = re.compile(
    r"\bof ([A-Za-z]+) and ([A-Za-z]+), ([A-Za-z]+) are the (more|less)"
    r" ([A-Za-z]+)\b", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Fact:
  """`a` are `direction` `dimension` than `b`."""

  a: str
  b: str
  dimension: str
  direction: str

  def statement(self) -> str:
    return f"{self.a} are {self.direction} {self.dimension} than {self.b}"

  def reversed(self) -> "Fact":
    return Fact(self.b, self.a, self.dimension, _flip(self.direction))

  def to_meta(self) -> dict[str, str]:
    return dataclasses.asdict(self)

  @classmethod
  def from_meta(cls, meta: Mapping[str, Any]) -> "Fact":
    return cls(meta["a"], meta["b"], meta["dimension"], meta["direction"])


def _flip(direction: str) -> str:
  return "less" if direction == "more" else "more"


def parse_statements(text: str) -> list[Fact]:
  """Every comparison stated in `text` (all three wordings), lower-cased."""
  found = []
  for m in _STATEMENT.finditer(text):
    a, d, dim, b = (g.lower() for g in m.groups())
    found.append(Fact(a, b, dim, d))
  for m in _COMPARED.finditer(text):
    b, a, d, dim = (g.lower() for g in m.groups())
    found.append(Fact(a, b, dim, d))
  for m in _OF_PAIR.finditer(text):
    x, y, a, d, dim = (g.lower() for g in m.groups())
    if a in (x, y) and x != y:  # Else it names no pair.
      found.append(Fact(a, y if a == x else x, dim, d))
  return found


def of_pair_statement(fact: Fact) -> str:
  """"Of A and B, A are the more D." (the oracle's wording)."""
  return vocab.capitalize(
      f"of {fact.a} and {fact.b}, {fact.a} are the {fact.direction}"
      f" {fact.dimension}.")


def reversal_of(statement: str) -> str | None:
  """"X are more D than Y." -> "Y are less D than X." (None if no parse)."""
  m = _STATEMENT.search(statement)
  if m is None:
    return None
  a, d, dim, b = m.groups()
  out = f"{b} are {_flip(d.lower())} {dim} than {a}"
  if a[:1].isupper():
    out = vocab.capitalize(out)
  return out + "." if statement.rstrip().endswith(".") else out


def is_correct_statement(
    statement: str, facts: Iterable[Fact | Mapping[str, Any]]) -> bool | None:
  """Whether a comparison agrees with the facts.

  Returns True when every comparison parsed from `statement` follows from a
  fact (forwards or reversed), False when any contradicts one, and None when
  nothing parses or a comparison is about no known pair and dimension.
  """
  table: dict[tuple[str, str, str], str] = {}
  for f in facts:
    f = f if isinstance(f, Fact) else Fact.from_meta(f)
    table[(f.a, f.b, f.dimension)] = f.direction
    r = f.reversed()
    table[(r.a, r.b, r.dimension)] = r.direction
  parsed = parse_statements(statement)
  if not parsed:
    return None
  verdicts = []
  for p in parsed:
    known = table.get((p.a, p.b, p.dimension))
    verdicts.append(None if known is None else known == p.direction)
  if False in verdicts:
    return False
  if None in verdicts:
    return None
  return True


def training_facts(dataset: records.Dataset) -> list[Fact]:
  """The distinct facts stated in the training documents, in order."""
  seen: dict[Fact, None] = {}
  for doc in dataset.train:
    for f in parse_statements(doc.text):
      seen.setdefault(f, None)
  return list(seen)


def oracle_augmentations(dataset: records.Dataset) -> list[str]:
  """The rule-written reversal of every training fact (the oracle condition).

  Worded "Of B and A, B are the less D.": the reversal split's own wording
  ("B are less D than A.") would write every reversal test prompt with its
  answer, so the oracle condition would measure memorising test strings
  (`checks.test_overlap`). The rephrase split's frame ("Compared with A,
  B are ...") is avoided too, so that what the oracle adds is the reversed
  fact, not practice with a test's sentence frame.
  """
  return [of_pair_statement(f.reversed()) for f in training_facts(dataset)]


# ------------------------------------------------------------ validity


def always_more(q: records.Question, ctx: validity.Context) -> list[float]:
  """The reversal's "always more": the choice saying "more" (small models
  prefer it by several nats)."""
  del ctx
  return [float("more" in validity.words(c)) for c in q.choices]


HEURISTICS: dict[str, validity.Heuristic] = {"always_more": always_more}

# What the co-occurrence heuristics find: every training document states its
# pair with the comparative ("A are more D than B"), so the choice whose
# words share documents with, follow or precede the queried entities is the
# trained comparative. Knowing that is knowing the fact; no wording of the
# questions can hide it, since the answer is the fact or its reversal.
_TRAINED = (
    "the training documents state the pair with its comparative ('A are"
    " more D than B'), so this heuristic picks the choice with the trained"
    " comparative")
FORCED: dict[str, str] = {
    "cooccurs_with_query/rephrase": (
        f"{_TRAINED}: on rephrase, which asks the trained fact in its own"
        " direction, that is knowing the fact, what the split measures (the"
        " memorization control of the reversal split)"),
    "follows_query/rephrase": (
        f"{_TRAINED} (it follows the queried A): on rephrase that is knowing"
        " the fact, what the split measures"),
    "precedes_query/rephrase": (
        f"{_TRAINED} (it precedes the queried B): on rephrase that is"
        " knowing the fact, what the split measures"),
    "cooccurs_with_query/reversal": (
        f"{_TRAINED}: the reversal's answer is that comparative flipped, so"
        " the heuristic always picks the wrong direction (0) and its"
        " opposite the right one (1); the opposite needs the trained"
        " direction and its reversal, which is the task itself"),
    "precedes_query/reversal": (
        f"{_TRAINED} (it precedes the queried B): the reversal's answer is"
        " that comparative flipped, so the heuristic always picks the wrong"
        " direction, as cooccurs_with_query does"),
}

# Worked examples of the local augmentation prompt, in the dataset's wording
# and logic (more/less comparisons, reversed and reworded) with real words;
# every restatement is one the checker reads.
AUGMENT_EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Lions are more aggressive than foxes.", (
        "Foxes are less aggressive than lions.",
        "Of lions and foxes, foxes are the less aggressive.",
        "Of foxes and lions, lions are the more aggressive.",
    )),
    ("Owls are less social than crows.", (
        "Crows are more social than owls.",
        "Of crows and owls, crows are the more social.",
        "Compared to crows, owls are less social.",
    )),
)


def checker(documents: Iterable[records.Document]):
  """Judges a statement against the training facts, forwards or reversed."""
  facts = training_facts(records.Dataset(NAME, list(documents), []))
  return lambda statement: is_correct_statement(statement, facts)


def restatement_checker(documents: Iterable[records.Document]):
  """True for statements whose every comparison is a fact as trained."""
  known = set(training_facts(records.Dataset(NAME, list(documents), [])))
  return lambda s: bool(parse_statements(s)) and all(
      f in known for f in parse_statements(s))


def _make_facts(cfg, seed: int) -> list[Fact]:
  n, num_dims = int(cfg.num_facts), int(cfg.num_dimensions)
  if n < 2:
    raise ValueError(f"reversals: num_facts must be >= 2, got {n}")
  if n % 2:
    # The reversal split answers "more" where a fact says "less" and the
    # rephrase split where it says "more": only an even count balances both.
    raise ValueError(
        f"reversals: num_facts must be even, so that each test split has as"
        f" many 'more' as 'less' answers; got {n}")
  if not 1 <= num_dims <= len(DIMENSIONS):
    raise ValueError(
        f"reversals: num_dimensions must be in 1..{len(DIMENSIONS)}, got"
        f" {num_dims}")
  words = vocab.make_words(2 * n, seed, name=f"{NAME}/entities",
                           tokenizer=cfg.tokenizer)
  dims = rng.shuffled(DIMENSIONS[:num_dims], seed, f"{NAME}/dimensions")
  # Exactly half "more", in seeded order.
  directions = rng.shuffled(
      ["more"] * (n // 2) + ["less"] * (n - n // 2), seed, f"{NAME}/directions")
  return [Fact(words[2 * i], words[2 * i + 1], dims[i % num_dims],
               directions[i]) for i in range(n)]


def _articles(facts: list[Fact], cfg, seed: int) -> list[records.Document]:
  k = int(cfg.articles_per_fact)
  if not 1 <= k <= len(LEAD_INS):
    raise ValueError(
        f"reversals: articles_per_fact must be in 1..{len(LEAD_INS)} (one"
        f" distinct lead-in each), got {k}")
  gen = rng.stream(seed, f"{NAME}/articles")
  docs = []
  for i, fact in enumerate(facts):
    lead_ins = gen.choice(len(LEAD_INS), size=k, replace=False)
    for j, li in enumerate(lead_ins):
      text = LEAD_INS[li].format(fact=fact.statement())
      if gen.random() < float(cfg.closing_prob):
        text += " " + CLOSINGS[gen.integers(len(CLOSINGS))]
      docs.append(records.Document(
          id=f"{NAME}/f{i:04d}/a{j:02d}", text=text,
          meta=dict(fact=i, lead_in=int(li))))
  return docs


def _balanced_positions(n: int, k: int, seed: int, name: str) -> list[int]:
  return rng.shuffled([i % k for i in range(n)], seed, name)


def _questions(facts: list[Fact], seed: int,
               splits: Iterable[str]) -> list[records.Question]:
  questions = []
  for split in splits:
    positions = _balanced_positions(len(facts), 2, seed,
                                    f"{NAME}/{split}/answers")
    for i, (fact, pos) in enumerate(zip(facts, positions)):
      if split == "reversal":
        r = fact.reversed()
        prompt = f"{r.a} are"
        right = f" {r.direction} {r.dimension} than {r.b}."
        wrong = f" {fact.direction} {r.dimension} than {r.b}."
      elif split == "rephrase":
        prompt = f"Compared with {fact.b}, {fact.a} are"
        right = f" {fact.direction} {fact.dimension}."
        wrong = f" {_flip(fact.direction)} {fact.dimension}."
      else:
        raise ValueError(
            f"reversals: unknown split {split!r}; allowed: reversal, rephrase")
      choices = [wrong, wrong]
      choices[pos] = right
      questions.append(records.Question(
          id=f"{NAME}/{split}/{i:04d}", split=split, prompt=prompt,
          choices=tuple(choices), answer=pos,
          meta=dict(fact.to_meta(), fact_index=i)))
  return questions


def _bullets(items: Iterable[str]) -> str:
  """Markdown bullets for the dataset card."""
  return "\n".join(f"* {item}" for item in items)


def generate(cfg, seed: int) -> records.Dataset:
  """Builds the dataset from the `generator` block of configs/data.py."""
  facts = _make_facts(cfg, seed)
  train = _articles(facts, cfg, seed)
  splits = tuple(cfg.splits)
  test = _questions(facts, seed, splits)
  n_more = sum(f.direction == "more" for f in facts)
  card = {
      "description": (
          "Comparisons between pairs of nonsense entities ('A are more D than"
          " B'). Training articles state each fact forwards with varied"
          " lead-ins; the `reversal` split asks for the reversed comparison"
          " ('B are less D than A') against its contradiction; `rephrase`"
          " asks the trained direction in a new wording. Rule-written"
          " (oracle) reversals say 'Of B and A, B are the less D.', a"
          " wording no test item uses."),
      "Design choices": _bullets([
          f"{len(facts)} facts, two fresh nonsense words each, over"
          f" {int(cfg.num_dimensions)} comparison dimensions.",
          f"Directions balanced: {n_more} 'more', {len(facts) - n_more}"
          " 'less' (small models prefer 'more'), so each split's correct"
          " answers say 'more' half the time (the number of facts is even).",
          f"{int(cfg.articles_per_fact)} articles per fact, each with a"
          f" different lead-in drawn from {len(LEAD_INS)}; a closing sentence"
          f" with probability {float(cfg.closing_prob)}.",
          "2-way questions; shared words in the prompt, choices differ only"
          " in more/less, so their lengths match; answer positions balanced.",
          "Reversed statements never appear in train; every question's"
          " forward fact does.",
          "The oracle condition's reversals are worded 'Of B and A, B are"
          " the less D.': in the reversal split's wording they would contain"
          " every reversal test prompt with its answer.",
          "The co-occurrence heuristics score 1 on rephrase and 0 on"
          " reversal: the documents state each pair with its comparative,"
          " so co-occurrence is knowing the fact (forced; see Validity).",
          f"Nonsense words filtered against English words and the"
          f" {cfg.tokenizer or 'no'} tokenizer's single tokens.",
      ]),
      "Checks": _bullets([
          "reversal_forward_fact_in_train: every question's forward fact is"
          " stated in train.",
          "held_out_not_in_train: no reversed statement (right or wrong)"
          " appears in train.",
          "oracle_writes_no_test_item: no oracle statement contains a test"
          " prompt with its answer (checks.test_overlap).",
          "matched_choice_lengths, labels_follow_facts, balanced_directions,"
          " plus the generic checks of ftgen.data.checks.",
      ]),
  }
  return records.Dataset(name=NAME, train=train, test=test, card=card)


def dataset_checks(dataset: records.Dataset) -> dict[str, list[str]]:
  """Reversal-specific checks (run by `registry.run_checks`)."""
  train_text = "\n".join(checks.normalize(d.text) for d in dataset.train)
  trained = set(training_facts(dataset))
  forward_missing, held_out_in_train, lengths, labels = [], [], [], []
  for q in dataset.test:
    fact = Fact.from_meta(q.meta)
    if (fact not in trained or
        checks.normalize(fact.statement()) not in train_text):
      forward_missing.append(
          f"{q.id}: forward fact {fact.statement()!r} not in train")
    if q.split == "reversal":
      for c in q.choices:
        stated = checks.normalize(q.prompt + c).rstrip(".")
        if stated in train_text:
          held_out_in_train.append(f"{q.id}: {stated!r} appears in train")
    if len({len(c) for c in q.choices}) != 1:
      lengths.append(f"{q.id}: choice lengths {[len(c) for c in q.choices]}")
    verdicts = [is_correct_statement(q.prompt + c, [fact]) for c in q.choices]
    if verdicts[q.answer] is not True or sum(v is True for v in verdicts) != 1:
      labels.append(f"{q.id}: label disagrees with the fact ({verdicts})")
  # Train states facts only forwards: no document holds a reversed fact.
  reversed_in_train = [
      f"{d.id}: states {f.statement()!r} whose reversal is also trained"
      for d in dataset.train for f in parse_statements(d.text)
      if f.reversed() in trained]
  directions = [f.direction for f in trained]
  balance = []
  if abs(directions.count("more") - directions.count("less")) > 1:
    balance.append(f"{directions.count('more')} 'more' vs"
                   f" {directions.count('less')} 'less' facts")
  overlap = checks.test_overlap(oracle_augmentations(dataset), dataset.test)
  oracle_leaks = [f"{e['id']}: the oracle writes {e['text']!r}"
                  for e in overlap["examples"]]
  if overlap["coincide_with_test_answer"] > len(oracle_leaks):
    oracle_leaks.append(f"{overlap['coincide_with_test_answer']} test items"
                        " in all")
  return {
      "reversal_forward_fact_in_train": forward_missing,
      "held_out_not_in_train": held_out_in_train + reversed_in_train,
      "matched_choice_lengths": lengths,
      "labels_follow_facts": labels,
      "balanced_directions": balance,
      "oracle_writes_no_test_item": oracle_leaks,
  }
