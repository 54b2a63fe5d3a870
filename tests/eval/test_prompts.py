"""Prompt building per condition, document selection, retrieval, fit check."""

import pytest

from ftgen.data import records
from ftgen.eval import prompts
from ftgen.eval import retrieval


def _docs():
  texts = ["glon are more dangerous than femp.", "Zib are taller than wug.",
           "glon are more dangerous than femp.", "Plok are older than snee.",
           "Mave are faster than trel.", "Kell are wider than brom."]
  return [records.Document(f"d{i}", t) for i, t in enumerate(texts)]


def _question(prompt="femp are", choices=(" less dangerous than glon.",
                                          " more dangerous than glon.")):
  return records.Question("q0", "reversal", prompt, choices, 0)


def test_select_documents_dedup_shuffle_subsample():
  docs = _docs()
  kept = prompts.select_documents(docs, shuffle=False)
  assert [d.id for d in kept] == ["d0", "d1", "d3", "d4", "d5"]
  a = prompts.select_documents(docs, seed=1)
  assert a == prompts.select_documents(docs, seed=1)  # Seeded.
  assert sorted(d.id for d in a) == ["d0", "d1", "d3", "d4", "d5"]
  half = prompts.select_documents(docs, seed=1, subsample=2)
  assert half == a[:3]  # ceil(5 / 2), a prefix of the same order.
  assert len(prompts.select_documents(docs, dedup=False, shuffle=False)) == 6
  with pytest.raises(ValueError, match="icl_subsample"):
    prompts.select_documents(docs, subsample=0)


def test_icl_head_is_shared_and_holds_instruction_and_documents():
  qs = [_question(), _question("glon are")]
  out = prompts.build_prompts("icl", qs, _docs(), instruction="Read.",
                              shuffle=False)
  assert out[0].head == out[1].head
  assert out[0].head.startswith("Read.\n\nglon are more dangerous")
  assert out[0].head.endswith("Kell are wider than brom.\n\n")
  assert out[0].head.count("glon are more dangerous") == 1  # Deduplicated.
  plain = prompts.build_prompts("pretrained", qs, None)
  assert plain[0].head == ""


def test_chat_template_wraps_the_head(toy_tokenizer):
  chat = lambda body: toy_tokenizer.apply_chat_template(
      [{"role": "user", "content": body}])
  out = prompts.build_prompts("icl", [_question()], _docs()[:1],
                              instruction="Read.", chat=chat)
  assert out[0].head == ("<user> Read.\n\nglon are more dangerous than femp."
                         " </user>\n<assistant>\n")
  plain = prompts.build_prompts("pretrained", [_question()], None, chat=chat)
  assert prompts.DEFAULT_CHAT_INSTRUCTION in plain[0].head


def test_retrieval_puts_the_relevant_document_first():
  q = _question("trel are", (" slower than mave.", " faster than mave."))
  r = retrieval.Retriever(_docs())
  assert r.top_k(q, 1)[0].id == "d4"
  out = prompts.build_prompts("retrieval", [q], _docs(), retrieval_k=2)
  assert out[0].documents[0] == "d4" and len(out[0].documents) == 2
  assert "Mave are faster than trel." in out[0].head


def test_unknown_condition_and_missing_documents():
  with pytest.raises(ValueError, match="unknown condition 'nope'.*allowed"):
    prompts.build_prompts("nope", [_question()], _docs())
  with pytest.raises(ValueError, match="needs training documents"):
    prompts.build_prompts("icl", [_question()], None)


def test_encode_and_fit_check(toy_tokenizer):
  ps = prompts.build_prompts("icl", [_question()], _docs(), shuffle=False)
  encoded = prompts.encode_prompts(ps, toy_tokenizer)
  assert len(encoded.requests) == 2 and encoded.owner == [(0, 0), (0, 1)]
  head_len = next(iter(encoded.head_tokens.values()))
  assert (encoded.requests[0].context[:head_len] ==
          encoded.requests[1].context[:head_len])
  assert encoded.requests[0].context[0] == 1
  report = prompts.context_report(encoded, max_len=10)
  assert not report["fits"] and report["request_tokens_max"] > 10
  with pytest.raises(prompts.ContextTooLongError,
                     match=r"needs \d+ tokens but model 'm' allows 10"):
    prompts.check_fits(report, "m")
  assert prompts.context_report(encoded, max_len=1000)["fits"]
