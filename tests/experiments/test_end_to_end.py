"""The experiment runner with the real libraries on the tiny model.

Fast: one dataset, a few conditions, few steps (normal suite). Slow: every
dataset with every condition through the launcher, and a run killed mid-way
(SIGKILL) then rerun: finished stages are not redone.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ftgen import configs
from ftgen.data import registry
from ftgen.experiments import conditions
from ftgen.experiments import runner

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "launch" / "run_experiment.py"
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
DATASETS = ("reversals", "syllogisms", "semantic", "celebrities", "process")


def _config(arg):
  return configs.load(f"experiment:{arg}")


def _env():
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)  # The launcher runs on the plain CPU device.
  env["JAX_PLATFORMS"] = "cpu"
  return env


def test_tiny_experiment_in_process(tmp_path):
  c = _config("syllogisms,tiny")
  c.conditions = ("pretrained", "icl", "finetune_aug_oracle")
  c.steps = 3
  c.finetune.warmup_steps = 1
  c.finetune.checkpoint_every = 3
  out = runner.run_experiment(c, tmp_path, log=lambda s: None)
  s = json.loads((tmp_path / "summary.json").read_text())
  assert list(s["conditions"]) == ["pretrained", "icl", "finetune_aug_oracle"]
  e = s["conditions"]["finetune_aug_oracle"]["syllogism"]
  assert e["n"] == 12 and 0.0 <= e["acc"] <= 1.0 and 0 < e["chance"] < 1
  ft = json.loads(
      (tmp_path / "stages/finetune__finetune_aug_oracle__seed_0.json"
      ).read_text())
  assert ft["steps"] == 3 and ft["flops"] > 0
  costs = s["costs"]["conditions"]
  assert costs["icl"]["per_query"]["flops"] > costs["pretrained"][
      "per_query"]["flops"]
  assert out.figure.is_file() and (tmp_path / "results.parquet").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", DATASETS)
def test_launcher_tiny_all_conditions(tmp_path, name):
  proc = subprocess.run(
      [sys.executable, str(LAUNCHER),
       f"--config=configs/experiment.py:{name},tiny", f"--workdir={tmp_path}"],
      cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
      check=False)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  assert "| condition |" in proc.stdout and "figure:" in proc.stdout
  s = json.loads((tmp_path / "summary.json").read_text())
  ran = set(s["conditions"]) | set(s["skipped"])
  assert ran == set(_config(f"{name},tiny").conditions)
  # Every condition runs end to end (the augmentations are written by
  # tiny-writer and survive post-processing); process has no leak-free
  # oracle.
  assert list(s["skipped"]) == (["finetune_aug_oracle"]
                                if name == "process" else []), s["skipped"]
  for cond in s["conditions"]:
    if cond.startswith("finetune_aug"):
      assert all(c["augmented"] for c in s["coverage"][cond].values())
  # Steps follow each condition's training set; the compute control
  # matches the longest augmented condition.
  training = s["training"]
  longest = max(v["steps"] for k, v in training.items()
                if k.startswith("finetune_aug"))
  assert training["finetune_compute_control"]["steps"] == longest
  # Control splits are scored in every condition.
  for split in registry.get(name).controls:
    assert all(split in x for x in s["conditions"].values()), split
  for f in ("summary.md", "costs.json", "figure.png", "figure.svg",
            "results.csv"):
    assert (tmp_path / f).is_file()
  assert_statistics(name, s)
  assert_matches_golden(name, s, tmp_path / "results.jsonl")


def assert_statistics(name, summary):
  """Every entry has its interval and units; every comparison the paper
  makes is there for every split, for accuracy and margin, Holm-corrected."""
  splits = summary["splits"]
  for per_split in summary["conditions"].values():
    for e in per_split.values():
      lo, hi = e["ci95"]
      assert 0.0 <= lo <= e["acc"] <= hi <= 1.0 and hi > lo, e
      assert 1 <= e["clusters"] <= e["n"]
  pairs = conditions.comparisons(list(summary["conditions"]))
  rows = summary["comparisons"]
  assert len(rows) == 2 * len(pairs) * len(splits)
  for metric in ("accuracy", "margin"):
    family = [r for r in rows if r["metric"] == metric]
    assert {(r["a"], r["b"]) for r in family} == set(pairs)
    assert all(r["p_holm"] >= r["p"] for r in family if r["p"] is not None)
  # The questions of a split share units where the dataset says so.
  unit = registry.get(name).cluster_key
  if name == "semantic":
    e = summary["conditions"]["finetune"]["category_holdout"]
    assert unit == "entity" and e["clusters"] < e["n"]


def _without_timings(obj):
  if isinstance(obj, dict):
    return {k: _without_timings(v) for k, v in obj.items() if "wall" not in k}
  if isinstance(obj, list):
    return [_without_timings(v) for v in obj]
  return obj


@pytest.mark.slow
def test_same_command_gives_the_same_numbers(tmp_path):
  """Two runs of one command: identical summary.json apart from timings,
  and identical per-question results (two seeds, sampled augmentations)."""
  outs = []
  for run in ("a", "b"):
    workdir = tmp_path / run
    proc = subprocess.run(
        [sys.executable, str(LAUNCHER),
         "--config=configs/experiment.py:reversals,tiny",
         f"--workdir={workdir}", "--config.seeds=(0,1)",
         "--config.conditions=('pretrained','finetune','icl','finetune_aug')"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
        check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    outs.append((json.loads((workdir / "summary.json").read_text()),
                 (workdir / "results.jsonl").read_text()))
  (sa, ra), (sb, rb) = outs
  assert sa["seeds"] == [0, 1] and sa["comparisons"]
  assert _without_timings(sa) == _without_timings(sb)
  assert ra == rb


def assert_matches_golden(name, summary, results_path, conditions=None):
  """The run scores as the golden run did (golden/README.md).

  Args:
    name: the dataset of the tiny experiment.
    summary: the run's summary.json.
    results_path: its results.jsonl.
    conditions: the conditions the run had (None: all the golden run had).
  """
  golden = json.loads((GOLDEN / "tiny_experiments.json").read_text())
  want = golden["datasets"][name]
  if conditions is not None:
    want = {"skipped": sorted(set(want["skipped"]) & conditions),
            "conditions": {c: v for c, v in want["conditions"].items()
                           if c in conditions},
            "logliks": {c: v for c, v in want["logliks"].items()
                        if c in conditions}}
  assert sorted(summary["skipped"]) == want["skipped"]
  got_acc = {c: {sp: {"acc": v["acc"], "n": v["n"]} for sp, v in x.items()}
             for c, x in summary["conditions"].items()}
  got_ll = {}
  with open(results_path, encoding="utf-8") as f:
    for line in f:
      row = json.loads(line)
      got_ll.setdefault(row["condition"], {})[row["id"]] = row["logliks"]
  assert set(got_ll) == set(want["logliks"])
  for cond, by_id in want["logliks"].items():
    assert set(got_ll[cond]) == set(by_id), cond
    for qid, ll in by_id.items():
      # float32 sums of ~20 token log-probs of about -10 each: 1e-5 relative
      # is a few ulps of accumulated rounding, far below any real change.
      np.testing.assert_allclose(got_ll[cond][qid], ll, rtol=1e-5, atol=1e-4,
                                 err_msg=f"{name} {cond} {qid}")
  assert got_acc == want["conditions"]


@pytest.mark.slow
def test_killed_launcher_resumes(tmp_path):
  args = [sys.executable, str(LAUNCHER),
          "--config=configs/experiment.py:reversals,tiny",
          f"--workdir={tmp_path}",
          "--config.conditions=('pretrained','finetune','finetune_aug_oracle')"]
  marker = tmp_path / "stages" / "finetune__finetune__seed_0.json"
  proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.time() + 600
    while not marker.exists() and time.time() < deadline:
      if proc.poll() is not None:
        pytest.fail("finished before it could be killed:\n"
                    + proc.stdout.read()[-3000:])
      time.sleep(0.5)
    assert marker.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  before = marker.stat().st_mtime_ns
  assert not (tmp_path / "summary.json").exists()
  rerun = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=900, check=False)
  assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-4000:]
  assert "[skip] data" in rerun.stdout
  assert "[skip] finetune/finetune/seed_0" in rerun.stdout
  assert "[run ] finetune/finetune/seed_0" not in rerun.stdout
  assert marker.stat().st_mtime_ns == before
  s = json.loads((tmp_path / "summary.json").read_text())
  assert set(s["conditions"]) == {"pretrained", "finetune",
                                  "finetune_aug_oracle"}


@pytest.mark.slow
def test_interrupted_launcher_says_how_to_resume(tmp_path):
  args = [sys.executable, str(LAUNCHER),
          "--config=configs/experiment.py:reversals,tiny",
          f"--workdir={tmp_path / 'run'}",
          "--config.conditions=('pretrained','finetune')"]
  marker = tmp_path / "run" / "stages" / "data.json"
  err_path = tmp_path / "stderr.txt"
  with open(err_path, "w") as err_file:
    # A terminal's Ctrl-C: the default SIGINT even when this test runs in a
    # background shell job, which ignores SIGINT (inherited, Python would
    # keep ignoring it).
    proc = subprocess.Popen(
        args, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
        stderr=err_file,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
      deadline = time.time() + 600
      while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
      assert marker.exists() and proc.poll() is None
      # Ctrl-C, pressed again while it has no effect: Python ignores one that
      # lands inside a garbage-collection callback of jax ("Exception
      # ignored"), as a user at a terminal would see.
      for _ in range(30):
        if "rerun the same command" in err_path.read_text():
          break
        proc.send_signal(signal.SIGINT)
        try:
          proc.wait(timeout=2)
          break
        except subprocess.TimeoutExpired:
          continue
      proc.wait(timeout=120)
    finally:
      if proc.poll() is None:
        proc.kill()
  err = err_path.read_text()
  assert proc.returncode == 130, err[-3000:]
  assert err.rstrip().endswith(f"rerun the same command to resume from"
                               f" {tmp_path / 'run'}"), err[-3000:]
  assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow
def test_tiny_empty_augmentation_is_not_redone(tmp_path):
  """The random tiny model's augmentations yield no statements: the stage
  is finished with that reason, and a rerun samples nothing."""
  c = _config("reversals,tiny")
  c.augment_model = "tiny"
  c.conditions = ("pretrained", "finetune_aug_local")
  c.augment_local.max_items = 4
  for attempt in range(2):
    logs = []
    out = runner.run_experiment(c, tmp_path, log=logs.append)
    assert out.skipped_conditions == {
        "finetune_aug_local": "augmentation 'local' unavailable: the local"
                              " augmentation produced no statements"}
    marker = json.loads((tmp_path / "stages/augment__local.json").read_text())
    assert marker["num_documents"] == 0 and marker["flops"] > 0
    ran = [l for l in logs if l.startswith("[run ] augment")]
    assert ran == (["[run ] augment/local"] if attempt == 0 else []), logs


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["none", "independent", "cumulative"])
def test_tiny_split_ablation(tmp_path, mode):
  """The splitting ablation is one switch, run with the real libraries:
  semantic's multi-sentence documents become 1 (none) or one example per
  sentence (independent, cumulative), and each run is scored."""
  c = _config("semantic,tiny")
  c.conditions = ("finetune",)
  c.split_mode = mode
  c.epochs = 0.5
  out = runner.run_experiment(c, tmp_path, log=lambda s: None)
  training = out.summary["training"]["finetune"]
  assert training["split_mode"] == mode
  docs = json.loads((tmp_path / "data/semantic/manifest.json").read_text())[
      "sizes"]["train"]
  if mode == "none":
    assert training["train_examples"] == docs
  else:
    assert training["train_examples"] > 2 * docs
  assert all(e["acc"] is not None
             for e in out.summary["conditions"]["finetune"].values())
