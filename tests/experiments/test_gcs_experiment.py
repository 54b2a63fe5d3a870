"""The tiny experiment through launch/run_experiment.py with a gs:// workdir
(a local GCS emulator): its stages, markers and report land in the bucket,
and a rerun skips every finished stage.

A subset of the conditions keeps it short: no model, context in the prompt,
and one fine-tuning (on the rule-written augmentation) whose export the
evaluation reads back from the bucket.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from ftgen.data import workdir as workdir_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "launch" / "run_experiment.py"
CONDITIONS = ("pretrained", "icl", "finetune_aug_oracle")


def _run(workdir):
  env = dict(os.environ)  # The emulator's variables (the gcs_bucket fixture).
  env.pop("XLA_FLAGS", None)  # The launcher runs on the plain CPU device.
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run(
      [sys.executable, str(LAUNCHER),
       "--config=configs/experiment.py:reversals,tiny", f"--workdir={workdir}",
       f"--config.conditions={CONDITIONS!r}", "--config.steps=3",
       "--config.finetune.warmup_steps=1",
       "--config.finetune.checkpoint_every=3"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  return proc.stdout + proc.stderr


@pytest.mark.slow
def test_experiment_in_a_bucket_writes_its_report_and_resumes(gcs_bucket):
  url = f"{gcs_bucket}/exp"
  exp = workdir_lib.as_path(url)
  out = _run(url)
  assert "no workdir lock" in out
  summary = json.loads((exp / "summary.json").read_text())
  assert tuple(summary["conditions"]) == CONDITIONS
  assert summary["skipped"] == {}
  assert "| condition |" in (exp / "summary.md").read_text()
  assert (exp / "figure.png").read_bytes()[:4] == b"\x89PNG"
  for name in ("figure.svg", "results.jsonl", "results.parquet",
               "results.csv", "costs.json", "config.json", ".ftgen",
               "data/reversals/manifest.json",
               "augment/oracle/train.jsonl",
               "finetune/finetune_aug_oracle/seed_0/train_summary.json",
               "finetune/finetune_aug_oracle/seed_0/export/config.json",
               "finetune/finetune_aug_oracle/seed_0/checkpoints/3/meta/"
               "metadata",
               "eval/icl/seed_0/results.jsonl"):
    assert (exp / name).is_file(), name
  stages = sorted(p.name for p in (exp / "stages").iterdir())
  assert stages == sorted(
      ["data.json", "augment__oracle.json",
       "finetune__finetune_aug_oracle__seed_0.json"]
      + [f"eval__{c}__seed_0.json" for c in CONDITIONS])

  again = _run(url)
  assert "[run ]" not in again and again.count("[skip]") == len(stages)
  assert json.loads((exp / "summary.json").read_text())[
      "conditions"] == summary["conditions"]
