"""The tiny experiment as two jax.distributed processes on one workdir.

Both processes run `launch/run_experiment.py --multihost` on this machine
(one CPU device each, gloo collectives): they share the sampling, the
fine-tuning and the scoring, and process 0 alone writes the workdir. With
every condition, the run must score as the single-process golden run
(`golden/tiny_experiments.json`, which `test_end_to_end.py` checks a
single-process run against): accuracies exactly, log-likelihoods within
float32 rounding of summing over two devices. A run killed in mid
fine-tuning and rerun must end as the uninterrupted one; that part runs a
subset of the conditions (one augmentation sampled, one fine-tuning, plain
and prefix-cached scoring) to keep the test short.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from ftgen import configs
import test_end_to_end  # tests/experiments/test_end_to_end.py

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "launch" / "run_experiment.py"
WORKER = pathlib.Path(__file__).with_name("multihost_experiment_worker.py")
ALL = ("--config=configs/experiment.py:reversals,tiny",)
SUBSET = ALL + (
    "--config.conditions=('pretrained','icl','finetune_aug_local')",
    # A checkpoint early in the fine-tuning, for the kill.
    "--config.finetune.checkpoint_every=3")
FINETUNE = pathlib.Path("finetune/finetune_aug_local/seed_0")
# The report files (process 0's alone).
REPORT = ("summary.json", "summary.md", "costs.json", "results.jsonl",
          "results.csv", "results.parquet", "figure.png", "figure.svg",
          "config.json")


def _env():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join(
      [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
  return env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _start(workdir: pathlib.Path, logs: pathlib.Path, args=SUBSET):
  """The two processes of one run; their output and writes go to `logs`."""
  logs.mkdir(parents=True, exist_ok=True)
  port = _free_port()
  procs = []
  for i in range(2):
    with open(logs / f"log{i}", "a", encoding="utf-8") as out:
      procs.append(subprocess.Popen(
          [sys.executable, str(WORKER), str(logs / f"writes{i}"),
           str(LAUNCHER), *args, f"--workdir={workdir}", "--multihost",
           f"--coordinator_address=localhost:{port}", "--num_processes=2",
           f"--process_id={i}"],
          cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT))
  return procs


def _logs(procs, logs: pathlib.Path) -> str:
  # Both logs: a process that waits at a barrier usually waited for the
  # other one, whose log has the cause.
  return "\n".join(
      f"--- process {i} (exit {p.poll()}) ---\n"
      + (logs / f"log{i}").read_text(errors="replace")[-3000:]
      for i, p in enumerate(procs))


def _finish(procs, logs: pathlib.Path, timeout: float = 600):
  try:
    for p in procs:
      p.wait(timeout=timeout)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  assert all(p.returncode == 0 for p in procs), _logs(procs, logs)


def _timeless(x, key=""):
  """`x` without wall-clock fields (times, throughput) and the device count."""
  if isinstance(x, dict):
    return {k: _timeless(v, k) for k, v in x.items()
            if not any(w in k for w in ("wall", "seconds", "_per_s"))
            and k != "device"}
  if isinstance(x, list):
    return [_timeless(v, key) for v in x]
  return x


def _summary(workdir: pathlib.Path):
  return _timeless(json.loads((workdir / "summary.json").read_text()))


def _written(logs: pathlib.Path, i: int, workdir: pathlib.Path) -> set[str]:
  """The paths under `workdir` that process i opened to write or renamed
  onto, relative to it."""
  path = logs / f"writes{i}"
  lines = path.read_text().splitlines() if path.exists() else []
  root = str(workdir.resolve()) + os.sep
  return {l[len(root):] for l in lines if l.startswith(root)}


def _check_writers(logs: pathlib.Path, workdir: pathlib.Path):
  """Process 0 wrote the report; process 1 wrote nothing but its shards of
  orbax's checkpoints (it writes none of ftgen's files)."""
  w0, w1 = _written(logs, 0, workdir), _written(logs, 1, workdir)
  assert set(REPORT) <= w0, sorted(w0)
  stray = sorted(p for p in w1 if "/checkpoints/" not in f"/{p}")
  assert not stray, stray


@pytest.mark.slow
def test_two_process_experiment_equals_one_process_and_resumes(tmp_path):
  # Uninterrupted, every condition: scores as the single-process golden run
  # (the fine-tuning sums gradients over two devices: float32 rounding).
  shared, logs = tmp_path / "shared", tmp_path / "logs"
  procs = _start(shared, logs, ALL)
  _finish(procs, logs)
  got = json.loads((shared / "summary.json").read_text())
  ran = set(got["conditions"]) | set(got["skipped"])
  assert ran == set(configs.load("experiment:reversals,tiny").conditions)
  test_end_to_end.assert_matches_golden("reversals", got,
                                        shared / "results.jsonl")
  _check_writers(logs, shared)

  # Killed once fine-tuning's first checkpoint exists, then rerun: resumes
  # from it and ends as the uninterrupted run.
  resumed, logs = tmp_path / "resumed", tmp_path / "logs_resumed"
  procs = _start(resumed, logs)
  checkpoint = resumed / FINETUNE / "checkpoints" / "3"
  done = resumed / "stages" / "finetune__finetune_aug_local__seed_0.json"
  try:
    deadline = time.time() + 600
    while not checkpoint.is_dir() and time.time() < deadline:
      assert all(p.poll() is None for p in procs), _logs(procs, logs)
      time.sleep(0.2)
    assert checkpoint.is_dir(), _logs(procs, logs)
    for p in procs:
      p.send_signal(signal.SIGKILL)
    for p in procs:
      p.wait(timeout=60)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert not done.exists(), "the fine-tuning finished before the kill"
  procs = _start(resumed, logs)
  _finish(procs, logs)
  log0 = (logs / "log0").read_text()
  assert "[skip] augment/local" in log0
  assert "resumed from step" in log0, log0[-3000:]
  again = _summary(resumed)
  want = _timeless(got)
  assert set(again["conditions"]) == {"pretrained", "icl",
                                      "finetune_aug_local"}
  for cond in again["conditions"]:
    assert again["conditions"][cond] == want["conditions"][cond], cond
  assert (again["training"]["finetune_aug_local"]
          == want["training"]["finetune_aug_local"])
  test_end_to_end.assert_matches_golden(
      "reversals", json.loads((resumed / "summary.json").read_text()),
      resumed / "results.jsonl", conditions=set(again["conditions"]))
  _check_writers(logs, resumed)
