"""Greedy generation with the cache equals a no-cache reference."""

import numpy as np

from ftgen.models.decoder import Decoder
from ftgen.models.generate import greedy_generate, naive_greedy
from ftgen.models.tiny import tiny_config, tiny_params


def test_greedy_matches_naive_with_left_padding_and_eos():
  config = tiny_config("gemma3")
  model = Decoder(config)
  params = tiny_params(config, seed=0)
  rng = np.random.default_rng(0)
  long = rng.integers(3, 256, (1, 7)).astype(np.int32)
  short = rng.integers(3, 256, (1, 4)).astype(np.int32)
  batch = np.concatenate([long, np.pad(short, ((0, 0), (3, 0)))], axis=0)
  mask = np.ones((2, 7), bool)
  mask[1, :3] = False
  ref = naive_greedy(model, params, batch, 5, mask)
  out = greedy_generate(model, params, batch, mask, max_new_tokens=5,
                        eos_ids=())
  np.testing.assert_array_equal(out, ref)
  # Stopping: declare row 0's third token an eos id; later slots hold pad.
  eos = int(ref[0, 2])
  out = greedy_generate(model, params, batch, mask, 5, eos_ids=(eos,),
                        pad_id=0)
  for row in range(2):
    hits = np.flatnonzero(ref[row] == eos)
    stop = hits[0] + 1 if hits.size else 5
    np.testing.assert_array_equal(out[row, :stop], ref[row, :stop])
    assert (out[row, stop:] == 0).all()
