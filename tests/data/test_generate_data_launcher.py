"""launch/generate_data.py writes byte-identical datasets in fresh processes.

Python salts `hash()` per process (PYTHONHASHSEED), so any set or dict order
that leaks into a generator would show up as different bytes here.
"""

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("dataset, expected_file", [
    ("reversals", "reversals/test.jsonl"),
    ("syllogisms", "syllogisms/README.md"),
    ("semantic", "semantic/train.jsonl"),
    # Task YAMLs are named after a digest of the data (ftgen/data/lm_eval.py).
    ("celebrities", "celebrities/lm_eval/ftgen_lm_eval_data.py"),
    ("process", "process/references.jsonl"),
])
def test_bytes_identical_across_hash_seeds(repo_root, tmp_path, dataset,
                                           expected_file):
  outputs = []
  for hash_seed in ("1", "4242"):
    work = tmp_path / hash_seed
    env = dict(os.environ, PYTHONHASHSEED=hash_seed,
               PYTHONPATH=os.pathsep.join(
                   [str(repo_root), os.environ.get("PYTHONPATH", "")]))
    subprocess.run(
        [sys.executable, "launch/generate_data.py",
         f"--config=configs/data.py:{dataset},tiny", f"--workdir={work}"],
        cwd=repo_root, env=env, check=True, capture_output=True, timeout=300)
    outputs.append({p.relative_to(work).as_posix(): p.read_bytes()
                    for p in sorted(work.rglob("*")) if p.is_file()})
  assert outputs[0] == outputs[1]
  assert expected_file in outputs[0]


def test_user_folder_in_the_output_is_never_removed(repo_root, tmp_path):
  # The case: DIR/user holds the user's own files, one of them the
  # input; generating `user` into DIR would replace DIR/user.
  user = tmp_path / "user"
  user.mkdir()
  files = {"docs.jsonl": '{"id": "d1", "text": "A wug is a blicket."}\n',
           "questions.jsonl": "", "notes.txt": "my notes\n"}
  for name, text in files.items():
    (user / name).write_text(text)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(repo_root), os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.run(
      [sys.executable, "launch/generate_data.py",
       "--config=configs/data.py:user",
       f"--config.generator.documents={user / 'docs.jsonl'}",
       f"--workdir={tmp_path}"],
      cwd=repo_root, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 1, proc.stderr
  assert proc.stderr.strip().splitlines() == [
      f"error: {user} exists and was not made by ftgen (no manifest.json or"
      " .ftgen); choose another --workdir or remove it yourself"]
  assert {p.name: p.read_text() for p in user.iterdir()} == files
  assert sorted(p.name for p in tmp_path.iterdir()) == ["user"]
