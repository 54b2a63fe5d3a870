"""Local and global augmentation: items, context, prompts, runs."""

import json
import subprocess
import sys

import pytest

from ftgen import configs
from ftgen.data import io
from ftgen.data import records
from ftgen.data import registry as data_registry
from ftgen.augment import run as augment
from ftgen.augment import prompts
from ftgen.models import flops
from ftgen.checkpoints import registry
from ftgen.checkpoints import tiny_tokenizer as tiny_tokenizer


def _config(arg, **overrides):
  config = configs.load(f"augment:{arg}")
  with config.unlocked():
    config.update(overrides)
  return config


def _data_config(name):
  return configs.load(f"data:{name},tiny")


def _dataset(name):
  cfg = _data_config(name)
  return data_registry.generate(name, cfg.generator, cfg.seed)


@pytest.mark.parametrize("dataset", data_registry.DATASETS)
@pytest.mark.parametrize("strategy", ["local", "global"])
def test_every_augment_config_is_valid(dataset, strategy):
  config = _config(f"{dataset},{strategy}")
  augment.check_config(config)
  with pytest.raises(AttributeError):
    config.no_such_field = 1  # Locked.


def test_process_prompts_restate_whole_calculations():
  config = _config("process,local")
  assert config.unit == "document" and "Calculation:" in config.stop_strings
  data = _dataset("process")
  calc = next(d for d in data.train if d.meta.get("kind") == "worked")
  (_, item), = augment.local_items([calc], config.unit)
  prompt = prompts.local_prompt(config.template, item)
  assert prompt.endswith(f"Calculation:\n{calc.text}\nStatements:\n")
  # The worked example uses the real derivative, none of the nonsense words.
  assert "d(x * x)" in config.template
  q = data.test[0]
  names = [q.meta["operator"], *q.meta["functions"]]
  assert len(names) == 4 and all(len(w) >= 4 for w in names)
  assert not [w for w in names if w in config.template]
  assert _config("reversals,local").unit == "sentence"


def test_local_items_split_sentences_and_dedup():
  docs = [records.Document("a", "Glon are big. This is known."),
          records.Document("b", "Femp are small. This is known.")]
  assert augment.local_items(docs, "sentence") == [
      ("a#s0", "Glon are big."), ("a#s1", "This is known."),
      ("b#s0", "Femp are small.")]
  assert [i for i, _ in augment.local_items(docs, "document")] == ["a", "b"]


def test_select_context_fits_subsamples_and_fails():
  docs = [records.Document(str(i), f"doc {i}") for i in range(10)]
  counts = [10] * 10
  assert augment.select_context(docs, counts, 100, seed=0) == docs
  sub = augment.select_context(docs, counts, 45, seed=0)
  assert len(sub) == 4 and sub == sorted(sub, key=lambda d: int(d.id))
  assert sub == augment.select_context(docs, counts, 45, seed=0)  # seeded
  assert sub != augment.select_context(docs, counts, 45, seed=1)
  with pytest.raises(ValueError, match="cannot fit even one training document"):
    augment.select_context(docs, counts, 9, seed=0)
  with pytest.raises(ValueError, match="no training documents"):
    augment.select_context([], [], 9, seed=0)


@pytest.mark.parametrize("chat", [False, True])
def test_prompt_parts_rebuild_the_full_prompt(chat):
  tok = tiny_tokenizer.tiny_tokenizer()
  config = _config("reversals,global,tiny")
  docs = ["Glon are big.", "Femp are small."]
  slot = augment._SLOT  # pylint: disable=protected-access
  parts = augment.prompt_parts(
      tok, prompts.global_prompt(config.template, docs, slot), chat)
  full, tail = parts.fill("Femp are small.")
  want = prompts.global_prompt(config.template, docs, "Femp are small.")
  if chat:
    want = tok.apply_chat_template([{"role": "user", "content": want}])
  assert full == want
  assert parts.head == parts.head.rstrip() and "Glon are big." in parts.head
  assert (full == parts.head + tail and
          "Femp are small." not in parts.head.split("\n")[-1])


def test_bad_input_errors():
  loaded = registry.load_model("tiny")
  config = _config("reversals,local,tiny")
  with pytest.raises(ValueError, match="empty document set"):
    augment.augment(config, [], [], loaded, log=lambda _: None)
  bad = _config("reversals,local,tiny",
                template="Rewrite: {sentence}")
  with pytest.raises(prompts.TemplateError,
                     match=r"missing field\(s\) \['statement'\]"):
    augment.augment(bad, [records.Document("a", "Glon are big.")], [], loaded)
  tight = _config("reversals,global,tiny", max_context_tokens=3)
  with pytest.raises(ValueError, match="cannot fit even one training document"):
    augment.augment(tight,
                    [records.Document("a", "Glon are bigger than femp.")],
                    [], loaded)
  with pytest.raises(ValueError, match="config.unit"):
    augment.check_config(_config("reversals,local,tiny",
                                 unit="word"))


def test_local_run_in_process(tmp_path, monkeypatch):
  """Tiny model: every prompt passes the guard; the report is complete."""
  data = _dataset("reversals")
  io.write_dataset(data, tmp_path / "data", seed=0)
  calls = []
  guard = prompts.assert_only_training_text
  monkeypatch.setattr(prompts, "assert_only_training_text",
                      lambda *a: calls.append(a[0]) or guard(*a))
  config = _config("reversals,local,tiny", max_items=3,
                   num_samples=2, max_new_tokens=8, batch_size=4)
  report = augment.run(config, tmp_path / "data", tmp_path / "out",
                       loaded=registry.load_model("tiny"), log=lambda _: None)
  assert len(calls) == 3 and report["prompts"] == 6
  assert report["items"] == {
      "total": len(augment.local_items(data.train, "sentence")), "used": 3,
      "skipped_too_long": 0, "skipped_ids": []}
  assert sum(report["finish"].values()) == 6
  assert report["correctness"]["checker"] == "reversals"
  assert report["sampling"]["generated_tokens"] > 0
  # Its cost, counted from its own token totals by the one FLOPs count.
  tokens = report["tokens"]
  assert tokens == {"prefix_tokens": report["prefix_tokens"], "prompts": 6,
                    "prompt_tokens": report["sampling"]["prompt_tokens"],
                    "generated_tokens": report["sampling"]["generated_tokens"]}
  assert report["flops"] == pytest.approx(flops.augmentation_flops(
      registry.model_config("tiny"), **tokens))
  rows = [json.loads(l)
          for l in (tmp_path / "out" / "generations.jsonl").open()]
  assert len(rows) == 6 and {r["sample_index"] for r in rows} == {0, 1}
  on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
  assert on_disk["prompts"] == 6
  manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
  assert "report.json" in manifest["sha256"]


def test_documents_too_long_for_the_context_are_skipped():
  """A 64 KB document (one sentence, ~24x the tiny model's context) is
  skipped and counted, in context and as an item; the rest is augmented
  (1 MB behaves the same, only slower)."""
  loaded = registry.load_model("tiny")
  docs = _dataset("reversals").train[:4]
  huge = records.Document("huge", "glon femp trisk " * 4096)
  logs = []
  config = _config("reversals,global,tiny", num_samples=1, max_new_tokens=8,
                   max_items=0)
  kept, report, raw = augment.augment(config, docs + [huge], [], loaded,
                                      log=logs.append)
  assert report["items"] == {"total": 5, "used": 4, "skipped_too_long": 1,
                             "skipped_ids": ["huge"]}
  assert report["context"]["documents_in_context"] == 4
  assert report["prompts"] == 4 and {r["source_id"] for r in raw} == {
      d.id for d in docs}
  assert any("skipped 1 of 5 items too long" in l and "huge" in l
             for l in logs), logs
  # Nothing fits: an empty result that says why, not an error.
  local = _config("reversals,local,tiny", unit="document", max_new_tokens=8)
  kept, report, raw = augment.augment(local, [huge], [], loaded,
                                      log=lambda _: None)
  assert (kept, raw, report["prompts"]) == ([], [], 0)
  assert report["items"]["skipped_too_long"] == 1
  assert report["postprocess"]["kept"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("arg",
                         ["reversals,local,tiny", "syllogisms,global,tiny"])
def test_launch_end_to_end(repo_root, tmp_path, arg):
  cmd = [sys.executable, str(repo_root / "launch" / "augment.py"),
         f"--config={repo_root / 'configs' / 'augment.py'}:{arg}",
         f"--workdir={tmp_path / 'run'}",
         f"--config.data_root={tmp_path / 'data'}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = tmp_path / "run" / "augmented"
  for name in ("train.jsonl", "test.jsonl", "manifest.json", "README.md",
               "report.json", "generations.jsonl"):
    assert (out / name).is_file(), name
  report = json.loads((out / "report.json").read_text())
  dataset, strategy, _ = arg.split(",")
  assert report["dataset"] == dataset and report["strategy"] == strategy
  assert report["prompts"] == 8 * 2  # tiny: 8 items x 2 samples
  assert report["postprocess"]["kept"] == len(
      (out / "train.jsonl").read_text().splitlines())
  assert (tmp_path / "data" / "tiny" / dataset / "train.jsonl").is_file()
  if strategy == "global":
    assert report["context"]["documents_in_context"] >= 1
  # A bad config fails with one clear line.
  bad = subprocess.run(
      cmd + ["--config.max_context_tokens=0", "--config.num_samples=0"],
      capture_output=True, text=True, timeout=300)
  assert (bad.returncode != 0 and
          "error: config.num_samples must be >= 1" in bad.stderr)
