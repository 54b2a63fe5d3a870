"""launch/_common.py through the launchers: config loading and one-line
errors for bad settings, before anything costly runs."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # Subprocesses importing jax: a few s each.


def _run(repo_root, script, *args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, f"launch/{script}", *args],
                        cwd=repo_root, env=env, capture_output=True,
                        text=True, timeout=300)


@pytest.mark.parametrize("script,args,message", [
    ("run_experiment.py",
     ["--config=configs/experiment.py:reversals,tiny",
      "--config.finetune.seed=3"],
     "error: config.finetune.seed is set by the experiment; use"
     " --config.seeds"),
    ("run_experiment.py",
     ["--config=experiment:reversals,tiny", "--config.evaluate.model=tiny"],
     "error: config.evaluate.model is set by the experiment; use"
     " --config.model"),
    ("finetune.py",
     ["--config=configs/finetune.py:reversals,tiny", "--config.eval_splits=x"],
     "error: config.eval_splits was renamed: use config.eval.splits"),
    ("run_experiment.py",
     ["--config=configs/experiment.py:reversals,tiny",
      "--config.finetune.eval_max_questions=3"],
     "error: config.finetune.eval_max_questions was renamed: use"
     " config.finetune.eval.max_questions_per_split"),
    ("evaluate.py",
     ["--config=configs/evaluate.py:icl,tiny", "--config.batch_sise=3"],
     "error: config.batch_sise does not exist; did you mean"
     " config.batch_size?"),
    ("generate_data.py", ["--config=configs/nope.py:x"],
     "error: flag --config=configs/nope.py:x: no config file"
     " configs/nope.py"),
])
def test_bad_setting_is_one_line(repo_root, tmp_path, script, args, message):
  out = _run(repo_root, script, *args, f"--workdir={tmp_path / 'w'}")
  assert out.returncode == 1, out.stderr
  assert out.stderr.strip() == message
  assert not (tmp_path / "w").exists()


def test_traceback_on_request(repo_root, tmp_path):
  out = _run(repo_root, "run_experiment.py",
             "--config=configs/experiment.py:reversals,tiny",
             "--config.finetune.seed=3", "--traceback",
             f"--workdir={tmp_path}")
  assert out.returncode == 1
  assert "Traceback (most recent call last)" in out.stderr
  assert out.stderr.strip().endswith(
      "error: config.finetune.seed is set by the experiment; use"
      " --config.seeds")


def test_short_config_name_generates_the_same_dataset(repo_root, tmp_path):
  for spec, sub in (("configs/data.py:reversals,tiny", "a"),
                    ("data:reversals,tiny", "b")):
    out = _run(repo_root, "generate_data.py", f"--config={spec}",
               f"--workdir={tmp_path / sub}")
    assert out.returncode == 0, out.stderr
  for name in ("train.jsonl", "test.jsonl"):
    assert ((tmp_path / "a" / "reversals" / name).read_bytes()
            == (tmp_path / "b" / "reversals" / name).read_bytes())
