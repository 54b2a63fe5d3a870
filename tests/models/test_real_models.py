"""Sanity of the two offline pretrained models through ftgen's decoder.

Each model is imported (once, into the user's cache) and loaded once per
module. A natural sentence must score far better than a shuffle of its
words; SmolLM2 must answer the capital of France through its chat template.
"""

import time

import numpy as np
import pytest

from ftgen.checkpoints import registry
from ftgen.checkpoints import sources
from ftgen.models.decoder import Decoder
from ftgen.sample import sampler as sampler_lib

pytestmark = [pytest.mark.slow, pytest.mark.real_model]

NATURAL = ("The cat sat on the mat and looked out of the window at the birds"
           " in the garden.")
# A fixed word shuffle of NATURAL (same words, same count).
SHUFFLED = ("garden. cat window the the at on birds mat The of and looked the"
            " sat out in the")


def _load(name):
  start = time.perf_counter()
  try:
    model = registry.load_model(name)
  except sources.ModelNotAvailable as e:
    pytest.skip(f"{name} unavailable: {e}")
  print(f"\n{name}: loaded in {time.perf_counter() - start:.1f}s"
        f" {model.timings}")
  return model


@pytest.fixture(scope="module")
def smollm2():
  return _load("smollm2-135m")


@pytest.fixture(scope="module")
def gemma3():
  return _load("gemma3-270m")


def _mean_logprob(model, text: str) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  ids = np.array([model.tokenizer.encode(text)])
  logits = Decoder(model.config).apply({"params": model.params}, ids)
  logp = jax.nn.log_softmax(np.asarray(logits[0, :-1], np.float32), axis=-1)
  return float(np.mean(np.take_along_axis(np.asarray(logp), ids[0, 1:, None],
                                          axis=-1)))


def test_shuffled_words_are_the_same_words():
  assert sorted(NATURAL.split()) == sorted(SHUFFLED.split())


@pytest.mark.parametrize("fixture", ["smollm2", "gemma3"])
def test_natural_sentence_beats_its_shuffle(fixture, request):
  model = request.getfixturevalue(fixture)
  natural, shuffled = (_mean_logprob(model, NATURAL),
                       _mean_logprob(model, SHUFFLED))
  print(f"{model.name}: mean log-prob natural {natural:.3f},"
        f" shuffled {shuffled:.3f}")
  assert natural > -4.5
  assert natural - shuffled > 2.0


def test_smollm2_knows_the_capital_of_france(smollm2):
  tok = smollm2.tokenizer
  ids = tok.encode_chat([{"role": "user",
                          "content": "What is the capital of France?"}])
  smp = sampler_lib.Sampler(Decoder(smollm2.config), smollm2.params,
                            eos_ids=tok.eos_ids, tokenizer=tok,
                            pad_id=tok.pad_id)
  greedy = sampler_lib.SamplingParams(max_new_tokens=12, temperature=0.0)
  answer = smp.generate([ids], greedy)[0].text
  print(f"smollm2-135m answer: {answer!r}")
  assert "Paris" in answer


def test_configs_match_published_architectures(smollm2, gemma3):
  s, g = smollm2.config, gemma3.config
  assert (s.family, s.num_layers, s.embed_dim, s.num_heads, s.num_kv_heads,
          s.head_dim, s.vocab_size, s.rope_theta, s.tie_embeddings) == (
              "llama", 30, 576, 9, 3, 64, 49152, 1e5, True)
  assert (g.family, g.num_layers, g.embed_dim, g.num_heads, g.num_kv_heads,
          g.head_dim, g.vocab_size, g.sliding_window, g.sliding_window_pattern,
          g.rope_theta, g.rope_local_theta) == (
              "gemma3", 18, 640, 4, 1, 256, 262144, 512, 6, 1e6, 1e4)
