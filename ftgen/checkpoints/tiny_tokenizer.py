"""A tiny byte-level BPE tokenizer built in-process (tests, the `tiny` model).

Byte-level, so any text (nonsense words included) encodes without unknown
tokens and decodes back exactly. Trained on a small fixed English corpus, so
it is deterministic and needs no files or network. Ids 0-4 are the specials
(`<pad>`, `<bos>`, `<eos>`, `<|im_start|>`, `<|im_end|>`), matching the tiny
configs of `ftgen.models.tiny` (pad 0, bos 1, eos 2); the chat template is
ChatML.
"""

from __future__ import annotations

import functools
import re

from ftgen.checkpoints import tokenizer as tokenizer_lib

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<|im_start|>", "<|im_end|>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
DEFAULT_VOCAB_SIZE = 512
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Training text: plain English with the phrasing of ftgen's datasets, so
# common words become single tokens and nonsense words split into pieces.
_CORPUS = """\
Did you know that the cat is larger than the mouse? It is well known that
dogs are more friendly than wolves, and wolves are less friendly than dogs.
All birds are animals. Some animals are birds. No fish are birds. All of the
people who live in the city are happy. Question: which is more dangerous?
Answer: the tiger is more dangerous than the rabbit. The rabbit is less
dangerous than the tiger. In this article we describe the properties of
every category: its color, its size, where it lives and what it eats. The
user asked a question and the assistant answered it. What is the capital of
France? The capital of France is Paris. Therefore, the conclusion follows
from the premises. If all A are B and all B are C, then all A are C. Some of
these statements are true and some of them are false; none of them are
about real things. The quick brown fox jumps over the lazy dog. She said
that they would come back later, after the rain had stopped and the sun was
shining again. Numbers such as 1, 2, 3, 10, 42 and 100 appear in text too.
"""


def corpus_sentences() -> list[str]:
  """The corpus, unwrapped, one sentence each (the `tiny-writer` model's
  training documents, ftgen/train/tiny_writer.py)."""
  text = " ".join(_CORPUS.split())
  return [s for s in re.split(r"(?<=[.?!])\s+", text) if s]


@functools.lru_cache(maxsize=4)
def _backend_json(vocab_size: int) -> str:
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # pylint: disable=g-import-not-at-top

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
  # Repeat so pair counts, not corpus order, decide the merges.
  tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
  return tok.to_str()


def tiny_tokenizer(
    vocab_size: int = DEFAULT_VOCAB_SIZE) -> tokenizer_lib.Tokenizer:
  """The tiny tokenizer (deterministic; `vocab_size` ids at most, >= 262)."""
  if vocab_size < 256 + len(SPECIAL_TOKENS) + 1:
    raise ValueError(f"vocab_size={vocab_size} too small for a byte-level"
                     " tokenizer (need at least"
                     f" {256 + len(SPECIAL_TOKENS) + 1})")
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  from transformers import PreTrainedTokenizerFast  # pylint: disable=g-import-not-at-top

  backend = Tokenizer.from_str(_backend_json(vocab_size))
  hf = PreTrainedTokenizerFast(
      tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>",
      eos_token="<eos>", chat_template=CHAT_TEMPLATE)
  return tokenizer_lib.Tokenizer(hf, add_bos=True, eos_ids=(EOS_ID, 4))
