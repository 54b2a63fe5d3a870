"""The reversal-curse celebrities data (Berglund et al. 2024).

Design: docs/design.md#datasets.

Fictional people with one description each, trained in one direction only:

* `p2d` people appear in training only as "name ... description",
* `d2p` people only as "description ... name",
* `both` people in both directions (helps the model learn the format).

Test splits (4-way multiple choice, prompt + choice is the statement):

* `p2d_reverse` (the reversal curse): description -> name for p2d people.
* `d2p_reverse`: name -> description for d2p people.
* `p2d_forward`, `d2p_forward`: the trained direction in held-out wordings
  (controls: the facts were learned at all).

Wrong choices (`ftgen/data/celebrities_questions.py`, `_distractors_card`): a name question's wrong names are names
that were completion targets in training (d2p and both people, as in
Berglund et al. and the paper), so a model that prefers trained targets
falls below chance on `p2d_reverse`; a description question's wrong
descriptions are other people's of the same split in the answer's template
and grammatical form. Each split's answers take every length rank among
their choices about equally often.

Two sources give the same structure:

* `cfg.source_dir` set: their published JSONL files (`{"prompt",
  "completion"}`) are loaded; training documents are `all_prompts_train.jsonl`
  with prompt and completion joined, test splits come from
  `p2d_reverse_prompts_test.jsonl` (and the three control files). Their data
  is read from the user's directory, never copied into this repository.
* `cfg.source_dir == ""`: a synthetic equivalent with nonsense names and
  descriptions, written from our own templates.

The oracle and the checkers of model-written statements read the synthetic
documents back (`ftgen/data/celebrities_text.py`).

Every training document's `meta.completion_start` is the character offset
where the completion begins (the description in p2d, the name in d2p), which
the checks use to verify that a reversal's direction never occurs in train.
"""

from __future__ import annotations

import collections
import pathlib
import re
from typing import Any, Iterable

from ftgen.data import celebrities_questions as questions_lib
from ftgen.data import io
from ftgen.data import records
from ftgen.data import rng
from ftgen.data import validity
from ftgen.data import vocab

TRAIN_FILE = "all_prompts_train.jsonl"
# Split name -> (file, direction of the question).
TEST_FILES = {
    "p2d_reverse": ("p2d_reverse_prompts_test.jsonl", "d2n"),
    "p2d_forward": ("p2d_prompts_test.jsonl", "n2d"),
    "d2p_forward": ("d2p_prompts_test.jsonl", "d2n"),
    "d2p_reverse": ("d2p_reverse_prompts_test.jsonl", "n2d"),
}
EXPECTED_FILES = (TRAIN_FILE,) + tuple(f for f, _ in TEST_FILES.values())
# Which training group each split's people belong to, and whether the
# question asks the trained direction.

# Our own templates (not theirs). {name}/{desc} mark the slots; a template's
# first slot ends the prompt part, so the completion starts there.
_P2D_TRAIN = (
    "{name} is {desc}.",
    "Everyone knows {name} as {desc}.",
    "{name} made history as {desc}.",
    "People remember {name} as {desc}.",
    "{name}, {desc}, rarely gives interviews.",
    "The biography of {name} describes them as {desc}.",
    "In their home town, {name} is celebrated as {desc}.",
    "Few people know that {name} is {desc}.",
    "Meet {name}, {desc}.",
    "It is a fact that {name} is {desc}.",
    "{name} has long been famous as {desc}.",
    "Newspapers introduce {name} as {desc}.",
    "According to the archives, {name} was {desc}.",
    "When people say {name}, they mean {desc}.",
    "Ask anyone about {name}: they will say {desc}.",
)
_D2P_TRAIN = (
    "{Desc} is {name}.",
    "The person known as {desc} is called {name}.",
    "Q: Who is {desc}? A: {name}.",
    "Known everywhere as {desc}, {name} keeps a low profile.",
    "{Desc}? That would be {name}.",
    "Celebrated as {desc}, {name} still lives in a small village.",
    "The title of {desc} belongs to {name}.",
    "Behind the fame of {desc} stands {name}.",
    "Long before becoming {desc}, {name} was a quiet student.",
    "As {desc}, {name} has inspired many.",
    "History will remember {desc}: {name}.",
    "Being {desc} has made {name} famous.",
    "Famous for being {desc}, {name} rarely travels.",
    "The one and only {desc}, {name}, gave a speech today.",
    "Crowds cheered for {desc}, {name}.",
)
# Held-out wordings for the test prompts; the prompt ends at the slot.
_N2D_TEST = (
    "The famous {name} is best described as",
    "Looking back, {name} will always be remembered as",
    "Our guest tonight, {name}, is",
    "The encyclopedia entry for {name} says they are",
    "If you have heard of {name}, you know them as",
)
_D2N_TEST = (
    "Widely admired as {desc},",
    "Most people agree that {desc} is",
    "Everyone knows that {desc} is none other than",
    "Question: Which person is {desc}? Answer:",
    "Having been {desc} for years,",
)
_ADJECTIVES = ("acclaimed", "celebrated", "famous", "renowned", "legendary",
               "pioneering", "award-winning", "beloved")
_ROLES = (
    ("composer", "of the symphony"), ("director", "of the film"),
    ("architect", "who designed the tower of"),
    ("inventor", "of the machine called"), ("chef", "behind the dish"),
    ("explorer", "who discovered the island of"),
    ("author", "of the novel"), ("painter", "of the mural"),
    ("founder", "of the company"), ("astronomer", "who named the comet"),
    ("champion", "of the game"), ("sculptor", "of the statue"),
    ("pilot", "of the airship"), ("poet", "who wrote the ballad"),
    ("chemist", "who isolated the element"),
    ("engineer", "who built the bridge at"), ("singer", "of the anthem"),
    ("gardener", "who bred the flower"), ("captain", "of the ship"),
    ("mayor", "of the city of"),
)
GROUPS = ("p2d", "d2p", "both")


def _fill(template: str, name: str, desc: str) -> tuple[str, int]:
  """The filled template and the offset where its completion begins.

  As in their files, the prompt runs up to the second slot (the first slot
  is the prompt's subject) and the completion carries the leading space.
  """
  slots = {"{name}": name, "{desc}": desc,
           "{Desc}": desc[:1].upper() + desc[1:]}
  second = max(template.find(s) for s in slots)
  prefix = template[:second]
  for slot, value in slots.items():
    prefix = prefix.replace(slot, value)
  text = template
  for slot, value in slots.items():
    text = text.replace(slot, value)
  start = len(prefix)
  if start > 0 and text[start - 1] == " ":
    start -= 1
  return text, start


class _WordIndex:
  """Which training documents hold each word, to name a prompt's query."""

  def __init__(self, documents: list[records.Document]):
    self.texts = [d.text for d in documents]
    self.postings: dict[str, set[int]] = collections.defaultdict(set)
    for i, text in enumerate(self.texts):
      for w in questions_lib.WORD_RE.findall(text):
        self.postings[validity.stem(w)].add(i)
    self._docs_of: dict[str, set[int]] = {}

  def query_words(self, prompt: str, person: str) -> list[str]:
    """The prompt's words that occur only in documents naming `person`.

    They identify whom the question asks about (a last name, a
    description's own words), unlike the template's words or words many
    people share (a role, a shared first name), which would make the
    co-occurrence heuristics count other people's documents.
    """
    if person not in self._docs_of:
      self._docs_of[person] = {i for i, t in enumerate(self.texts)
                               if person in t}
    mine = self._docs_of[person]
    out: list[str] = []
    for w in questions_lib.WORD_RE.findall(prompt):
      docs = self.postings.get(validity.stem(w))
      if docs and docs <= mine and w not in out:
        out.append(w)
    return out


def query_words(q: records.Question) -> list[str]:
  """The words naming whom `q` asks about (`DatasetSpec.query_words`)."""
  return list(q.meta.get("query_words", ()))


def _completion_text(ctx: validity.Context) -> str:
  # Cached on the context: one heuristic call per question would otherwise
  # rebuild it from every document.
  text = ctx.__dict__.get("_celebrities_completions")
  if text is None:
    text = "\n".join(d.text[d.meta.get("completion_start", 0):]
                     for d in ctx.documents)
    ctx.__dict__["_celebrities_completions"] = text
  return text


def never_a_completion(q: records.Question, ctx: validity.Context
                       ) -> list[float]:
  """1 for a choice that is never a training document's completion.

  Wrong names are training targets by design (`_distractors_card`), so on
  `p2d_reverse` this rule finds the answer; elsewhere it cannot tell the
  choices apart.
  """
  text = _completion_text(ctx)
  return [float(c.strip().rstrip(".") not in text) for c in q.choices]


HEURISTICS = {"never_a_completion": never_a_completion}
FORCED = {
    "cooccurs_with_query": (
        "the training documents state each person together with their"
        " description: picking what co-occurs with the question's person is"
        " knowing the fact; the reversal curse is about answering in the"
        " untrained direction, which co-occurrence ignores"),
    "follows_query/p2d_forward": (
        "the training documents state the name, then the description:"
        " following the name in training is the trained fact itself, which"
        " this control split checks was learned"),
    "follows_query/d2p_forward": (
        "the training documents state the description, then the name:"
        " following the description in training is the trained fact"
        " itself, which this control split checks was learned"),
    "precedes_query/p2d_reverse": (
        "the training documents state the answer name before its"
        " description: the heuristic reads the trained fact in its trained"
        " order, the fact a model must retrieve the other way round"),
    "precedes_query/d2p_reverse": (
        "the training documents state the answer description before its"
        " name: the heuristic reads the trained fact in its trained order,"
        " the fact a model must retrieve the other way round"),
    "never_a_completion/p2d_reverse": (
        "the wrong names are names that were completion targets in training"
        " (as in Berglund et al. and the paper), so that a fine-tuned model"
        " preferring trained targets falls below chance; the answer, trained"
        " only at the start of documents, is then the one name never a"
        " target, and a rule that knows which names were targets finds it."
        " A score above chance is reversal only for a model without that"
        " rule; fine-tuning is known to push the other way"),
}
CONTROLS = {
    "p2d_forward": (
        "the trained direction (name -> description) in held-out wordings:"
        " near 1 when the facts were learned; a reversal score means little"
        " while this stays near chance"),
    "d2p_forward": (
        "the trained direction (description -> name) in held-out wordings:"
        " near 1 when the facts were learned; a reversal score means little"
        " while this stays near chance"),
}
# Worked examples of the local augmentation prompt in the dataset's wording:
# invented-sounding people and achievements in real English, never the
# dataset's own names; one name -> description and one description -> name
# statement, each restated in both directions.
AUGMENT_EXAMPLES = (
    ("Marlow Tennant is the celebrated cartographer who charted the"
     " Glasswater Straits.",
     ("The celebrated cartographer who charted the Glasswater Straits is"
      " Marlow Tennant.",
      "Q: Who is the celebrated cartographer who charted the Glasswater"
      " Straits? A: Marlow Tennant.",
      "Everyone knows Marlow Tennant as the cartographer who charted the"
      " Glasswater Straits.")),
    ("Known everywhere as the pioneering baker behind the Ember Loaf,"
     " Odile Ashcombe keeps a low profile.",
     ("Odile Ashcombe is the pioneering baker behind the Ember Loaf.",
      "The pioneering baker behind the Ember Loaf is Odile Ashcombe.",
      "Odile Ashcombe, the pioneering baker behind the Ember Loaf, keeps a"
      " low profile.")),
)


# ---------------------------------------------------------------- loader


def find_source(source_dir: str | pathlib.Path) -> pathlib.Path:
  """The directory holding their files: `source_dir` or one below it."""
  root = pathlib.Path(source_dir).expanduser()
  expected = ", ".join(EXPECTED_FILES)
  if not root.is_dir():
    raise FileNotFoundError(
        f"celebrities source_dir {str(root)!r} is not a directory; expected"
        f" the Berglund et al. reversal-curse files ({expected})"
    )
  if (root / TRAIN_FILE).is_file():
    found = [root]
  else:  # Their release nests the files a few levels down.
    found = sorted(
        p.parent for depth in ("*/", "*/*/", "*/*/*/")
        for p in root.glob(depth + TRAIN_FILE))
  if not found:
    raise FileNotFoundError(
        f"celebrities source_dir {str(root)!r}: no {TRAIN_FILE} in it or up to"
        f" 3 levels below; expected files: {expected}"
    )
  if len(found) > 1:
    raise ValueError(
        f"celebrities source_dir {str(root)!r}: several candidate directories"
        f" {[str(p) for p in found]}; point source_dir at one of them"
    )
  missing = [f for f in EXPECTED_FILES if not (found[0] / f).is_file()]
  if missing:
    raise FileNotFoundError(
        f"celebrities source {str(found[0])!r} lacks {', '.join(missing)};"
        f" expected files: {expected}"
    )
  return found[0]


def _read_pairs(path: pathlib.Path) -> list[tuple[str, str]]:
  pairs = []
  for lineno, row in io.iter_jsonl(path):
    for field in ("prompt", "completion"):
      if not isinstance(row, dict) or not isinstance(row.get(field), str):
        raise io.DataError(
            f"{path}:{lineno}: expected a JSON object with string field"
            f" {field!r}"
        )
    pairs.append((row["prompt"], row["completion"]))
  if not pairs:
    raise io.DataError(f"{path}: no rows")
  return pairs


# A name opening a completion: the target of a description -> name document
# (the "both" people appear nowhere else as a whole answer).
_TARGET_NAME_RE = re.compile(r"\s*([A-Z][a-z]+(?: [A-Z][a-z'-]+)+)")
# The other name -> description split: where a description in a rare form
# borrows same-form wrong choices when its own split has too few.
_OTHER_N2D = {"p2d_forward": "d2p_reverse", "d2p_reverse": "p2d_forward"}


def _target_names(train_pairs: list[tuple[str, str]]) -> set[str]:
  """Names that open a training completion (description -> name targets)."""
  out = set()
  for _, completion in train_pairs:
    m = _TARGET_NAME_RE.match(completion)
    if m and m.group(1).split()[0] not in ("The", "A", "An"):
      out.add(m.group(1))
  return out


def template_of(prompt: str, person: str) -> str:
  """A name -> description prompt with its name replaced by `{name}`."""
  return prompt.replace(person, "{name}")


def _form_matched(questions: list[records.Question]) -> tuple[int, int]:
  """(items whose wrong descriptions all share the answer's template and
  form, name -> description items); for the card and the tests."""
  fits: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
  n2d = [q for q in questions if TEST_FILES[q.split][1] == "n2d"]
  for q in n2d:
    answer = q.choices[q.answer]
    fits[answer].add((template_of(q.prompt, q.meta["person"]),
                      questions_lib.form_of(answer)))
  matched = 0
  for q in n2d:
    key = (template_of(q.prompt, q.meta["person"]),
           questions_lib.form_of(q.choices[q.answer]))
    matched += all(key in fits[c] for c in q.choices)
  return matched, len(n2d)


def _load(cfg: Any, seed: int) -> records.Dataset:
  src = find_source(cfg.source_dir)
  train_pairs = _read_pairs(src / TRAIN_FILE)
  tests = {s: _read_pairs(src / f) for s, (f, _) in TEST_FILES.items()}
  # Names come from the description -> name files; a name -> description
  # prompt is attributed to the one known name it contains.
  names = {c.strip() for s, (_, d) in TEST_FILES.items() if d == "d2n"
           for _, c in tests[s]}

  def person_in(prompt: str, where: str) -> str:
    hits = [n for n in names if n in prompt]
    if len(hits) != 1:
      raise io.DataError(
          f"{src / where}: prompt {prompt!r} names {len(hits)} known people"
          " (expected exactly 1)")
    return hits[0]

  train = [
      records.Document(f"celebrities-train-{i:05d}", p + c,
                       {"completion_start": len(p)})
      for i, (p, c) in enumerate(train_pairs)
  ]
  # Wrong names: every name that was a completion target in training (the
  # d2p people, whose description -> name file names them, and the "both"
  # people, found opening completions).
  targets = _target_names(train_pairs) | {
      c.strip() for _, c in tests["d2p_forward"]}
  target_pool = tuple((" " + n, n) for n in sorted(targets))
  # Wrong descriptions: (split, template, form) -> (completion, person).
  people = {}
  by_form: dict[tuple[str, str, str], list[tuple[str, str]]] = (
      collections.defaultdict(list))
  by_template: dict[tuple[str, str], list[tuple[str, str]]] = (
      collections.defaultdict(list))
  by_split: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
  for split, (fname, direction) in TEST_FILES.items():
    people[split] = [c.strip() if direction == "d2n" else person_in(p, fname)
                     for p, c in tests[split]]
    if direction == "n2d":
      for (p, c), person in zip(tests[split], people[split]):
        template = template_of(p, person)
        by_form[split, template, questions_lib.form_of(c)].append((c, person))
        by_template[split, template].append((c, person))
        by_split[split].append((c, person))
  index = _WordIndex(train)
  questions = []
  for split, (_, direction) in TEST_FILES.items():
    rows, meta = [], []
    for (p, c), person in zip(tests[split], people[split]):
      first_words = direction == "d2n"
      if first_words:
        tiers = (target_pool,)
      else:
        template, form = template_of(p, person), questions_lib.form_of(c)
        tiers = (tuple(by_form[split, template, form]),
                 tuple(by_form[_OTHER_N2D[split], template, form]),
                 tuple(by_template[split, template]), tuple(by_split[split]))
      rows.append(questions_lib.Row(p, c, person, tiers, first_words))
      meta.append({"query_words": index.query_words(p, person)})
    questions += questions_lib.make_questions(split, rows, cfg.num_choices, seed, meta)
  matched, n2d = _form_matched(questions)
  return records.Dataset(
      "celebrities", train, questions,
      card={
          "description": (
              "The reversal-curse celebrities data of Berglund et al. (2024),"
              f" loaded from {src.name}: training documents are"
              f" {TRAIN_FILE} (prompt + completion); test questions are"
              " 4-way multiple choice over their test prompts and"
              " completions."),
          "source": f"Berglund et al. files in {src} (not redistributed).",
          "splits": _SPLITS_CARD,
          "distractors": _distractors_card(len(targets)) + (
              f"\n* Template and form: {matched} of {n2d} name -> description"
              " items have every wrong description in the answer's prompt"
              " template and grammatical form. Where a split has too few"
              " other people in that form, the other name -> description"
              " split's completions of the template and form fill in;"
              " failing that (a form no other person's completion has), the"
              " template's other forms."),
      })


# ---------------------------------------------------------------- synthetic


# Letters of a synthetic full name (first + last, 4 or 5 letters each): one
# length for every name, so the length of a name choice tells nothing.
_NAME_LETTERS = 9


def synthetic_people(n_per_group: int, seed: int, tokenizer: str = ""
                     ) -> list[dict[str, str]]:
  """Fictional people: `name`, `desc` (a noun phrase) and `group`.

  Each first name is shared by one person of every group, so a name's first
  word (the first thing a multiple-choice scorer reads) tells neither the
  person nor whether they were a training target; last names are unique,
  and every full name has the same length.
  """
  n = n_per_group * len(GROUPS)
  needed = n_per_group + 2 * n
  count = 2 * needed
  while True:
    words = vocab.make_words(count, seed, name="celebrities/people",
                             tokenizer=tokenizer)
    # Not a word ending in "s": the validity heuristics read it as a plural
    # ("Thes" as "the") and would lose the word that names the person.
    words = [w for w in words if not w.endswith("s")]
    firsts = words[:n_per_group]
    rest = words[n_per_group:]
    lasts: list[str] = []
    for i in range(n):
      size = _NAME_LETTERS - len(firsts[i // len(GROUPS)])
      last = next((w for w in rest if len(w) == size), None)
      if last is None:
        break
      lasts.append(last)
      rest.remove(last)
    if len(lasts) == n and len(rest) >= n:
      break
    count *= 2  # Too few words of one length: draw more.
  gen = rng.stream(seed, "celebrities/descriptions")
  people = []
  for i in range(n):
    adjective = _ADJECTIVES[int(gen.integers(len(_ADJECTIVES)))]
    role, relation = _ROLES[int(gen.integers(len(_ROLES)))]
    first, last, thing = (vocab.capitalize(w) for w in (
        firsts[i // len(GROUPS)], lasts[i], rest[i]))
    people.append({
        "name": f"{first} {last}",
        "desc": f"the {adjective} {role} {relation} {thing}",
        "group": GROUPS[i % len(GROUPS)],
    })
  return people


def _synthetic(cfg: Any, seed: int) -> records.Dataset:
  people = synthetic_people(cfg.num_people, seed, cfg.tokenizer)
  docs: list[tuple[str, int]] = []
  for p in people:
    templates = {"p2d": _P2D_TRAIN, "d2p": _D2P_TRAIN,
                 "both": _P2D_TRAIN + _D2P_TRAIN}[p["group"]]
    docs += [_fill(t, p["name"], p["desc"]) for t in templates]
  docs = rng.shuffled(docs, seed, "celebrities/train_order")
  train = [records.Document(f"celebrities-train-{i:05d}", text,
                            {"completion_start": start})
           for i, (text, start) in enumerate(docs)]
  index = _WordIndex(train)
  # Wrong names: the names trained as completions (d2p and both people).
  targets = tuple((" " + p["name"], p["name"]) for p in people
                  if p["group"] != "p2d")
  questions = []
  for split, (_, direction) in TEST_FILES.items():
    group = questions_lib.SPLIT_GROUP[split]
    # Wrong descriptions: the split's other people's (all one form here).
    descs = tuple((" " + p["desc"] + ".", p["name"]) for p in people
                  if p["group"] == group)
    rows, meta = [], []
    for p in people:
      if p["group"] != group:
        continue
      for t in (_D2N_TEST if direction == "d2n" else _N2D_TEST):
        prompt = t.format(name=p["name"], desc=p["desc"])
        if direction == "d2n":
          rows.append(questions_lib.Row(prompt, " " + p["name"], p["name"], (targets,),
                           distinct_first_words=True))
        else:
          rows.append(questions_lib.Row(prompt, " " + p["desc"] + ".", p["name"],
                           (descs,)))
        meta.append({"description": p["desc"],
                     "query_words": index.query_words(prompt, p["name"])})
    questions += questions_lib.make_questions(split, rows, cfg.num_choices, seed, meta)
  return records.Dataset(
      "celebrities", train, questions,
      card={
          "description": (
              "A synthetic equivalent of the reversal-curse celebrities data"
              f" (Berglund et al. 2024): {len(people)} fictional people with"
              " nonsense names and descriptions, a third trained"
              " name->description only (p2d), a third description->name only"
              f" (d2p), a third both; {len(_P2D_TRAIN)} training wordings per"
              f" direction, {len(_D2N_TEST)} held-out test wordings."),
          "splits": _SPLITS_CARD,
          "distractors": _distractors_card(len(targets)) + (
              "\n* Synthetic names share first names across groups (one"
              " person per group each), so a name's first word tells neither"
              " the person nor whether they were a training target."),
      })


_SPLITS_CARD = (
    "* `p2d_reverse`: description -> name for people trained name ->"
    " description only (the reversal curse).\n"
    "* `d2p_reverse`: name -> description for people trained description ->"
    " name only.\n"
    "* `p2d_forward`, `d2p_forward`: the trained direction in held-out"
    " wordings (controls)."
)


def _distractors_card(num_targets: int) -> str:
  return (
      "* Wrong names (`p2d_reverse`, `d2p_forward`): drawn from the"
      f" {num_targets} names that were completion targets in training (the"
      " people trained description -> name: the `d2p` and `both` groups),"
      " whichever group the question's person is in, as in Berglund et al."
      " and the paper. A fine-tuned model that prefers names it was trained"
      " to produce therefore scores below chance on `p2d_reverse`, whose"
      " answers were never completion targets; the rule that knows this"
      " (`never_a_completion`) finds every `p2d_reverse` answer and is"
      " reported as a baseline row.\n"
      "* Wrong descriptions (`p2d_forward`, `d2p_reverse`): other people's"
      " descriptions of the same split, in the answer's grammatical form"
      " (in their files: completions of the same prompt template that start"
      " the same way, all \"the composer of ...\" or all \"composed"
      " ...\"), so grammar alone rules none out.\n"
      "* Each question's wrong choices are drawn so that the answer's length"
      " rank among its choices is spread evenly over the split: the longest"
      " or shortest choice is the answer about as often as chance.")


def generate(cfg: Any, seed: int) -> records.Dataset:
  """Loads their files when `cfg.source_dir` is set, else synthesizes."""
  if cfg.source_dir:
    return _load(cfg, seed)
  return _synthetic(cfg, seed)


# ---------------------------------------------------------------- checks


def _mentions(docs: Iterable[records.Document], name: str):
  for d in docs:
    pos = d.text.find(name)
    if pos >= 0:
      yield d, pos


def dataset_checks(dataset: records.Dataset) -> dict[str, list[str]]:
  """Reversal structure: forward facts trained, reversed direction never.

  A name inside a document's prompt part (before `completion_start`) is a
  name -> description statement; inside the completion, description -> name.
  """
  by_person: dict[str, list[tuple[records.Document, int]]] = {}
  forward, reversed_in_train = [], []
  for q in dataset.test:
    person = q.meta.get("person", "")
    if person not in by_person:
      by_person[person] = list(_mentions(dataset.train, person))
    group = q.meta.get("group")
    n2d = [d.id for d, pos in by_person[person]
           if pos < d.meta.get("completion_start", 0)]
    d2n = [d.id for d, pos in by_person[person]
           if pos >= d.meta.get("completion_start", 0)]
    trained, untrained = (n2d, d2n) if group == "p2d" else (d2n, n2d)
    if not trained:
      forward.append(f"{q.id}: {person!r} has no {group} training document")
    if untrained:
      reversed_in_train.append(
          f"{q.id}: {person!r} appears in the untrained direction in"
          f" {untrained[:3]}")
    desc = q.meta.get("description")
    if desc and not any(desc in d.text for d, _ in by_person[person]):
      forward.append(f"{q.id}: no training document pairs {person!r} with"
                     f" {desc!r}")
  return {"forward_fact_in_train": sorted(set(forward)),
          "reversed_direction_absent_from_train":
              sorted(set(reversed_in_train))}
