"""The platform attention kernels against the blockwise XLA reference.

Runs `ftgen.models.attention_ops.attend` with the platform's kernel (cuDNN
on GPU, splash on TPU) and with "xla" on the same random bfloat16 inputs
(GQA, right padding, global and sliding windows), and prints one JSON object
(last line): per case the max |difference| and whether the kernel ran or
fell back. On CPU both are the reference (a smoke run). The same check as
tests/models/test_attention_ops.py::test_platform_kernel_matches_reference,
without pytest, for the device suite (benchmarks/gpu.sh).

  python benchmarks/kernel_parity.py [--seq_len=1024] [--batch=4]
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ftgen.models import attention_ops as ops  # pylint: disable=g-import-not-at-top,wrong-import-position

_SEQ = flags.DEFINE_integer("seq_len", 1024, "tokens per row")
_BATCH = flags.DEFINE_integer("batch", 4, "rows")


def _case(rng, b, t, n, kh, h, dt):
  q = jnp.asarray(rng.normal(size=(b, t, n, h)), dt)
  k = jnp.asarray(rng.normal(size=(b, kh, t, h)), dt)
  v = jnp.asarray(rng.normal(size=(b, kh, t, h)), dt)
  pos = np.tile(np.arange(t), (b, 1))
  kpos = pos.copy()
  kpos[1, t - 7:] = -1  # Row 1 right-padded.
  return q, jnp.asarray(pos, jnp.int32), ops.KeySet(
      k, v, jnp.asarray(kpos, jnp.int32))


def main(argv):
  del argv
  backend = jax.default_backend()
  impl = {"gpu": "cudnn", "tpu": "splash"}.get(backend, "xla")
  rng = np.random.default_rng(0)
  b, t, n, kh, h = _BATCH.value, _SEQ.value, 16, 4, 64
  q, pos, own = _case(rng, b, t, n, kh, h, jnp.bfloat16)
  out = {"backend": backend, "impl": impl, "cases": {}}
  for window in (1 << 30, 256):
    for softcap in (None, 30.0):
      scoring = ops.Scoring(h ** -0.5, softcap)
      ran = ops._choose(impl, q, None, scoring, 0, window)  # pylint: disable=protected-access
      ref = jax.jit(lambda q, own, s=scoring, w=window: ops.xla_attention(
          q, pos, w, own, None, s))
      got = jax.jit(lambda q, own, s=scoring, w=window: ops.attend(
          q, pos, w, own, None, s, impl=impl))
      want = np.float32(ref(q, own))
      start = time.perf_counter()
      have = np.float32(jax.block_until_ready(got(q, own)))
      name = f"window={window if window < t else 'global'},softcap={softcap}"
      valid = np.ones((b, t), bool)
      valid[1, t - 7:] = False  # Padded queries may differ.
      out["cases"][name] = {
          "ran": ran,
          "max_abs_diff": float(np.abs(have - want)[valid].max()),
          "seconds": time.perf_counter() - start}
  print(json.dumps(out))


if __name__ == "__main__":
  app.run(main)
