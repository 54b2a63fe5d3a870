"""Tokenizers: tiny, from HF directories, real models (GGUF: test_gguf.py)."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from ftgen.checkpoints import registry
from ftgen.checkpoints import sources
from ftgen.checkpoints import tiny_tokenizer as tiny_tok
from ftgen.checkpoints import tokenizer as tokenizer_lib

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
