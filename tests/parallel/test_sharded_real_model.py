"""Real SmolLM2 weights placed on 8 fake devices give the 1-device logits.

SmolLM2's 9 query / 3 kv heads do not divide tensor=2, so this also checks
the replication fallback with real weights and the registry's `mesh=` path.
"""

import jax
import numpy as np
import pytest

from ftgen.checkpoints import registry
from ftgen.checkpoints import sources
from ftgen.models.decoder import Decoder
from ftgen.parallel import mesh as mesh_lib
from ftgen.parallel import sharding

pytestmark = [pytest.mark.slow, pytest.mark.real_model]


def test_smollm2_sharded_logits_match_one_device():
  mesh = mesh_lib.make_mesh((1, 4, 2))
  try:
    loaded = registry.load_model("smollm2-135m", mesh=mesh)
  except sources.ModelNotAvailable as e:
    pytest.skip(f"smollm2-135m unavailable: {e}")
  config = loaded.config
  q = loaded.params["layers"]["attn"]["q"]["kernel"]
  assert q.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", None, None)
  host = jax.tree.map(np.asarray, loaded.params)
  ids = loaded.tokenizer.encode("The capital of France is Paris. The capital")
  tokens = np.asarray([ids, ids[::-1]], np.int32)

  outs = []
  one = mesh_lib.make_mesh((1, 1, 1), devices=jax.devices()[:1])
  for m, params in ((one, sharding.place_params(host, config, one)),
                    (mesh, loaded.params)):
    apply = jax.jit(lambda p, t: Decoder(config).apply({"params": p}, t))
    with sharding.mesh_context(m):
      outs.append(np.asarray(apply(params, sharding.shard_batch(tokens, m))))
  diff = np.abs(outs[0] - outs[1]).max()
  print(f"max |logit diff| {diff:.2e}, max |logit| {np.abs(outs[0]).max():.1f}")
  # fp32 reduction order differs (sums split over fsdp); 30 real layers with
  # large first-token activations amplify it to ~1.5e-4 on logits of ~16.
  np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=5e-4)
  np.testing.assert_array_equal(outs[1].argmax(-1), outs[0].argmax(-1))
