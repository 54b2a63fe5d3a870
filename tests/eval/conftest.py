"""Shared fixtures for the evaluation tests: a tiny model and a toy tokenizer.
"""

import re

import pytest

from ftgen.models import tiny
from ftgen.models.decoder import Decoder


class ToyTokenizer:
  """Word-level tokenizer: ids for ' word' / 'word' pieces, built on the fly.

  Enough to exercise lm-eval's tokenization rules (the leading space of a
  continuation, the tail of the joint encoding) with a tiny model.
  """

  PIECE = re.compile(r" ?[^\s]+|\s+")

  def __init__(self, vocab_size=256):
    self.vocab: dict[str, int] = {}
    self.vocab_size = vocab_size
    self.bos_id, self.eos_ids, self.pad_id = 1, (2,), 0
    self.add_bos = True

  def encode(self, text, add_bos=None):
    ids = []
    for piece in self.PIECE.findall(text):
      if piece not in self.vocab:
        self.vocab[piece] = 3 + len(self.vocab) % (self.vocab_size - 3)
      ids.append(self.vocab[piece])
    if self.add_bos if add_bos is None else add_bos:
      ids = [self.bos_id] + ids
    return ids

  def apply_chat_template(self, messages, add_generation_prompt=True):
    text = "".join(f"<user> {m['content']} </user>\n" for m in messages)
    return text + ("<assistant>\n" if add_generation_prompt else "")


def random_params(config, seed=0):
  """Random params from numpy via eval_shape: no init compile (seconds saved).

  Kernels ~ N(0, 0.1^2), norm scales ~ 1 + N(0, 0.1^2) (any convention is
  fine here: the tests compare two scoring paths of the same model).
  """
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  model = Decoder(config)
  shapes = jax.eval_shape(lambda: nn.unbox(model.init(
      jax.random.key(0), jnp.zeros((1, 4), jnp.int32))["params"]))
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    x = rng.normal(0.0, 0.1, s.shape).astype(np.float32)
    if path[-1].key == "scale":
      x += 1.0
    return jnp.asarray(x)

  return model, jax.tree_util.tree_map_with_path(leaf, shapes)


@pytest.fixture(scope="session")
def tiny_model():
  return random_params(tiny.tiny_config("llama", max_seq_len=512))


@pytest.fixture
def toy_tokenizer():
  return ToyTokenizer()
