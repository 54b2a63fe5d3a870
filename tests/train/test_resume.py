"""Exact, preemption-safe resume through `launch/finetune.py` (subprocesses).

A reference run trains uninterrupted; the other runs are killed (SIGKILL),
preempted (SIGTERM) or left with a broken newest checkpoint, restarted with
the same command, and must end with the reference's params digest.
"""

import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_STEPS = 50
# launch/finetune.py with slowed steps, so that a signal lands mid-run.
_LAUNCHER = pathlib.Path(__file__).with_name("slow_finetune.py")
_COMMON = ["--config.num_devices=1", "--config.progress=False",
           "--config.eval.every=-1", "--config.export_hf=False",
           f"--config.steps={_STEPS}"]


def _env(cache_dir):
  env = dict(os.environ)
  env["PYTHONPATH"] = str(_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
  env["JAX_PLATFORMS"] = "cpu"
  # Share compiled executables between the runs (same HLO, same program).
  env["JAX_COMPILATION_CACHE_DIR"] = str(cache_dir)
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
  return env


def _command(workdir, *extra):
  return [sys.executable, str(_LAUNCHER),
          "--config=" + str(_ROOT / "configs" / "finetune.py") +
          ":reversals,tiny", f"--workdir={workdir}", *_COMMON, *extra]


def _run(workdir, cache_dir, *extra):
  proc = subprocess.run(_command(workdir, *extra), env=_env(cache_dir),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _summary(workdir):
  return json.loads((pathlib.Path(workdir) / "train_summary.json").read_text())


def _steps(workdir):
  ckpts = pathlib.Path(workdir) / "checkpoints"
  if not ckpts.is_dir():
    return []
  return sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())


def _wait_for(proc, predicate, timeout=400):
  start = time.time()
  while not predicate():
    if proc.poll() is not None:
      raise AssertionError(
          f"run ended (rc {proc.returncode}) before the condition:"
          f" {proc.stderr.read()[-3000:]}")
    if time.time() - start > timeout:
      proc.kill()
      raise AssertionError("timed out waiting for the run")
    time.sleep(0.05)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
  workdir = tmp_path_factory.mktemp("reference")
  _run(workdir, cache_dir)
  summary = _summary(workdir)
  assert summary["steps"] == _STEPS
  return workdir, summary


def test_sigkill_at_a_random_step_then_resume_is_exact(
    reference, cache_dir, tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.Popen(_command(workdir), env=_env(cache_dir),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
  _wait_for(proc, lambda: any(s > 10 for s in _steps(workdir)))
  time.sleep(random.uniform(0.0, 0.4))
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (workdir / "train_summary.json").exists(), "run was not cut"
  killed_at = max(_steps(workdir))
  assert 10 < killed_at < _STEPS
  out = _run(workdir, cache_dir)
  assert "resumed from step" in out.stdout
  summary = _summary(workdir)
  assert summary["steps"] == _STEPS
  assert summary["params_digest"] == reference[1]["params_digest"]
  assert summary["final_loss"] == reference[1]["final_loss"]
  # The resumed run counts the steps before the kill too.
  assert summary["train_tokens"] == reference[1]["train_tokens"]
  assert summary["flops"] == reference[1]["flops"]
  # metrics.jsonl reads as one run: every step once.
  steps = [json.loads(l)["step"] for l in
           (workdir / "metrics.jsonl").read_text().splitlines()
           if "loss" in json.loads(l)]
  assert steps == list(range(1, _STEPS + 1))


def test_sigterm_saves_off_interval_and_exits_cleanly(
    reference, cache_dir, tmp_path):
  workdir = tmp_path / "run"
  # Interval 25: any checkpoint before step 25 comes from the SIGTERM.
  proc = subprocess.Popen(_command(workdir, "--config.checkpoint_every=25"),
                          env=_env(cache_dir), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  metrics = workdir / "metrics.jsonl"
  _wait_for(proc, lambda: metrics.exists() and
            len(metrics.read_text().splitlines()) >= 3)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  assert "preempted" in out
  step = json.loads((workdir / "preempted.json").read_text())["step"]
  assert _steps(workdir) == [step]
  assert 3 <= step < 25
  assert not (workdir / "train_summary.json").exists()
  _run(workdir, cache_dir, "--config.checkpoint_every=25")
  assert not (workdir / "preempted.json").exists()
  assert _summary(workdir)["params_digest"] == reference[1]["params_digest"]


def test_crash_during_save_falls_back_to_last_complete_checkpoint(
    reference, cache_dir, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(reference[0], workdir)
  (workdir / "train_summary.json").unlink()
  steps = _steps(workdir)
  assert steps[-1] == _STEPS and len(steps) >= 2
  # The newest step directory is half written: its array data is truncated
  # and its metadata gone; a later save died in orbax's temporary directory.
  newest = workdir / "checkpoints" / str(_STEPS)
  for path in sorted(newest.rglob("*")):
    if path.is_file():
      if "meta" in path.parts or path.name.startswith("_"):
        path.unlink()
      else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
  tmp = workdir / "checkpoints" / f"{_STEPS + 10}.orbax-checkpoint-tmp-1"
  tmp.mkdir()
  (tmp / "junk").write_bytes(b"\0" * 100)
  out = _run(workdir, cache_dir)
  assert f"resumed from step {steps[-2]}" in out.stdout
  summary = _summary(workdir)
  assert summary["steps"] == _STEPS
  assert summary["params_digest"] == reference[1]["params_digest"]
  assert (workdir / "checkpoints_broken").is_dir()
