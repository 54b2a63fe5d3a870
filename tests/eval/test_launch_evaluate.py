"""launch/evaluate.py: the command line, dry run and bad input.

The command line: docs/design.md#evaluation-outputs.
"""

import os
import subprocess
import sys

import pytest

from ftgen import configs
from ftgen.data import pipeline

pytestmark = pytest.mark.slow  # Subprocesses importing jax: ~10 s each.


def _run(repo_root, *args):
  env = dict(os.environ, PYTHONPATH=str(repo_root), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "launch/evaluate.py", *args],
                        cwd=repo_root, env=env, capture_output=True,
                        text=True, timeout=300)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("data")
  return pipeline.generate_to_dir(configs.load("data:reversals,tiny"), root)


def test_dry_run_prints_token_counts(repo_root, data_dir, tmp_path):
  out = _run(repo_root, "--config=configs/evaluate.py:icl,tiny",
             f"--config.data={data_dir}", f"--workdir={tmp_path}",
             "--config.dry_run=True")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "dry run (icl, tiny)" in out.stdout and "fits" in out.stdout
  assert (tmp_path / "context.json").is_file()
  assert not (tmp_path / "results.jsonl").exists()


def test_bad_condition_exits_with_one_line(repo_root, data_dir, tmp_path):
  out = _run(repo_root, "--config=configs/evaluate.py:pretrained,tiny",
             "--config.condition=nope", f"--config.data={data_dir}",
             f"--workdir={tmp_path}")
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: config.condition='nope'; allowed:"), last
