"""Experiment runner: stages, resume after a kill, outputs (fake stage libs).

The stage libraries (augmentation, fine-tuning, evaluation) are replaced by
fast fakes that write the same files, so these tests check the runner's own
logic: the order of stages, markers, skipping finished stages, redoing
partial ones, and the tables. tests/experiments/test_end_to_end.py runs the
real libraries.
"""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from ftgen import configs
from ftgen.data import io as data_io
from ftgen.data import registry as data_registry
from ftgen.data import workdir as workdir_lib
from ftgen.experiments import conditions
from ftgen.experiments import runner


def _config(name="reversals", **overrides):
  c = configs.load(f"experiment:{name},tiny")
  for k, v in overrides.items():
    c[k] = v
  return c


# FLOPs the fake stages report (the runner must take them as they are).
_AUG_FLOPS, _TRAIN_FLOPS = 1.5e9, 2e9


class Fakes:
  """Fake stage functions that record their calls."""

  def __init__(self, fail_on=None):
    self.calls = []
    self.fail_on = fail_on
    self.steps = {}  # condition -> fine-tuning steps it was given.

  def _maybe_fail(self, what):
    self.calls.append(what)
    if self.fail_on == what:
      raise KeyboardInterrupt(f"killed during {what}")

  def augment(self, cfg, data_dir, workdir):
    self._maybe_fail(f"augment/{cfg.strategy}")
    # The runner made it (with ftgen's sentinel) before calling the stage.
    assert workdir_lib.made_by_ftgen(workdir)
    docs, _ = data_io.load_dataset_dir(data_dir)
    data_io.write_jsonl(workdir / "train.jsonl", [
        {"id": f"{cfg.strategy}-{i}", "text": d.text + " Indeed."}
        for i, d in enumerate(docs[:3])])
    return {"tokens": {"prefix_tokens": 50, "prompts": 3,
                       "prompt_tokens": 300, "generated_tokens": 60},
            "flops": _AUG_FLOPS}

  def finetune(self, cfg, workdir):
    self._maybe_fail(f"finetune/{pathlib.Path(workdir).parent.name}")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "export").mkdir(exist_ok=True)
    assert cfg.steps >= 1 and cfg.data.dir
    self.steps[pathlib.Path(workdir).parent.name] = cfg.steps
    return {"steps": cfg.steps, "final_loss": 1.0, "params_digest": "x",
            "export_dir": str(workdir / "export"), "wall_s": 0.1,
            "flops": _TRAIN_FLOPS, "train_tokens": 1000}

  def evaluate(self, cfg, workdir):
    cond = pathlib.Path(workdir).parent.name
    self._maybe_fail(f"eval/{cond}")
    assert workdir_lib.made_by_ftgen(workdir)
    if cfg.condition == "finetuned":
      assert pathlib.Path(cfg.checkpoint).is_dir()
    _, qs = data_io.load_dataset_dir(cfg.data, need_train=False)
    rng = np.random.default_rng(len(cond))
    rows = []
    for q in qs:
      ll = rng.normal(size=len(q.choices)).tolist()
      pred = int(np.argmax(ll))
      rows.append(dict(id=q.id, split=q.split, condition=cfg.condition,
                       logliks=ll, pred=pred, correct=pred in q.answers,
                       context_tokens=200 if cfg.condition == "icl" else 10,
                       num_tokens=[3] * len(q.choices)))
    data_io.write_jsonl(workdir / "results.jsonl", rows)
    return {"seconds_scoring": 0.5,
            "prefix_tokens_cached": 190 if cfg.condition == "icl" else 0}


@pytest.fixture
def fakes(monkeypatch):
  def install(fail_on=None):
    f = Fakes(fail_on)
    monkeypatch.setattr(runner, "run_augmentation", f.augment)
    monkeypatch.setattr(runner, "run_finetune", f.finetune)
    monkeypatch.setattr(runner, "run_evaluation", f.evaluate)
    return f
  return install


def test_all_conditions_and_outputs(tmp_path, fakes):
  f = fakes()
  out = runner.run_experiment(_config(), tmp_path, log=lambda s: None)
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["dataset"] == "reversals" and summary["model"] == "tiny"
  assert list(summary["conditions"]) == list(conditions.CONDITIONS)
  for cond in conditions.CONDITIONS:
    for split in ("reversal", "rephrase"):
      e = summary["conditions"][cond][split]
      assert set(e) >= {"acc", "stderr", "n", "chance"} and e["chance"] == 0.5
  # Fine-tuned conditions train once each; "both" reuses local + global.
  assert sorted(c for c in f.calls if c.startswith("augment")) == [
      "augment/global", "augment/local"]
  assert len([c for c in f.calls if c.startswith("finetune")]) == 6
  both = data_io.read_documents(tmp_path / "augment/both/train.jsonl")
  assert len(both) == 6
  # Steps follow each condition's own training set (2 epochs of batches of
  # 8: 36 documents; plus 3, 6 or the oracle's augmentations); the compute
  # control trains the originals as long as the longest augmented one.
  training = summary["training"]
  oracle = len(data_io.read_documents(tmp_path / "augment/oracle/train.jsonl"))
  for cond, extra in (("finetune", 0), ("finetune_aug_local", 3),
                      ("finetune_aug", 6), ("finetune_aug_oracle", oracle)):
    assert training[cond]["train_examples"] == 36 + extra
    assert f.steps[cond] == training[cond]["steps"] == -(-2 * (36 + extra)
                                                         // 8)
  control = training["finetune_compute_control"]
  longest = max(v["steps"] for k, v in training.items()
                if k not in ("finetune", "finetune_compute_control"))
  assert f.steps["finetune_compute_control"] == control["steps"] == longest
  assert control["train_examples"] == 36 and control["epochs"] > 2
  assert summary["coverage"]["finetune_aug"] == {
      "local": {"augmented": None, "items": None},
      "global": {"augmented": None, "items": None}}
  costs = summary["costs"]
  icl = costs["conditions"]["icl"]["per_query"]
  ft = costs["conditions"]["finetune_aug"]["per_query"]
  assert icl["flops"] > 10 * ft["flops"] > 0
  aug_once = costs["conditions"]["finetune_aug"]["one_time"]
  assert aug_once["stages"] == ["augment/local", "augment/global",
                                "finetune/finetune_aug/seed_0"]
  # FLOPs as the stages reported them: local + global + one fine-tuning.
  assert aug_once["flops"] == 2 * _AUG_FLOPS + _TRAIN_FLOPS
  assert costs["stages"]["finetune/finetune/seed_0"]["flops"] == _TRAIN_FLOPS
  assert costs["conditions"]["finetune"]["one_time"]["stages"] == [
      "finetune/finetune/seed_0"]
  assert costs["conditions"]["icl"]["one_time"]["stages"] == []
  even = costs["break_even"]["finetune_aug"]
  assert 0 < even["queries_flops"] < float("inf")
  for name in ("results.jsonl", "results.parquet", "results.csv",
               "summary.md", "costs.json", "figure.png", "figure.svg"):
    assert (tmp_path / name).is_file(), name
  rows = [json.loads(l) for l in open(tmp_path / "results.jsonl")]
  n_q = len(data_io.read_questions(tmp_path / "data/reversals/test.jsonl"))
  assert len(rows) == n_q * len(conditions.CONDITIONS)
  md = (tmp_path / "summary.md").read_text()
  assert "| finetune_aug_oracle |" in md and "Break-even" in md
  assert out.figure == tmp_path / "figure.png"


def test_killed_run_resumes_without_redoing_finished_stages(tmp_path, fakes):
  first = fakes(fail_on="eval/icl")
  with pytest.raises(KeyboardInterrupt):
    runner.run_experiment(_config(), tmp_path, log=lambda s: None)
  done_before = sorted(p.name for p in (tmp_path / "stages").iterdir())
  assert "eval__pretrained__seed_0.json" in done_before
  assert not (tmp_path / "stages/eval__icl__seed_0.json").exists()
  # The killed stage left a partial directory behind: it must be redone.
  (tmp_path / "eval/icl/seed_0").mkdir(parents=True, exist_ok=True)
  (tmp_path / "eval/icl/seed_0/junk").write_text("partial")
  second = fakes()
  logs = []
  runner.run_experiment(_config(), tmp_path, log=logs.append)
  redone = set(first.calls) & set(second.calls)
  assert redone == {"eval/icl"}, redone
  assert not (tmp_path / "eval/icl/seed_0/junk").exists()
  assert any(l.startswith("[skip] finetune/finetune_aug/seed_0") for l in logs)
  # A third run does nothing but the report.
  third = fakes()
  runner.run_experiment(_config(), tmp_path, log=lambda s: None)
  assert third.calls == []


def test_seeds_and_unavailable_oracle(tmp_path, fakes):
  f = fakes()
  c = _config("process", seeds=(0, 1),
              conditions=("pretrained", "finetune", "finetune_aug_oracle"))
  out = runner.run_experiment(c, tmp_path, log=lambda s: None)
  assert "finetune_aug_oracle" in out.skipped_conditions
  assert "leak" in out.skipped_conditions["finetune_aug_oracle"]
  # Pretrained is seed-free (one evaluation); finetune runs per seed.
  assert f.calls.count("eval/pretrained") == 1
  assert f.calls.count("finetune/finetune") == 2
  s = out.summary
  assert list(s["conditions"]) == ["pretrained", "finetune"]
  assert s["seeds"] == [0, 1] and s["skipped"]
  e = next(iter(s["conditions"]["finetune"].values()))
  assert e["n_seeds"] == 2


def test_seeds_can_be_added_to_a_finished_run(tmp_path, fakes):
  conds = ("pretrained", "finetune")
  fakes()
  runner.run_experiment(_config(seeds=(0,), conditions=conds), tmp_path,
                        log=lambda s: None)
  f = fakes()
  out = runner.run_experiment(_config(seeds=(0, 1, 2), conditions=conds),
                              tmp_path, log=lambda s: None)
  # Only the new seeds' fine-tuning and evaluation run.
  assert sorted(f.calls) == sorted(["finetune/finetune"] * 2
                                   + ["eval/finetune"] * 2)
  assert out.summary["seeds"] == [0, 1, 2]
  # The first seed writes the augmentations: changing it is another run.
  with pytest.raises(runner.ExperimentConfigError, match="seeds"):
    runner.run_experiment(_config(seeds=(1, 2), conditions=conds), tmp_path,
                          log=lambda s: None)
  provenance = json.loads((tmp_path / "provenance.json").read_text())
  assert len(provenance) == 2
  assert provenance[1]["stages_ran"] == [
      "finetune/finetune/seed_1", "finetune/finetune/seed_2",
      "eval/finetune/seed_1", "eval/finetune/seed_2"]


def test_config_errors_name_the_key(tmp_path):
  with pytest.raises(runner.ExperimentConfigError, match="conditions"):
    runner.run_experiment(_config(conditions=("nope",)), tmp_path)
  with pytest.raises(runner.ExperimentConfigError, match="split_mode"):
    runner.run_experiment(_config(split_mode="words"), tmp_path)


def test_too_long_examples_fail_before_the_costly_stages(tmp_path, fakes):
  f = fakes()
  c = _config()
  c.finetune.data.max_len = 4
  with pytest.raises(runner.ExperimentConfigError,
                     match=r"--config.finetune.data.max_len=\d+"):
    runner.run_experiment(c, tmp_path)
  assert not f.calls  # No augmentation or fine-tuning was started.
  # Raising it as the message says lets the same workdir run (room for the
  # fake augmentations, which are longer).
  c.finetune.data.max_len = 96
  runner.run_experiment(c, tmp_path, log=lambda _: None)
  assert "finetune/finetune" in f.calls


def test_empty_augmentation_is_a_finished_stage(tmp_path, fakes, monkeypatch):
  f = fakes()
  fake_augment = f.augment

  def local_yields_nothing(cfg, data_dir, workdir):
    report = fake_augment(cfg, data_dir, workdir)
    if cfg.strategy == "local":
      data_io.write_jsonl(workdir / "train.jsonl", [])
    return report

  monkeypatch.setattr(runner, "run_augmentation", local_yields_nothing)
  c = _config(conditions=("pretrained", "finetune_aug_local",
                          "finetune_aug_global", "finetune_aug"))
  why = "the local augmentation produced no statements"
  for attempt in range(2):
    f.calls.clear()
    out = runner.run_experiment(c, tmp_path, log=lambda _: None)
    assert out.skipped_conditions == {
        "finetune_aug_local": f"augmentation 'local' unavailable: {why}",
        "finetune_aug": "augmentation 'both' unavailable: needs the local"
                        " augmentation"}, attempt
    assert list(out.summary["conditions"]) == ["pretrained",
                                               "finetune_aug_global"]
    # Recorded as finished (with its cost): a rerun does not sample again.
    marker = json.loads((tmp_path / "stages/augment__local.json").read_text())
    assert marker["num_documents"] == 0 and marker["unavailable"] == why
    assert marker["flops"] == _AUG_FLOPS
    assert f.calls == (["augment/local", "augment/global",
                        "finetune/finetune_aug_global", "eval/pretrained",
                        "eval/finetune_aug_global"] if attempt == 0 else [])


def test_an_oracle_that_writes_test_items_is_not_reported(tmp_path, fakes,
                                                         monkeypatch):
  fakes()
  spec = data_registry.get("reversals")

  def leaky(dataset):
    # What the old reversals oracle did: the test prompt + answer verbatim.
    return [q.prompt + q.choices[q.answer] for q in dataset.test[:2]] + [
        "Femp weigh more than glon, as everyone knows."]

  monkeypatch.setitem(data_registry.SPECS, "reversals",
                      dataclasses.replace(spec, oracle=leaky))
  c = _config(conditions=("pretrained", "finetune_aug_oracle"))
  out = runner.run_experiment(c, tmp_path, log=lambda _: None)
  why = out.skipped_conditions["finetune_aug_oracle"]
  assert "states 2 test items" in why and "memorising" in why
  assert list(out.summary["conditions"]) == ["pretrained"]


def test_matched_steps_and_compute_control_without_augmentation(tmp_path,
                                                                fakes):
  f = fakes()
  c = _config(steps=7, conditions=("finetune", "finetune_aug_local"))
  out = runner.run_experiment(c, tmp_path, log=lambda _: None)
  assert f.steps == {"finetune": 7, "finetune_aug_local": 7}
  assert out.summary["step_rule"] == "matched"
  f = fakes()
  c = _config(conditions=("finetune", "finetune_compute_control"))
  out = runner.run_experiment(c, tmp_path / "b", log=lambda _: None)
  assert "no augmented condition" in out.skipped_conditions[
      "finetune_compute_control"]


@pytest.mark.parametrize("mode", ["paper", "none", "independent",
                                  "cumulative"])
def test_split_mode_is_one_switch(tmp_path, fakes, mode):
  """The splitting ablation: `paper` trains semantic's plain baseline on
  whole documents and the augmented conditions on independent sentences;
  any other mode applies to every fine-tuning condition."""
  f = fakes()
  seen = {}
  fake_finetune = f.finetune

  def record(cfg, workdir):
    seen[pathlib.Path(workdir).parent.name] = cfg.data.split_mode
    return fake_finetune(cfg, workdir)

  runner.run_finetune = record
  c = _config("semantic", split_mode=mode,
              conditions=("finetune", "finetune_aug_local"))
  out = runner.run_experiment(c, tmp_path, log=lambda _: None)
  want = ({"finetune": "none", "finetune_aug_local": "independent"}
          if mode == "paper" else
          {"finetune": mode, "finetune_aug_local": mode})
  assert seen == want
  assert {k: v["split_mode"] for k, v in out.summary["training"].items()
          } == want


def test_augment_model_writes_the_augmentations(tmp_path, fakes):
  f = fakes()
  models = []
  fake_augment = f.augment

  def record(cfg, data_dir, workdir):
    models.append(cfg.model)
    return fake_augment(cfg, data_dir, workdir)

  runner.run_augmentation = record
  c = _config(augment_model="tiny", conditions=("finetune_aug_local",))
  out = runner.run_experiment(c, tmp_path, log=lambda _: None)
  assert models == ["tiny"] and out.summary["augment_model"] == "tiny"
  assert out.summary["costs"]["augment_model"] == "tiny"
  with pytest.raises(runner.ExperimentConfigError, match="augment_model"):
    runner.run_experiment(_config(augment_model="no-such-model"),
                          tmp_path / "b")
