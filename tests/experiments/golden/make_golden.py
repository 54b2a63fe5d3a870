r"""Regenerates tiny_experiments.json from fresh tiny experiment runs.

  python tests/experiments/golden/make_golden.py --reason="..."

Runs `launch/run_experiment.py --config=configs/experiment.py:NAME,tiny` for
every dataset (a few minutes on 2 CPU cores) and records what
tests/experiments/test_end_to_end.py compares: accuracy and question count
per condition and split, the skipped conditions, and each question's summed
log-likelihoods. Only a change meant to alter these numbers regenerates the
file; `--reason` goes into its `_comment`.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DATASETS = ("reversals", "syllogisms", "semantic", "celebrities", "process")


def run(name: str, workdir: pathlib.Path) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  subprocess.run(
      [sys.executable, str(ROOT / "launch" / "run_experiment.py"),
       f"--config=configs/experiment.py:{name},tiny", f"--workdir={workdir}"],
      cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
  summary = json.loads((workdir / "summary.json").read_text())
  logliks: dict = {}
  with open(workdir / "results.jsonl", encoding="utf-8") as f:
    for line in f:
      row = json.loads(line)
      logliks.setdefault(row["condition"], {})[row["id"]] = row["logliks"]
  return {"conditions": {c: {s: {"acc": v["acc"], "n": v["n"]}
                             for s, v in x.items()}
                         for c, x in summary["conditions"].items()},
          "skipped": sorted(summary["skipped"]), "logliks": logliks}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--reason", required=True)
  args = parser.parse_args()
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True,
                          check=False).stdout.strip()
  out = {"_comment": (
      "Tiny experiments (configs/experiment.py:NAME,tiny) as run on top of"
      f" commit {commit}: accuracy per condition and split, skipped"
      " conditions and every question's summed log-likelihoods."
      " tests/experiments/test_end_to_end.py compares fresh runs against"
      f" them. Regenerated because: {args.reason}"), "datasets": {}}
  with tempfile.TemporaryDirectory() as tmp:
    for name in DATASETS:
      print(f"running {name} ...", flush=True)
      out["datasets"][name] = run(name, pathlib.Path(tmp) / name)
  (HERE / "tiny_experiments.json").write_text(json.dumps(out) + "\n")
  print(f"wrote {HERE / 'tiny_experiments.json'}")


if __name__ == "__main__":
  main()
