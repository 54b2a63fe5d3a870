"""Two processes on this machine, one jax.distributed job, one fine-tuning.

Each process owns one CPU device; `jax.distributed.initialize('localhost:
PORT', 2, i)` joins them and `ftgen.train.loop.finetune` trains the tiny
model data-parallel over both (gloo CPU collectives). The two processes must
agree with each other and with a single-process run of the same config.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

WORKER = pathlib.Path(__file__).with_name("multihost_worker.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _result(out: str) -> dict:
  lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
  assert lines, out[-3000:]
  return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.slow
def test_two_process_finetune_matches_single_process(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, str(WORKER), str(port), str(i), str(tmp_path / "mh")],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
           for i in range(2)]
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=400)[0])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for i, (p, out) in enumerate(zip(procs, outs)):
    # Both logs on failure: a process that dies at the shutdown barrier
    # usually waited for the other one, whose log has the cause.
    assert p.returncode == 0, "\n".join(
        f"--- process {j} (exit {q.returncode}) ---\n{o[-2500:]}"
        for j, (q, o) in enumerate(zip(procs, outs)))
  r0, r1 = _result(outs[0]), _result(outs[1])
  assert (r0["process_index"], r1["process_index"]) == (0, 1)
  for r in (r0, r1):
    assert r["process_count"] == 2 and r["device_count"] == 2
    assert r["local_device_count"] == 1 and r["steps"] == 3
  assert r0["params_digest"] == r1["params_digest"]
  # Process 0 alone wrote the shared workdir's files (one generated dataset,
  # one metrics file, one summary); both saved their checkpoint shards.
  mh = tmp_path / "mh"
  assert (mh / "train_summary.json").is_file()
  steps = [json.loads(l)["step"] for l in
           (mh / "metrics.jsonl").read_text().splitlines()]
  assert steps and len(steps) == len(set(steps)), steps
  assert [p.name for p in (mh / "data").iterdir()] == ["reversals"]
  assert (mh / "checkpoints" / "3").is_dir()
  single = subprocess.run(
      [sys.executable, str(WORKER), "0", "0", str(tmp_path / "single")],
      capture_output=True, text=True, env=env, timeout=400, check=False)
  assert single.returncode == 0, (single.stdout + single.stderr)[-3000:]
  ref = _result(single.stdout)
  assert ref["device_count"] == 1
  assert r0["final_loss"] == pytest.approx(ref["final_loss"], rel=1e-5)
