"""launch/_common.py through the launchers: config loading and one-line
errors for bad settings, before anything costly runs."""

import concurrent.futures
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # Subprocesses importing jax: a few s each.


def _run(repo_root, script, *args, env=None):
  env = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
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
    ("run_experiment.py",
     ["--config=configs/experiment.py:reversals,tiny", "--num_processes=2",
      "--process_id=1"],
     "error: --num_processes, --process_id need --multihost"),
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


# Every launcher on a table of bad inputs (docs/reliability.md#one-line-
# errors): a typo'd key, a bad value, a missing file and a workdir that
# cannot be created. "FILE" stands for a regular file (a read-only
# directory would not stop root, who runs some CI).
_CONFIG = {"generate_data": "configs/data.py:reversals,tiny",
           "augment": "configs/augment.py:reversals,local,tiny",
           "finetune": "configs/finetune.py:reversals,tiny",
           "evaluate": "configs/evaluate.py:icl,tiny",
           "run_experiment": "configs/experiment.py:reversals,tiny",
           "export": "configs/export.py:gguf"}
_BAD_INPUTS = [
    ("generate_data", ["--config.generator.num_factz=3"],
     r"config.generator.num_factz does not exist; did you mean"
     r" config.generator.num_facts\?"),
    ("generate_data", ["--config.generator.num_facts=-1"],
     r"num_facts must be >= 2, got -1"),
    ("generate_data", ["--config=configs/data.py:user",
                       "--config.generator.documents=/nonexistent/d.jsonl"],
     r"/nonexistent/d.jsonl: file not found"),
    ("augment", ["--config.num_sample=2"],
     r"config.num_sample does not exist; did you mean config.num_samples\?"),
    ("augment", ["--config.num_samples=0"],
     r"config.num_samples must be >= 1, got 0"),
    ("augment", ["--config.data=/nonexistent"],
     r"/nonexistent: dataset directory not found"),
    ("finetune", ["--config.lrr=1"],
     r"config.lrr does not exist; did you mean config.lr\?"),
    ("finetune", ["--config.batch_size=-2"], r"config.batch_size=-2 must be"
                                             r" >= 1"),
    ("finetune", ["--config.data.dir=/nonexistent"],
     r"'data.dir' = '/nonexistent' holds no train.jsonl"),
    ("evaluate", ["--config.data=/nonexistent", "--config.batch_size=0"],
     r"config.batch_size=0 must be >= 1"),
    ("evaluate", ["--config.data=/nonexistent"],
     r"/nonexistent: dataset directory not found"),
    ("run_experiment", ["--config.finetune.lrr=1"],
     r"config.finetune.lrr does not exist; did you mean config.finetune.lr\?"),
    ("run_experiment", ["--config.model=foo"],
     r"config.model: unknown model 'foo'"),
    ("run_experiment", ["--config.finetune.batch_size=-2"],
     r"config.finetune.batch_size=-2 must be >= 1"),
    ("run_experiment", ["--config.evaluate.batch_size=0"],
     r"config.evaluate.batch_size=0 must be >= 1"),
    ("run_experiment", ["--config.data_dir=/nonexistent"],
     r"config.data_dir='/nonexistent' is not a directory"),
    ("export", ["--config.typ=q8_0"],
     r"config.typ does not exist; did you mean config.type\?"),
    ("export", ["--config.checkpoint=tiny", "--config.type=q9"],
     r"type 'q9'; allowed: f16, q8_0, f32"),
    ("export", ["--config.checkpoint=/nonexistent"],
     r"unknown model '/nonexistent'"),
] + [(script, ["--workdir=FILE/w"],
      r"workdir .*/FILE/w cannot be created: .*/FILE is not a directory")
     for script in _CONFIG]


def test_every_launcher_reports_bad_input_in_one_line(repo_root, tmp_path):
  (tmp_path / "FILE").write_text("a user's file\n")

  def launch(i, script, args):
    workdir = tmp_path / f"w{i}"
    args = [a.replace("FILE", str(tmp_path / "FILE")) for a in args]
    if not any(a.startswith("--workdir=") for a in args):
      args.append(f"--workdir={workdir}")
    if not any(a.startswith("--config=") for a in args):
      args.insert(0, f"--config={_CONFIG[script]}")
    return _run(repo_root, f"{script}.py", *args)

  # In parallel: each subprocess spends most of its second importing.
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    outs = list(pool.map(lambda c: launch(c[0], *c[1][:2]),
                         enumerate(_BAD_INPUTS)))
  for (script, args, message), out in zip(_BAD_INPUTS, outs):
    what = f"{script} {args}: {out.stderr[-2000:]}"
    assert out.returncode == 1, what
    assert "Traceback" not in out.stderr, what
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), what
    assert re.search(message, lines[0]), what
  assert (tmp_path / "FILE").read_text() == "a user's file\n"
  # Settings are checked before any work: no workdir left behind. (A
  # missing input is found by the stage itself, maybe after it made its
  # workdir.)
  for i, (script, args, _) in enumerate(_BAD_INPUTS):
    if not any("/nonexistent" in a for a in args):
      assert not (tmp_path / f"w{i}").exists(), (script, args)


def test_traceback_by_environment_variable(repo_root, tmp_path):
  out = _run(repo_root, "finetune.py", f"--config={_CONFIG['finetune']}",
             "--config.batch_size=-2", f"--workdir={tmp_path / 'w'}",
             env={"FTGEN_TRACEBACK": "1"})
  assert out.returncode == 1
  assert "Traceback (most recent call last)" in out.stderr
  assert out.stderr.strip().splitlines()[-1] == (
      "error: config.batch_size=-2 must be >= 1")
