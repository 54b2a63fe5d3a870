"""Tests for the reversal-curse celebrities loader and synthetic generator."""

import json

import ml_collections
import pytest

from configs import data as data_configs
from ftgen.data import celebrities
from ftgen.data import io
from ftgen.data import registry


def _cfg(source_dir="", tiny=True):
  cfg = data_configs.get_config("celebrities,tiny" if tiny else "celebrities")
  g = ml_collections.ConfigDict(cfg.generator.to_dict())
  g.source_dir = str(source_dir)
  g.tokenizer = ""
  return g


def _rows(ds):
  return ([json.dumps(d.to_json()) for d in ds.train],
          [json.dumps(q.to_json()) for q in ds.test])


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


def test_loads_berglund_files(reversal_curse_dir):
  ds = celebrities.generate(_cfg(reversal_curse_dir), seed=0)
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
  names = {r["completion"] for r in expected}
  assert all(set(q.choices) <= names for q in rev)
  assert registry.failures(ds) == {}
  # Pointing at the directory itself works too.
  again = celebrities.generate(_cfg(src), seed=0)
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
