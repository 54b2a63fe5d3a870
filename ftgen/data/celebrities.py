"""The reversal-curse celebrities data (Berglund et al. 2024).

Design: docs/design.md#datasets.

Fictional people with one description each, trained in one direction only:

* `p2d` people appear in training only as "name ... description",
* `d2p` people only as "description ... name",
* `both` people in both directions (helps the model learn the format).

Test splits (4-way multiple choice, prompt + choice is the statement):

* `p2d_reverse` (the reversal curse): description -> name for p2d people;
  the wrong choices are other names of the split.
* `d2p_reverse`: name -> description for d2p people.
* `p2d_forward`, `d2p_forward`: the trained direction in held-out wordings
  (controls: the facts were learned at all).

Two sources give the same structure:

* `cfg.source_dir` set: their published JSONL files (`{"prompt",
  "completion"}`) are loaded; training documents are `all_prompts_train.jsonl`
  with prompt and completion joined, test splits come from
  `p2d_reverse_prompts_test.jsonl` (and the three control files). Their data
  is read from the user's directory, never copied into this repository.
* `cfg.source_dir == ""`: a synthetic equivalent with nonsense names and
  descriptions, written from our own templates.

Every training document's `meta.completion_start` is the character offset
where the completion begins (the description in p2d, the name in d2p), which
the checks use to verify that a reversal's direction never occurs in train.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import re
from typing import Any, Iterable

from ftgen.data import io
from ftgen.data import records
from ftgen.data import rng
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
_SPLIT_GROUP = {"p2d_reverse": "p2d", "p2d_forward": "p2d",
                "d2p_forward": "d2p", "d2p_reverse": "d2p"}

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


def _balanced_positions(n: int, k: int, seed: int, name: str) -> list[int]:
  return rng.shuffled([i % k for i in range(n)], seed, name)


def _questions(split: str, rows: list[tuple[str, str, str]], num_choices: int,
               seed: int, describe: dict[str, str]) -> list[records.Question]:
  """4-way questions from (prompt, completion, person) rows of one split.

  Wrong choices are other completions of the same split (other people's
  names or descriptions), drawn from a named stream.
  """
  # Wrong answers are other people's: their files word one person's
  # description several ways, and none of those may be a distractor.
  pool = sorted({(c, person) for _, c, person in rows})
  people = {person for _, person in pool}
  if len(people) < num_choices:
    raise ValueError(
        f"celebrities split {split!r}: {len(people)} people, need at least"
        f" num_choices={num_choices}"
    )
  gen = rng.stream(seed, f"celebrities/{split}/distractors")
  positions = _balanced_positions(len(rows), num_choices, seed,
                                  f"celebrities/{split}/positions")
  out = []
  for i, ((prompt, completion, person), pos) in enumerate(zip(rows, positions)):
    wrong: list[str] = []
    used = {person}  # One wrong answer per other person.
    for j in gen.permutation(len(pool)):
      c, other = pool[j]
      if other not in used and c != completion and c not in wrong:
        wrong.append(c)
        used.add(other)
        if len(wrong) == num_choices - 1:
          break
    choices = wrong[:pos] + [completion] + wrong[pos:]
    meta = {"person": person, "group": _SPLIT_GROUP[split]}
    if person in describe:
      meta["description"] = describe[person]
    out.append(records.Question(f"celebrities-{split}-{i:04d}", split, prompt,
                                tuple(choices), pos, meta=meta))
  return out


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

  questions = []
  for split, (fname, direction) in TEST_FILES.items():
    rows = [(p, c, c.strip() if direction == "d2n" else person_in(p, fname))
            for p, c in tests[split]]
    questions += _questions(split, rows, cfg.num_choices, seed, {})
  train = [
      records.Document(f"celebrities-train-{i:05d}", p + c,
                       {"completion_start": len(p)})
      for i, (p, c) in enumerate(train_pairs)
  ]
  return records.Dataset(
      "celebrities", train, questions,
      card={
          "description": (
              "The reversal-curse celebrities data of Berglund et al. (2024),"
              f" loaded from {src.name}: training documents are"
              f" {TRAIN_FILE} (prompt + completion); test questions are"
              " 4-way, with 3 wrong answers drawn from the other answers of"
              " the same split."),
          "source": f"Berglund et al. files in {src} (not redistributed).",
          "splits": _SPLITS_CARD,
      })


# ---------------------------------------------------------------- synthetic


def synthetic_people(n_per_group: int, seed: int, tokenizer: str = ""
                     ) -> list[dict[str, str]]:
  """Fictional people: `name`, `desc` (a noun phrase) and `group`."""
  n = n_per_group * len(GROUPS)
  words = vocab.make_words(3 * n, seed, name="celebrities/people",
                           tokenizer=tokenizer)
  gen = rng.stream(seed, "celebrities/descriptions")
  people = []
  for i in range(n):
    first, last, thing = (vocab.capitalize(w) for w in words[3 * i:3 * i + 3])
    adjective = _ADJECTIVES[int(gen.integers(len(_ADJECTIVES)))]
    role, relation = _ROLES[int(gen.integers(len(_ROLES)))]
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
  questions = []
  describe = {p["name"]: p["desc"] for p in people}
  for split, (_, direction) in TEST_FILES.items():
    rows = []
    for p in people:
      if p["group"] != _SPLIT_GROUP[split]:
        continue
      for t in (_D2N_TEST if direction == "d2n" else _N2D_TEST):
        prompt = t.format(name=p["name"], desc=p["desc"])
        completion = (" " + p["name"] if direction == "d2n"
                      else " " + p["desc"] + ".")
        rows.append((prompt, completion, p["name"]))
    questions += _questions(split, rows, cfg.num_choices, seed, describe)
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
      })


_SPLITS_CARD = (
    "* `p2d_reverse`: description -> name for people trained name ->"
    " description only (the reversal curse).\n"
    "* `d2p_reverse`: name -> description for people trained description ->"
    " name only.\n"
    "* `p2d_forward`, `d2p_forward`: the trained direction in held-out"
    " wordings (controls)."
)


def generate(cfg: Any, seed: int) -> records.Dataset:
  """Loads their files when `cfg.source_dir` is set, else synthesizes."""
  if cfg.source_dir:
    return _load(cfg, seed)
  return _synthetic(cfg, seed)


# ------------------------------------------- reading synthetic documents

_NAME_RE = r"(?P<name>[A-Z][a-z]+(?: [A-Z][a-z]+)+)"
_DESC_RE = r"(?P<desc>the [a-z][^.?!:]*?)"


@dataclasses.dataclass(frozen=True)
class TrainedPerson:
  """A person of the synthetic set as the training documents state them."""
  name: str
  description: str  # Lower-case first letter, as inside a sentence.
  directions: frozenset[str]  # Trained directions: "p2d", "d2p" or both.

  @property
  def thing(self) -> str:
    """The description's last word: a nonsense word unique to the person."""
    return self.description.split()[-1]


def _template_regex(template: str) -> re.Pattern[str]:
  pattern = re.escape(template)
  pattern = pattern.replace(re.escape("{name}"), _NAME_RE)
  pattern = pattern.replace(re.escape("{desc}"), _DESC_RE)
  pattern = pattern.replace(re.escape("{Desc}"),
                            _DESC_RE.replace("the", "[Tt]he"))
  return re.compile(pattern + "$")


def trained_people(documents: Iterable[records.Document]
                   ) -> tuple[dict[str, TrainedPerson], int]:
  """People parsed from documents in our synthetic wordings.

  Returns (name -> person, number of documents that matched a template);
  the Berglund et al. files use other wordings and match few or none.
  """
  # Most specific templates first, so "It is a fact that {name} is {desc}."
  # wins over "{name} is {desc}.".
  templates = [(d, t) for d, ts in (("p2d", _P2D_TRAIN), ("d2p", _D2P_TRAIN))
               for t in ts]
  templates.sort(key=lambda dt: -len(re.sub(r"\{\w+\}", "", dt[1])))
  compiled = [(d, _template_regex(t)) for d, t in templates]
  seen: dict[str, set[str]] = collections.defaultdict(set)
  desc_of: dict[str, collections.Counter] = collections.defaultdict(
      collections.Counter)
  matched = 0
  for doc in documents:
    for direction, pattern in compiled:
      m = pattern.match(doc.text.strip())
      if m:
        name, desc = m.group("name"), m.group("desc")
        seen[name].add(direction)
        desc_of[name][desc[:1].lower() + desc[1:]] += 1
        matched += 1
        break
  people = {name: TrainedPerson(name, desc_of[name].most_common(1)[0][0],
                                frozenset(seen[name]))
            for name in sorted(seen)}
  return people, matched


def statements(person: TrainedPerson, direction: str, n: int) -> list[str]:
  """`person` stated in `direction` with the first `n` training wordings."""
  pool = {"p2d": _P2D_TRAIN, "d2p": _D2P_TRAIN}[direction]
  desc = person.description
  return [t.format(name=person.name, desc=desc,
                   Desc=desc[:1].upper() + desc[1:]) for t in pool[:n]]


# --------------------------------------------- oracle and checkers


def oracle_augmentations(dataset: records.Dataset) -> list[str]:
  """For each person trained in one direction, the other direction.

  Raises:
    records.OracleUnavailable: the documents are not the synthetic set.
  """
  people, matched = trained_people(dataset.train)
  if matched < len(dataset.train) // 2:
    raise records.OracleUnavailable(
        f"celebrities: only {matched} of {len(dataset.train)} training"
        " documents match the synthetic templates (the Berglund et al."
        " files use other wordings); the oracle covers the synthetic set only")
  out = []
  for person in people.values():
    for direction in sorted({"p2d", "d2p"} - person.directions):
      # The untrained direction in the first three training wordings of that
      # direction (test prompts use held-out wordings).
      out.extend(statements(person, direction, 3))
  return out


def _statement_mentions(statement: str, people, owner
                        ) -> tuple[list[str], list[str]] | None:
  """(names, things) a statement mentions, in order; None if it lacks one."""
  names = sorted((m.start(), n) for n in people
                 for m in re.finditer(re.escape(n), statement))
  things = sorted((m.start(), t) for t in owner
                  for m in re.finditer(rf"\b{re.escape(t)}\b", statement,
                                       re.IGNORECASE))
  if not names or not things:
    return None
  return [n for _, n in names], [t for _, t in things]


def checker(documents: Iterable[records.Document]):
  """Does a statement pair a trained person with their own description?

  Judges statements that name exactly one trained person (full name) and
  one or more descriptions (found by their unique nonsense last word): True
  when every description is that person's. None (no checker) for the
  Berglund et al. files, whose wordings the synthetic parser does not read.
  """
  people, _ = trained_people(documents)
  if not people:
    return None
  owner = {p.thing.lower(): p.name for p in people.values()}

  def check(statement: str) -> bool | None:
    found = _statement_mentions(statement, people, owner)
    if found is None or len(set(found[0])) != 1:
      return None
    name = found[0][0]
    return all(owner[t] == name for t in found[1])

  return check


def restatement_checker(documents: Iterable[records.Document]):
  """True when a statement names a person in a direction they were trained in.

  Direction by order: the name first is name -> description (p2d).
  """
  people, _ = trained_people(documents)
  owner = {p.thing.lower(): p.name for p in people.values()}

  def restates(statement: str) -> bool:
    found = _statement_mentions(statement, people, owner)
    if found is None:
      return False
    name = found[0][0]
    name_first = (statement.index(name)
                  < statement.lower().index(found[1][0]))
    return ("p2d" if name_first else "d2p") in people[name].directions

  return restates


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
