"""Tokenizers: tiny, from HF directories, real models (GGUF: test_gguf.py)."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from ftgen.augment import run as augment_run
from ftgen.checkpoints import registry
from ftgen.checkpoints import sources
from ftgen.checkpoints import tiny_tokenizer as tiny_tok
from ftgen.checkpoints import tokenizer as tokenizer_lib
from ftgen.data import records
from ftgen.data import splitting
from ftgen.eval import evaluate
from ftgen.eval import prompts
from ftgen.train import data
from ftgen.train import evaluate as train_evaluate

SENTENCE = "Did you know that femp are more dangerous than glon? 42 Ünïcödé ✓"
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny():
  return tiny_tok.tiny_tokenizer()


def test_tiny_specials_and_size(tiny):
  assert tiny.vocab_size <= 512
  assert (tiny.pad_id, tiny.bos_id) == (0, 1)
  assert tiny.eos_ids[0] == 2 and 4 in tiny.eos_ids  # <eos>, <|im_end|>
  assert tiny.add_bos
  ids = tiny.encode(SENTENCE)
  assert ids[0] == tiny.bos_id and tiny.bos_id not in ids[1:]
  assert tiny.encode(SENTENCE, add_bos=False) == ids[1:]
  assert max(ids) < tiny.vocab_size
  # Common words are single tokens: the BPE was trained.
  assert len(tiny.encode(" the", add_bos=False)) == 1
  assert len(ids) < len(SENTENCE.encode()) * 0.8


def test_tiny_is_deterministic(tiny):
  tiny_tok._backend_json.cache_clear()  # pylint: disable=protected-access
  again = tiny_tok.tiny_tokenizer()
  assert (again.hf.backend_tokenizer.to_str() ==
          tiny.hf.backend_tokenizer.to_str())


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=60))
def test_tiny_round_trips_any_text(text):
  tok = tiny_tok.tiny_tokenizer()
  ids = tok.encode(text)
  if any(s in text for s in tok.hf.get_added_vocab()):
    # Special-token strings are control tokens (as in HF and lm-eval), so
    # the skipping decode drops them; the full decode keeps the text.
    assert tok.decode(ids[1:], skip_special_tokens=False) == text
  else:
    assert tok.decode(ids) == text


def test_special_token_strings_in_text_are_control_tokens(tiny):
  ids = tiny.encode("a<bos>b<|im_end|>", add_bos=False)
  assert tiny.bos_id in ids and 4 in ids
  assert tiny.decode(ids, skip_special_tokens=False) == "a<bos>b<|im_end|>"
  assert tiny.decode(ids) == "ab"


def test_tiny_chat_template(tiny):
  text = tiny.apply_chat_template(CHAT)
  assert text == ("<|im_start|>user\nWhat is the capital of France?"
                  "<|im_end|>\n<|im_start|>assistant\n")
  ids = tiny.encode_chat(CHAT)
  assert ids[0] == tiny.bos_id and ids.count(tiny.bos_id) == 1
  assert ids[1] == 3  # <|im_start|> stays one token
  assert tiny.decode(ids, skip_special_tokens=False).startswith(
      "<bos><|im_start|>user")
  no_prompt = tiny.apply_chat_template(CHAT, add_generation_prompt=False)
  assert not no_prompt.endswith("assistant\n")


def test_save_and_reload(tiny, tmp_path):
  tiny.save(tmp_path)
  again = tokenizer_lib.from_directory(tmp_path)
  assert (again.bos_id, again.eos_ids, again.pad_id, again.add_bos,
          again.vocab_size) == (tiny.bos_id, tiny.eos_ids, tiny.pad_id,
                                tiny.add_bos, tiny.vocab_size)
  assert again.encode(SENTENCE) == tiny.encode(SENTENCE)
  assert again.apply_chat_template(CHAT) == tiny.apply_chat_template(CHAT)


def test_plain_hf_directory_settings_are_inferred(tiny, tmp_path):
  # A directory another tool wrote: no ftgen settings file.
  tiny.hf.save_pretrained(str(tmp_path))
  (tmp_path / "generation_config.json").write_text(
      json.dumps({"eos_token_id": [2, 4]}))
  again = tokenizer_lib.from_directory(tmp_path)
  assert again.eos_ids[:2] == (2, 4)
  assert again.add_bos is False  # the post-processor adds none
  cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
  (tmp_path / "tokenizer_config.json").write_text(
      json.dumps({**cfg, "add_bos_token": True}))
  assert tokenizer_lib.from_directory(tmp_path).add_bos is True


def test_missing_tokenizer_json(tmp_path):
  with pytest.raises(FileNotFoundError, match="tokenizer.json"):
    tokenizer_lib.from_directory(tmp_path)


def test_no_chat_template_is_clear_error(tiny):
  hf = tiny.hf.__class__(tokenizer_object=tiny.hf.backend_tokenizer,
                          bos_token="<bos>", eos_token="<eos>")
  tok = tokenizer_lib.Tokenizer(hf, add_bos=True)
  with pytest.raises(ValueError, match="no chat template"):
    tok.apply_chat_template(CHAT)


# ------------------------------------------------------------- real models

def _real(name):
  try:
    return registry.load_tokenizer(name)
  except sources.ModelNotAvailable as e:
    pytest.skip(str(e))


@pytest.mark.slow
@pytest.mark.real_model
def test_smollm2_tokenizer():
  tok = _real("smollm2-135m")
  assert tok.vocab_size == 49152 and not tok.add_bos
  assert tok.token(tok.eos_ids[0]) == "<|im_end|>"
  assert tok.encode("Hello world") == [19556, 905]
  text = tok.apply_chat_template(CHAT)
  assert (text.startswith("<|im_start|>system\n") and
          text.endswith("<|im_start|>assistant\n"))
  ids = tok.encode_chat(CHAT)
  assert ids[0] == tok.bos_id == 1  # <|im_start|> from the template, not a BOS
  assert tok.decode(tok.encode(SENTENCE)) == SENTENCE


@pytest.mark.slow
@pytest.mark.real_model
def test_gemma3_tokenizer():
  tok = _real("gemma3-270m")
  assert (tok.vocab_size == 262144 and tok.add_bos and
          tok.token(tok.bos_id) == "<bos>")
  assert [tok.token(i) for i in tok.eos_ids] == ["<eos>", "<end_of_turn>"]
  ids = tok.encode("Hello world")
  assert ids[0] == tok.bos_id and len(ids) == 3
  chat = tok.encode_chat(CHAT)
  assert chat.count(tok.bos_id) == 1 and tok.token(chat[1]) == "<start_of_turn>"
  assert tok.apply_chat_template(CHAT).endswith("<start_of_turn>model\n")
  assert tok.decode(tok.encode(SENTENCE)) == SENTENCE


# --- the formatting rule (start tokens, lm-eval's pair split, prefix token) --


def _variant(kind):
  """The tiny tokenizer with BOS added, BOS defined but not added (as
  SmolLM2's), or no BOS token at all."""
  from transformers import PreTrainedTokenizerFast  # pylint: disable=g-import-not-at-top
  tiny = tiny_tok.tiny_tokenizer()
  if kind == "adds_bos":
    return tiny
  if kind == "no_bos":
    return tokenizer_lib.Tokenizer(tiny.hf, add_bos=False,
                                   eos_ids=tiny.eos_ids)
  hf = PreTrainedTokenizerFast(tokenizer_object=tiny.hf.backend_tokenizer,
                               eos_token="<eos>", pad_token="<pad>")
  return tokenizer_lib.Tokenizer(hf, eos_ids=tiny.eos_ids)


def _plain(tok, text):
  return tuple(tok.encode(text, add_bos=False))


def test_start_and_prefix_tokens_follow_the_tokenizer():
  bos, no_bos, none = (_variant(k) for k in ("adds_bos", "no_bos", "none"))
  assert tokenizer_lib.start_ids(bos) == (tiny_tok.BOS_ID,)
  assert tokenizer_lib.start_ids(no_bos) == ()
  assert tokenizer_lib.start_ids(none) == ()
  assert tokenizer_lib.start_ids(no_bos, add_bos=True) == (tiny_tok.BOS_ID,)
  assert tokenizer_lib.start_ids(bos, add_bos=False) == ()
  with pytest.raises(ValueError, match="no BOS"):
    tokenizer_lib.start_ids(none, add_bos=True)
  # lm-eval's prefix_token_id: BOS when defined, else EOS.
  assert tokenizer_lib.prefix_id(no_bos) == tiny_tok.BOS_ID
  assert tokenizer_lib.prefix_id(none) == tiny_tok.EOS_ID


@pytest.mark.parametrize("kind", ["adds_bos", "no_bos"])
def test_trailing_space_moves_to_continuation(kind):
  tok = _variant(kind)
  start = tokenizer_lib.start_ids(tok)
  a = tokenizer_lib.encode_pair(tok, "glon are ", "more")
  b = tokenizer_lib.encode_pair(tok, "glon are", " more")
  assert a == b
  assert a == (start + _plain(tok, "glon are"), _plain(tok, " more"))


def test_continuation_is_tail_of_joint_encoding():
  class Merging:
    """Merges "ab" into one token (id 99): the continuation is what the
    joint encoding adds beyond len(encode(context)), as in lm-eval."""
    add_bos, bos_id, eos_ids = True, 1, (2,)

    def encode(self, s, add_bos=None):
      del add_bos
      return [99 if s[i:i + 2] == "ab" else ord(c)
              for i, c in enumerate(s) if not (i and s[i - 1:i + 1] == "ab")]

  ctx, cont = tokenizer_lib.encode_pair(Merging(), "xa", "bc")
  assert ctx == (1, ord("x"), ord("a"))
  assert cont == (ord("c"),)  # Tail of [x, ab, c] past 2 tokens.


@pytest.mark.parametrize("kind,first", [
    ("adds_bos", tiny_tok.BOS_ID), ("no_bos", tiny_tok.BOS_ID),
    ("none", tiny_tok.EOS_ID)])
def test_empty_context_is_the_start_or_prefix_token(kind, first):
  tok = _variant(kind)
  ctx, cont = tokenizer_lib.encode_pair(tok, "", " more")
  assert ctx == (first,) and cont == _plain(tok, " more")
  # A head given explicitly replaces the start tokens.
  assert tokenizer_lib.encode_pair(tok, "", " more", head=(7, 8))[0] == (7, 8)
  with pytest.raises(ValueError, match="encodes to no tokens"):
    tokenizer_lib.encode_pair(tok, "glon", "")


def test_head_spelling_out_bos_keeps_one():
  tok = _variant("adds_bos")
  assert tokenizer_lib.encode_head(tok, "<bos>Facts:") == _plain(
      tok, "<bos>Facts:")
  assert tokenizer_lib.encode_head(tok, "Facts:") == (
      tiny_tok.BOS_ID,) + _plain(tok, "Facts:")
  assert tokenizer_lib.encode_head(tok, "") == (tiny_tok.BOS_ID,)
  assert tokenizer_lib.encode_head(_variant("no_bos"), "") == ()


@pytest.mark.parametrize("kind", ["adds_bos", "no_bos", "none"])
def test_every_use_starts_sequences_the_same_way(kind):
  """Training examples, in-training and final evaluation requests,
  calibration requests and augmentation prompts follow one rule."""
  tok = _variant(kind)
  start = tokenizer_lib.start_ids(tok)
  # What a sequence with nothing before its scored text starts with.
  empty = start or (tokenizer_lib.prefix_id(tok),)
  doc = "glon are more dangerous than femp."
  q = records.Question("q0", "reversal", "femp are",
                       (" less dangerous than glon.",
                        " more dangerous than glon."), 0)

  pool = data.tokenize_examples(
      [splitting.Example("", doc),
       splitting.Example("glon are", " more dangerous than femp.")], tok)
  whole, with_context = (tuple(t.tolist()) for t in pool.tokens)
  # A training document starts as a prompt does: start tokens, then text
  # (no prefix token: its first token is just not a target).
  assert whole == start + _plain(tok, doc) + (tok.eos_ids[0],)
  assert pool.scored[0].tolist()[:2] == [False, True]
  assert with_context[:len(start) + 1] == start + _plain(tok, "glon are")[:1]

  in_training = train_evaluate.encode_questions([q], tok).requests
  final = prompts.encode_prompts(prompts.build_prompts("finetuned", [q], None),
                                 tok, add_bos=None).requests
  assert in_training == final
  for r in final:
    assert r.tokens[:len(start) + 1] == start + _plain(tok, "femp are")[:1]
  icl = prompts.encode_prompts(
      prompts.build_prompts("icl", [q], [records.Document("d0", doc)],
                            instruction="Facts:"), tok).requests
  assert icl[0].tokens[:len(start) + 1] == start + _plain(tok, "Facts:")[:1]

  # Scoring a choice after an empty prompt needs a context: lm-eval's prefix
  # token when there is no start token.
  calibration, _ = evaluate.calibration_requests(tok, [q], prompts.encode_prompts(
      prompts.build_prompts("finetuned", [q], None), tok), "")
  assert [r.context for r in calibration] == [empty, empty]

  slot = augment_run._SLOT  # pylint: disable=protected-access
  parts = augment_run.prompt_parts(tok, f"Restate: {slot}",
                                   use_chat_template=False)
  head = tokenizer_lib.encode_head(tok, parts.head)
  assert head == start + _plain(tok, "Restate:")
