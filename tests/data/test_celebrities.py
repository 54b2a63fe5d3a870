"""Tests for the reversal-curse celebrities loader and synthetic generator."""

import collections
import functools
import json
import re

import ml_collections
import pytest

from configs import data as data_configs
from ftgen.augment import prompts
from ftgen.data import celebrities
from ftgen.data import celebrities_questions
from ftgen.data import celebrities_text
from ftgen.data import checks
from ftgen.data import io
from ftgen.data import registry
from ftgen.data import validity

# (tiny, seed): the configs and seeds whose validity is checked.
CONFIGS = [(tiny, seed) for tiny in (True, False) for seed in (0, 1, 2)]
N2D = [s for s, (_, d) in celebrities.TEST_FILES.items() if d == "n2d"]
D2N = [s for s, (_, d) in celebrities.TEST_FILES.items() if d == "d2n"]


def _cfg(source_dir="", tiny=True):
  cfg = data_configs.get_config("celebrities,tiny" if tiny else "celebrities")
  g = ml_collections.ConfigDict(cfg.generator.to_dict())
  g.source_dir = str(source_dir)
  g.tokenizer = ""
  return g


@functools.lru_cache(maxsize=None)
def _synthetic(tiny, seed):
  """A generated dataset, shared by the tests that only read it."""
  return celebrities.generate(_cfg(tiny=tiny), seed=seed)


@pytest.fixture(scope="module")
def berglund(reversal_curse_dir):
  return celebrities.generate(_cfg(reversal_curse_dir, tiny=False), seed=0)


def _rows(ds):
  return ([json.dumps(d.to_json()) for d in ds.train],
          [json.dumps(q.to_json()) for q in ds.test])


def _wrong(q):
  return [c for i, c in enumerate(q.choices) if i not in q.answers]


def _completion_targets(ds, people):
  """Those of `people` who open a training completion: the description ->
  name targets."""
  out = set()
  for d in ds.train:
    completion = d.text[d.meta["completion_start"]:].strip()
    out |= {p for p in people if completion.startswith(p)}
  return out


def test_synthetic_structure_and_checks():
  ds = celebrities.generate(_cfg(), seed=3)
  n = 4  # People per group in the tiny config.
  per_dir = len(celebrities._P2D_TRAIN)
  assert len(ds.train) == n * per_dir * 4  # p2d + d2p + both (twice).
  assert ds.splits == list(celebrities.TEST_FILES)
  for split in ds.splits:
    qs = [q for q in ds.test if q.split == split]
    assert len(qs) == n * len(celebrities._D2N_TEST)
    assert all(len(q.choices) == 4 for q in qs)
  assert registry.failures(ds) == {}
  q = next(q for q in ds.test if q.split == "p2d_reverse")
  assert q.meta["description"] in q.prompt
  assert q.choices[q.answer] == " " + q.meta["person"]
  # The reversal is never stated in train; the forward fact is.
  assert not any(q.prompt + q.choices[q.answer] in d.text for d in ds.train)
  assert any(d.text.startswith(q.meta["person"]) for d in ds.train)
  assert _rows(ds) == _rows(celebrities.generate(_cfg(), seed=3))
  assert _rows(ds) != _rows(celebrities.generate(_cfg(), seed=4))


def test_checks_catch_a_trained_reversal():
  ds = celebrities.generate(_cfg(), seed=0)
  q = next(q for q in ds.test if q.split == "p2d_reverse")
  leak = celebrities.records.Document(
      "leak", f"{q.meta['description']} is {q.meta['person']}.",
      {"completion_start": len(q.meta["description"]) + 3})
  ds.train.append(leak)
  assert celebrities.dataset_checks(ds)["reversed_direction_absent_from_train"]


# ----------------------------------------------------------- distractors


@pytest.mark.parametrize("tiny,seed", CONFIGS)
def test_wrong_names_are_training_targets_of_every_group(tiny, seed):
  ds = _synthetic(tiny, seed)
  group = {p["name"]: p["group"]
           for p in celebrities.synthetic_people(4 if tiny else 30, seed)}
  targets = _completion_targets(ds, group)
  # The description -> name targets are the d2p and both people.
  assert targets == {n for n, g in group.items() if g != "p2d"}
  for split in D2N:
    qs = [q for q in ds.test if q.split == split]
    wrong = [c.strip() for q in qs for c in _wrong(q)]
    assert set(wrong) <= targets
    # Not only the question's own group: the both people too.
    assert {group[n] for n in wrong} == {"d2p", "both"}
    for q in qs:
      # First names are shared across groups, never within a question.
      firsts = [c.split()[0] for c in q.choices]
      assert len(set(firsts)) == len(firsts), q
  # The reversal's answers were never targets, so the failure mode (a model
  # preferring trained targets) shows as a score below chance.
  assert all(q.choices[q.answer].strip() not in targets
             for q in ds.test if q.split == "p2d_reverse")


@pytest.mark.parametrize("tiny,seed", CONFIGS)
def test_wrong_descriptions_share_the_answer_form(tiny, seed):
  ds = _synthetic(tiny, seed)
  desc = re.compile(r" the [a-z-]+ [a-z]+ [a-z ]+ [A-Z][a-z]+\.")
  groups = collections.defaultdict(set)
  for q in ds.test:
    groups[q.split].add(" " + q.meta["description"] + ".")
  for q in ds.test:
    if q.split not in N2D:
      continue
    assert all(desc.fullmatch(c) for c in q.choices), q
    assert len({celebrities_questions.form_of(c) for c in q.choices}) == 1
    # Other people of the same split: the same training status.
    assert set(q.choices) <= groups[q.split]


def test_berglund_wrong_descriptions_share_template_and_form(berglund):
  n2d = [q for q in berglund.test if q.split in N2D]
  # Which (template, form) each description completes in their files.
  fits = collections.defaultdict(set)
  for q in n2d:
    answer = q.choices[q.answer]
    fits[answer].add((celebrities.template_of(q.prompt, q.meta["person"]),
                      celebrities_questions.form_of(answer)))
  same_template = same_form = unique_form = 0
  for q in n2d:
    template = celebrities.template_of(q.prompt, q.meta["person"])
    form = celebrities_questions.form_of(q.choices[q.answer])
    same_template += all(template in {t for t, _ in fits[c]}
                         for c in q.choices)
    same_form += all((template, form) in fits[c] for c in q.choices)
    unique_form += [celebrities_questions.form_of(c) for c in q.choices].count(form) == 1
  assert same_template == len(n2d)
  # A few of their completions are in a form no other person's is (e.g.
  # "a person who record-breaking free-diver").
  assert same_form >= 0.99 * len(n2d) and unique_form <= 0.01 * len(n2d)


def test_length_and_first_word_tell_nothing():
  people = celebrities.synthetic_people(30, 0)
  assert len({len(p["name"]) for p in people}) == 1
  firsts = collections.Counter(p["name"].split()[0] for p in people)
  assert set(firsts.values()) == {len(celebrities.GROUPS)}
  lasts = [p["name"].split()[1] for p in people]
  assert len(set(lasts)) == len(lasts)


# -------------------------------------------------------------- validity


def _validity_within_tolerance(ds):
  section = registry.validity(ds)
  assert section["problems"] == []
  for name, accs in section["heuristics"].items():
    for split, acc in accs.items():
      if not validity.is_forced(section["forced"], name, split):
        assert abs(acc - section["chance"][split]) <= validity.TOLERANCE, (
            name, split, acc)
  return section


@pytest.mark.parametrize("tiny,seed", CONFIGS)
def test_heuristics_near_chance(tiny, seed):
  ds = _synthetic(tiny, seed)
  assert registry.failures(ds) == {}
  section = _validity_within_tolerance(ds)
  # Only the trained fact itself, and the name pool's own rule, beat chance.
  assert set(section["forced"]) == set(celebrities.FORCED)
  for key in celebrities.FORCED:
    name, _, split = key.partition("/")
    for s in ([split] if split else ds.splits):
      assert section["heuristics"][name][s] >= section["chance"][s]
  # The forced rows are real: the co-occurring choice is the answer.
  assert all(section["heuristics"]["cooccurs_with_query"][s] > 0.9
             for s in ds.splits)


@pytest.mark.parametrize("tiny,seed", CONFIGS[:1] + CONFIGS[3:4])
def test_query_words_name_the_person(tiny, seed):
  ds = _synthetic(tiny, seed)
  for q in ds.test:
    words = celebrities.query_words(q)
    if q.split in N2D:
      # The last name; the first name is shared with two other people.
      first, last = q.meta["person"].split()
      assert words == [last], q
    else:
      assert q.meta["description"].split()[-1] in words, q
      assert not set(words) & {"the", "of", "who"}


def test_card_documents_the_pools():
  ds = _synthetic(True, 0)
  text = ds.card["distractors"]
  assert "completion targets" in text and "`both`" in text
  assert "grammatical form" in text and "length rank" in text


# ---------------------------------------------------------------- oracle


@pytest.mark.parametrize("tiny,seed", CONFIGS)
def test_oracle_shares_no_text_with_test_items(tiny, seed):
  ds = _synthetic(tiny, seed)
  out = registry.oracle_augmentations("celebrities", ds)
  assert out
  assert checks.test_overlap(out, ds.test)["coincide_with_test_answer"] == 0
  # Not even a test prompt: its templates are not the test's.
  joined = "\n".join(checks.normalize(s) for s in out)
  assert not [q.id for q in ds.test if checks.normalize(q.prompt) in joined]


def _fixed_text(template):
  """A template's words without its slots."""
  return [p.strip(" ,.?:").lower() for p in re.split(r"\{\w+\}", template)
          if len(p.strip(" ,.?:")) >= 8]


def test_oracle_templates_are_not_test_templates():
  n = celebrities_text.ORACLE_WORDINGS
  oracle = celebrities._P2D_TRAIN[:n] + celebrities._D2P_TRAIN[:n]
  tests = celebrities._N2D_TEST + celebrities._D2N_TEST
  for t in tests:
    for part in _fixed_text(t):
      assert not any(part in o.lower() for o in oracle), (t, part)


# ------------------------------------------------------ augment examples


# A person's name: two capitalized words, not an achievement ("the Ember
# Loaf").
_NAME = re.compile(r"(?<!the )\b[A-Z][a-z]+ [A-Z][a-z]+\b")


def _name_first(text, name):
  """The name comes before the description (which opens with "the")."""
  return text.index(name) < text.lower().index("the ")


def test_augment_examples_restate_both_directions():
  examples = registry.get("celebrities").augment_examples
  assert examples == celebrities.AUGMENT_EXAMPLES and len(examples) == 2
  directions = set()
  for statement, restatements in examples:
    assert isinstance(statement, str) and isinstance(restatements, tuple)
    assert restatements and all(isinstance(r, str) for r in restatements)
    name = _NAME.search(statement).group(0)
    assert all(name in r for r in restatements)
    first = _name_first(statement, name)
    directions.add("p2d" if first else "d2p")
    # Each is restated in the other direction too.
    assert any(_name_first(r, name) != first for r in restatements)
  assert directions == {"p2d", "d2p"}
  template = prompts.default_template("celebrities", "local")
  assert examples[0][0] in template and "{statement}" in template


def _example_words():
  text = " ".join(s + " " + " ".join(r)
                  for s, r in celebrities.AUGMENT_EXAMPLES)
  return set(re.findall(r"[A-Za-z]+", text.lower()))


def test_augment_examples_avoid_dataset_names_and_test_wordings():
  words = _example_words()
  for tiny in (True, False):
    for p in celebrities.synthetic_people(4 if tiny else 30, 0):
      assert not set(p["name"].lower().split()) & words
      assert p["desc"].split()[-1].lower() not in words
  text = " ".join(s + " " + " ".join(r)
                  for s, r in celebrities.AUGMENT_EXAMPLES).lower()
  for t in celebrities._N2D_TEST + celebrities._D2N_TEST:
    assert not [p for p in _fixed_text(t) if p in text], t


def test_augment_examples_avoid_berglund_names(berglund):
  people = {q.meta["person"] for q in berglund.test} | {
      c.strip() for q in berglund.test for c in q.choices
      if q.split in D2N}
  words = _example_words()
  assert not {w.lower() for p in people for w in p.split()} & words


def test_checker_tells_people_with_one_first_name_apart():
  ds = _synthetic(True, 0)
  spec = registry.get("celebrities")
  check = spec.checker(ds.train)
  restates = spec.restatement_checker(ds.train)
  people, _ = celebrities_text.trained_people(ds.train)
  by_first = collections.defaultdict(list)
  for p in people.values():
    by_first[p.name.split()[0]].append(p)
  a, b = next(ps for ps in by_first.values() if len(ps) > 1)[:2]
  assert check(f"{a.name} is {a.description}.") is True
  assert check(f"{a.name} is {b.description}.") is False
  assert restates(f"{a.name} is {a.description}.") == ("p2d" in a.directions)


# ------------------------------------------------------- Berglund files


def test_loads_berglund_files(reversal_curse_dir, berglund):
  ds = berglund
  src = celebrities.find_source(reversal_curse_dir)
  with open(src / celebrities.TRAIN_FILE) as f:
    first = json.loads(f.readline())
  assert ds.train[0].text == first["prompt"] + first["completion"]
  assert len(ds.train) == sum(1 for _ in open(src / celebrities.TRAIN_FILE))
  rev = [q for q in ds.test if q.split == "p2d_reverse"]
  with open(src / "p2d_reverse_prompts_test.jsonl") as f:
    expected = [json.loads(line) for line in f]
  assert [(q.prompt, q.choices[q.answer]) for q in rev] == [
      (r["prompt"], r["completion"]) for r in expected]
  # Wrong names: names trained as completions, of the d2p people (the
  # d2p_forward answers) and of the both people (in no name file), never of
  # the p2d people.
  completions = [d.text[d.meta["completion_start"]:].strip()
                 for d in ds.train]
  wrong = {c.strip() for q in ds.test if q.split in D2N for c in _wrong(q)}
  assert all(any(c.startswith(n) for c in completions) for n in wrong)
  d2p = {q.choices[q.answer].strip() for q in ds.test
         if q.split == "d2p_forward"}
  both = wrong - d2p
  assert d2p < wrong and len(both) >= 20
  assert not both & {q.meta["person"] for q in ds.test}
  # Every non-forced heuristic within tolerance of chance, as on synthetic.
  assert registry.failures(ds) == {}
  # Pointing at the directory itself works too.
  again = celebrities.generate(_cfg(src, tiny=False), seed=0)
  assert _rows(again) == _rows(ds)


@pytest.mark.parametrize("make", ["missing_dir", "missing_file", "empty_dir"])
def test_bad_source_dir_one_line_errors(tmp_path, make):
  if make == "missing_dir":
    src = tmp_path / "nope"
  else:
    src = tmp_path / "data"
    src.mkdir()
    if make == "missing_file":
      (src / celebrities.TRAIN_FILE).write_text(
          '{"prompt": "a", "completion": "b"}\n')
  with pytest.raises((FileNotFoundError, io.DataError)) as e:
    celebrities.generate(_cfg(src), seed=0)
  msg = str(e.value)
  assert "\n" not in msg and str(src) in msg
  assert "p2d_reverse_prompts_test.jsonl" in msg
