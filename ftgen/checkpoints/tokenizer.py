"""Tokenizers: one small wrapper over `transformers.PreTrainedTokenizerFast`.

Sources: a Hugging Face directory (`tokenizer.json` + `tokenizer_config.json`,
`from_directory`), a GGUF file's metadata
(`ftgen.checkpoints.gguf.tokenizer_from_gguf`), or the tiny in-process
tokenizer of `ftgen.checkpoints.tiny_tokenizer`. This module imports no other
ftgen module, so the GGUF reader can build on it.

BOS is explicit: `encode(text)` adds BOS only when the model wants it
(`add_bos`: SmolLM2 no, Gemma and Llama 3 yes), and chat prompts, whose
templates write their own BOS, are encoded without another one. `eos_ids`
lists every token that ends a generation (EOS and end-of-turn tokens).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Sequence

import tokenizers
from tokenizers import processors

SETTINGS_FILE = "ftgen_tokenizer.json"
# Tokens that end a turn or a text in the model families we support; those
# in a vocabulary join its `eos_ids`.
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>",
               "<|end_of_text|>", "<|eom_id|>")


class Tokenizer:
  """Text <-> token ids, special tokens and the chat template of one model."""

  def __init__(self, hf_tokenizer, *, add_bos: bool | None = None,
               eos_ids: Sequence[int] | None = None):
    self.hf = hf_tokenizer
    vocab = hf_tokenizer.get_vocab()
    self.bos_id: int | None = hf_tokenizer.bos_token_id
    if add_bos is None:
      add_bos = _post_processor_adds_bos(hf_tokenizer)
    self.add_bos = bool(add_bos) and self.bos_id is not None
    if eos_ids is None:
      eos_ids = _stop_ids(hf_tokenizer.eos_token_id, vocab)
    self.eos_ids: tuple[int, ...] = tuple(int(i) for i in eos_ids)
    if not self.eos_ids:
      raise ValueError("tokenizer has no EOS token: set eos_token in"
                       " tokenizer_config.json")
    pad = hf_tokenizer.pad_token_id
    self.pad_id: int = int(pad) if pad is not None else self.eos_ids[0]

  @property
  def vocab_size(self) -> int:
    """Number of ids the tokenizer can produce (added tokens included)."""
    return len(self.hf)

  @property
  def chat_template(self) -> str | None:
    return self.hf.chat_template

  def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
    """Token ids of `text`; BOS first when `add_bos` (default: the model's)."""
    ids = self.hf.backend_tokenizer.encode(text, add_special_tokens=False).ids
    if self.add_bos if add_bos is None else add_bos:
      if self.bos_id is None:
        raise ValueError("add_bos=True but this tokenizer has no BOS token")
      ids = [self.bos_id] + ids
    return ids

  def encode_batch(self, texts: Sequence[str],
                   add_bos: bool | None = None) -> list[list[int]]:
    encs = self.hf.backend_tokenizer.encode_batch(list(texts),
                                                  add_special_tokens=False)
    bos = self.add_bos if add_bos is None else add_bos
    return [([self.bos_id] if bos else []) + e.ids for e in encs]

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    return self.hf.decode([int(i) for i in ids],
                          skip_special_tokens=skip_special_tokens)

  def token(self, token_id: int) -> str:
    return self.hf.convert_ids_to_tokens(int(token_id))

  def apply_chat_template(self, messages: Sequence[dict[str, str]],
                          add_generation_prompt: bool = True) -> str:
    """The prompt string for `messages` ([{"role", "content"}, ...])."""
    if not self.hf.chat_template:
      raise ValueError("this tokenizer has no chat template; use plain prompts"
                       " or set chat_template in tokenizer_config.json")
    return self.hf.apply_chat_template(
        list(messages), tokenize=False,
        add_generation_prompt=add_generation_prompt)

  def encode_chat(self, messages: Sequence[dict[str, str]],
                  add_generation_prompt: bool = True) -> list[int]:
    """Token ids of the chat prompt; BOS only if the template lacks it."""
    text = self.apply_chat_template(messages, add_generation_prompt)
    ids = self.encode(text, add_bos=False)
    if self.add_bos and (not ids or ids[0] != self.bos_id):
      ids = [self.bos_id] + ids
    return ids

  def save(self, directory: os.PathLike[str] | str) -> None:
    """Writes tokenizer.json, tokenizer_config.json and ftgen's settings."""
    directory = pathlib.Path(directory)
    self.hf.save_pretrained(str(directory))
    _drop_load_keys(directory / "tokenizer_config.json")
    if self.add_bos and not _post_processor_adds_bos(self.hf):
      # Other tools (transformers, lm-eval) read only tokenizer.json: it
      # must add the BOS that ftgen adds, or an export scores differently
      # there (docs/design.md#protocol).
      backend = tokenizers.Tokenizer.from_str(
          self.hf.backend_tokenizer.to_str())
      bos = self.token(self.bos_id)
      backend.post_processor = processors.TemplateProcessing(
          single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
          special_tokens=[(bos, self.bos_id)])
      backend.save(str(directory / "tokenizer.json"))
    with open(directory / SETTINGS_FILE, "w", encoding="utf-8") as f:
      json.dump({"add_bos": self.add_bos, "eos_ids": list(self.eos_ids),
                 "pad_id": self.pad_id}, f, indent=1)

  def __repr__(self) -> str:
    return (f"Tokenizer(vocab_size={self.vocab_size}, bos_id={self.bos_id},"
            f" add_bos={self.add_bos}, eos_ids={self.eos_ids},"
            f" pad_id={self.pad_id})")


# The formatting rule. Training examples, in-training and final evaluation,
# calibration and augmentation prompts all turn text into ids through the
# three functions below, so a fine-tuned model is scored in the format it
# was trained on, and an export scores the same in lm-evaluation-harness as
# in ftgen. The rule is the tokenizer's own convention as transformers and
# lm-evaluation-harness (`HFLM`) apply it:
#
# * a sequence starts with BOS iff the tokenizer adds one (`add_bos`); a head
#   whose text already spells BOS out (Gemma's chat template) keeps just one;
# * context and continuation are encoded the way lm-eval's `_encode_pair`
#   does (context whitespace at the boundary moves to the continuation; the
#   continuation is the tail of the joint encoding);
# * when nothing precedes the continuation, lm-eval's prefix token (BOS
#   when the tokenizer defines one, else EOS) is the context, so the first
#   continuation token is scored (trained) too.
#
# Any object with `encode(text, add_bos=)`, `add_bos`, `bos_id` and
# `eos_ids` works as `tokenizer`.


def start_ids(tokenizer, add_bos: bool | None = None) -> tuple[int, ...]:
  """The tokens every sequence starts with: (BOS,) or ().

  Args:
    tokenizer: the model's tokenizer.
    add_bos: overrides the tokenizer's convention; None keeps it.
  """
  if tokenizer.add_bos if add_bos is None else add_bos:
    if tokenizer.bos_id is None:
      raise ValueError("add_bos=True but this tokenizer has no BOS token")
    return (int(tokenizer.bos_id),)
  return ()


def prefix_id(tokenizer) -> int:
  """lm-eval's `prefix_token_id`: the context of an empty context."""
  if tokenizer.bos_id is not None:
    return int(tokenizer.bos_id)
  return int(tokenizer.eos_ids[0])


def encode_head(tokenizer, text: str,
                add_bos: bool | None = None) -> tuple[int, ...]:
  """Start tokens + `text`: a prompt head encoded on its own.

  A head is text that many sequences share (instructions, in-context
  documents, a chat header); encoded on its own, it is a shared token prefix
  whatever follows it.
  """
  ids = tuple(tokenizer.encode(text, add_bos=False)) if text else ()
  start = start_ids(tokenizer, add_bos)
  if start and ids[:len(start)] == start:
    return ids  # The text (a chat template) spells out BOS itself.
  return start + ids


def encode_pair(tokenizer, context: str, continuation: str, *,
                head: Sequence[int] | None = None,
                add_bos: bool | None = None,
                prefix_empty: bool = True
                ) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(context ids, continuation ids) of one pair, as lm-eval encodes it.

  Args:
    tokenizer: the model's tokenizer.
    context: the text the continuation follows (a question prompt, the
      unscored start of a training document; may be empty).
    continuation: the text scored (a choice, a training target).
    head: tokens before the context, start tokens included (see
      `encode_head`); they never merge with the context. Default: the start
      tokens.
    add_bos: overrides the start tokens' BOS when `head` is None.
    prefix_empty: put the prefix token before an empty context (lm-eval's
      rule, so that the first continuation token is scored). Training passes
      False: a sequence then starts exactly as every evaluation prompt does
      (start tokens, then text), and its first token is simply not a target.
      With SmolLM2 (no start token) a prefix token would put `<|im_start|>`
      before every training document, a format no question prompt has.

  Returns:
    `head` + the context's ids (the prefix token when both are empty and
    `prefix_empty`), and
    the continuation's ids: the tail of encode(context + continuation)
    beyond len(encode(context)).
  """
  if head is None:
    head = start_ids(tokenizer, add_bos)
  n_spaces = len(context) - len(context.rstrip())
  if n_spaces:
    continuation = context[-n_spaces:] + continuation
    context = context[:-n_spaces]

  def encode(text):
    return tuple(tokenizer.encode(text, add_bos=False))

  context_ids = encode(context) if context else ()
  continuation_ids = encode(context + continuation)[len(context_ids):]
  if not continuation_ids:
    raise ValueError(
        f"continuation {continuation!r} after context {context[-40:]!r}"
        " encodes to no tokens")
  full_context = tuple(int(i) for i in head) + context_ids
  if not full_context and prefix_empty:
    full_context = (prefix_id(tokenizer),)
  return full_context, continuation_ids


def _post_processor_adds_bos(hf_tokenizer) -> bool:
  bos = hf_tokenizer.bos_token_id
  if bos is None:
    return False
  ids = hf_tokenizer.backend_tokenizer.encode("a", add_special_tokens=True).ids
  return bool(ids) and ids[0] == bos


def _stop_ids(eos_id: int | None, vocab: dict[str, int]) -> list[int]:
  ids = [] if eos_id is None else [int(eos_id)]
  for token in STOP_TOKENS:
    if token in vocab and vocab[token] not in ids:
      ids.append(vocab[token])
  return ids


def from_directory(directory: os.PathLike[str] | str) -> Tokenizer:
  """The tokenizer of a Hugging Face style directory."""
  from transformers import PreTrainedTokenizerFast  # pylint: disable=g-import-not-at-top

  directory = pathlib.Path(directory)
  if not (directory / "tokenizer.json").is_file():
    raise FileNotFoundError(
        f"{directory}: no tokenizer.json (ftgen needs a fast tokenizer file;"
        " convert a sentencepiece model with transformers first)")
  hf = PreTrainedTokenizerFast.from_pretrained(str(directory))
  settings: dict[str, Any] = {}
  if (directory / SETTINGS_FILE).is_file():
    with open(directory / SETTINGS_FILE, encoding="utf-8") as f:
      settings = json.load(f)
  else:
    settings["add_bos"] = _config_flag(directory, "add_bos_token")
    gen_eos = _generation_eos(directory)
    if gen_eos:
      extra = _stop_ids(hf.eos_token_id, hf.get_vocab())
      settings["eos_ids"] = gen_eos + [i for i in extra if i not in gen_eos]
  tok = Tokenizer(hf, add_bos=settings.get("add_bos"),
                  eos_ids=settings.get("eos_ids"))
  if "pad_id" in settings:
    tok.pad_id = int(settings["pad_id"])
  return tok


# Keys transformers 5 records about how a tokenizer was *loaded*
# (`from_pretrained(dir)`), not what it is; saved, they would be stray
# settings in an export.
_LOAD_KEYS = ("is_local", "local_files_only")


def _drop_load_keys(path: pathlib.Path) -> None:
  with open(path, encoding="utf-8") as f:
    config = json.load(f)
  if any(k in config for k in _LOAD_KEYS):
    for k in _LOAD_KEYS:
      config.pop(k, None)
    with open(path, "w", encoding="utf-8") as f:
      json.dump(config, f, indent=2, ensure_ascii=False, sort_keys=True)
      f.write("\n")


def _config_flag(directory: pathlib.Path, key: str) -> bool | None:
  path = directory / "tokenizer_config.json"
  if not path.is_file():
    return None
  with open(path, encoding="utf-8") as f:
    value = json.load(f).get(key)
  return None if value is None else bool(value)


def _generation_eos(directory: pathlib.Path) -> list[int]:
  path = directory / "generation_config.json"
  if not path.is_file():
    return []
  with open(path, encoding="utf-8") as f:
    eos = json.load(f).get("eos_token_id")
  if eos is None:
    return []
  return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
