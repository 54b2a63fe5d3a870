"""LoRA adapters: zero delta at init, merge algebra, errors, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ftgen.models.decoder import Decoder
from ftgen.models import tiny
from ftgen.train import lora


@pytest.fixture(scope="module")
def model_and_params():
  cfg = tiny.tiny_config("llama")
  return Decoder(cfg), cfg, tiny.tiny_params(cfg, seed=0)


def test_untrained_adapters_leave_the_model_unchanged(model_and_params):
  _, cfg, params = model_and_params
  ad = lora.init(params, ("q", "v", "down"), 4, cfg.embed_dim, seed=0)
  assert sorted(ad) == ["layers/attn/q/kernel", "layers/attn/v/kernel",
                        "layers/mlp/down/kernel"]
  merged = jax.jit(lambda p, a: lora.merge(p, a, 4, 8.0))(params, ad)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(merged)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_merge_adds_scaled_low_rank_product(model_and_params):
  _, cfg, params = model_and_params
  ad = lora.init(params, ("o",), 2, cfg.embed_dim, seed=1)
  ad = jax.tree.map(lambda x: x + 0.1, ad)  # Nonzero B.
  merged = jax.jit(lambda p, a: lora.merge(p, a, 2, 6.0))(params, ad)
  w = params["layers"]["attn"]["o"]["kernel"]  # [L, N, H, D]
  a = ad["layers/attn/o/kernel"]["a"]  # [L, N*H, r]
  b = ad["layers/attn/o/kernel"]["b"]  # [L, r, D]
  assert a.shape == (cfg.num_layers, cfg.num_heads * cfg.head_dim, 2)
  want = w + 3.0 * jnp.einsum("lir,lro->lio", a, b).reshape(w.shape)
  np.testing.assert_allclose(merged["layers"]["attn"]["o"]["kernel"], want,
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(merged["layers"]["attn"]["q"]["kernel"],
                                params["layers"]["attn"]["q"]["kernel"])


def test_missing_module_names_the_setting_and_the_choices(model_and_params):
  _, cfg, params = model_and_params
  with pytest.raises(ValueError, match=r"lora.targets.*q_proj.*allowed:.*gate"):
    lora.init(params, ("q_proj",), 4, cfg.embed_dim, seed=0)
  with pytest.raises(ValueError, match="lora.rank"):
    lora.init(params, ("q",), 0, cfg.embed_dim, seed=0)


def test_gradients_reach_only_the_adapters(model_and_params):
  model, cfg, params = model_and_params
  ad = lora.init(params, ("q", "up"), 4, cfg.embed_dim, seed=0)
  tokens = jnp.arange(12, dtype=jnp.int32).reshape(2, 6) % cfg.vocab_size

  def loss(adapters):
    logits = model.apply({"params": lora.merge(params, adapters, 4, 8.0)},
                         tokens)
    return jnp.mean(jax.nn.logsumexp(logits, -1))

  grads = jax.jit(jax.grad(loss))(ad)
  # B starts at zero, so A gets no gradient yet but B does.
  for path, g in ad.items():
    assert float(jnp.abs(grads[path]["b"]).max()) > 0, path
