"""One process of the two-process test (tests/experiments/test_multihost.py).

  python tests/experiments/multihost_worker.py PORT PROCESS_ID WORKDIR

PORT 0 runs the same fine-tuning in one process on one device instead.

Initializes jax.distributed on localhost (CPU collectives over gloo), then
fine-tunes the tiny model for a few steps with `ftgen.train.loop.finetune`
on a mesh spanning both processes (data axis = 2) and prints one JSON line
with the process index, device counts and the train summary.
"""

import faulthandler
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One CPU device per process: the mesh only spans both through the
# distributed runtime.
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"


def main():
  port, pid, workdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
  # A run takes ~20 s; one still going after 240 s is stuck: print where
  # (the test shows both processes' logs), before the distributed runtime's
  # 300 s barrier timeouts abort it.
  faulthandler.dump_traceback_later(240, exit=False)
  # Local imports on purpose: jax and ftgen load only after XLA_FLAGS and
  # JAX_PLATFORMS are set above and, multihost, after gloo is configured.
  import jax  # pylint: disable=g-import-not-at-top
  multihost = port > 0  # PORT 0: a single-process reference run.
  if multihost:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from ftgen.parallel import distributed  # pylint: disable=g-import-not-at-top
    distributed.maybe_initialize(True, f"localhost:{port}", 2, pid)

  from ftgen import configs  # pylint: disable=g-import-not-at-top
  c = configs.load("finetune:reversals,tiny")
  c.steps = 3
  c.warmup_steps = 1
  c.batch_size = 4
  c.checkpoint_every = 3
  c.async_checkpointing = False
  c.export_hf = False
  c.eval.every = -1
  c.progress = False
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = (2 if multihost else 1), 1, 1
  from ftgen.train import loop  # pylint: disable=g-import-not-at-top
  summary = loop.finetune(c, workdir)
  print("RESULT " + json.dumps({
      "process_index": jax.process_index(),
      "process_count": jax.process_count(),
      "device_count": jax.device_count(),
      "local_device_count": jax.local_device_count(),
      "steps": summary["steps"], "final_loss": summary["final_loss"],
      "params_digest": summary.get("params_digest"),
  }), flush=True)


if __name__ == "__main__":
  main()
