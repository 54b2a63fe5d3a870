"""Remat policies (ftgen.models.decoder.REMAT_POLICIES): the same gradients,
less temporary memory (compile-only, from XLA's memory analysis)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.models import decoder
from ftgen.models import tiny


def _loss(mode, cfg, tokens):
  model = decoder.Decoder(cfg, remat=mode)

  def loss(params):
    logits = model.apply({"params": params}, tokens)
    return jnp.mean(logits.astype(jnp.float32) ** 2)
  return jax.jit(jax.grad(loss))


def test_policies_keep_gradients_and_trade_memory():
  cfg = tiny.tiny_config("llama", num_layers=4, max_seq_len=512,
                         vocab_size=512)
  params = tiny.tiny_params(cfg, seed=0)
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 512, (4, 256)),
                       jnp.int32)
  temp, grads = {}, {}
  for mode in decoder.REMAT_POLICIES:
    fn = _loss(mode, cfg, tokens)
    temp[mode] = fn.lower(params).compile().memory_analysis(
        ).temp_size_in_bytes
    grads[mode] = fn(params)
  for mode, g in grads.items():
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(grads["none"])):
      np.testing.assert_allclose(a, b, atol=1e-6, err_msg=mode)
  # Measured on CPU (f32): none 33 MB, save_dots 16, save_dots_no_batch 16,
  # full 9. The two dot policies differ in the attention's batched products
  # only, which the flash attention keeps out of any policy's reach (its
  # custom VJP saves what it needs itself): they save the same.
  assert (temp["full"] < temp["save_dots_no_batch"] <= temp["save_dots"]
          < temp["none"]), temp
  assert temp["full"] < 0.5 * temp["none"]


def test_bools_and_bad_names():
  assert decoder.remat_mode(True) == "full"
  assert decoder.remat_mode(False) == "none"
  with pytest.raises(ValueError, match="allowed: none, full, save_dots"):
    decoder.remat_mode("some")
