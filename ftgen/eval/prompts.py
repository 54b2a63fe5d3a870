"""Prompt building for the evaluation conditions and the context-fit check.

Every question is scored as `head + prompt + choice`, where `head` depends on
the condition:

* `pretrained`, `finetuned`: the instruction (often empty);
* `icl`: instruction, then the training documents (optionally deduplicated,
  subsampled by a factor and shuffled with a seed), the same for every
  question, so it is a shared prefix;
* `retrieval`: instruction, then the k BM25-best documents for the question.

With `use_chat_template`, the head becomes a chat turn: the user message holds
the instruction and documents, the generation prompt opens the assistant turn,
and the question prompt + choice are the start of the assistant's reply.

The head is tokenized on its own (after BOS when the tokenizer uses one) and
the question with lm-eval's rules after it
(`ftgen.checkpoints.tokenizer.encode_head`, `encode_pair`), so a head shared
by all questions is a shared token prefix: the cached and brute-force paths
see identical tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from ftgen.checkpoints import tokenizer as tokenizer_lib
from ftgen.data import records
from ftgen.eval import retrieval
from ftgen.eval import scoring

# The evaluation modes (configs/evaluate.py:MODE); each experiment condition
# is scored in one of them (ftgen.experiments.conditions.EVAL_MODE).
CONDITIONS = ("pretrained", "icl", "retrieval", "finetuned")
# The user turn when a chat template is used without any instruction.
DEFAULT_CHAT_INSTRUCTION = "Complete the following statement."


class ContextTooLongError(ValueError):
  """A prompt does not fit the model's context (never silently truncated)."""


def select_documents(documents: Sequence[records.Document], *,
                     subsample: int = 1, shuffle: bool = True, seed: int = 0,
                     dedup: bool = True) -> list[records.Document]:
  """The documents put in context: dedup, shuffle, then keep 1/subsample.

  Dedup keeps the first document of each distinct (whitespace-normalized)
  text. The shuffle is a seeded permutation; subsampling keeps the first
  ceil(n / subsample) documents of that order (of the dataset order when
  `shuffle` is off), so a larger factor gives a subset of a smaller one.
  """
  if subsample < 1:
    raise ValueError(f"icl_subsample must be >= 1, got {subsample}")
  docs = list(documents)
  if dedup:
    seen, kept = set(), []
    for d in docs:
      key = " ".join(d.text.split())
      if key not in seen:
        seen.add(key)
        kept.append(d)
    docs = kept
  if shuffle:
    order = np.random.default_rng(seed).permutation(len(docs))
    docs = [docs[i] for i in order]
  keep = -(-len(docs) // subsample)
  return docs[:keep]


def body_text(instruction: str, texts: Sequence[str], separator: str) -> str:
  """Instruction and documents, blank-line separated."""
  parts = [instruction.strip()] if instruction.strip() else []
  if texts:
    parts.append(separator.join(t.strip() for t in texts))
  return "\n\n".join(parts)


def head_text(body: str, *, chat: Callable[[str], str] | None) -> str:
  """The text before the question prompt.

  Plain text: the body and a blank line (nothing when the body is empty).
  Chat: the templated user turn plus the assistant generation prompt.
  """
  if chat is not None:
    return chat(body or DEFAULT_CHAT_INSTRUCTION)
  return body + "\n\n" if body else ""


@dataclasses.dataclass(frozen=True)
class QuestionPrompt:
  question: records.Question
  head: str
  documents: tuple[str, ...] = ()  # ids of the documents in the head.


def build_prompts(condition: str, questions: Sequence[records.Question],
                  documents: Sequence[records.Document] | None, *,
                  instruction: str = "", separator: str = "\n",
                  chat: Callable[[str], str] | None = None,
                  icl_subsample: int = 1, shuffle: bool = True,
                  shuffle_seed: int = 0, dedup: bool = True,
                  retrieval_k: int = 5,
                  retrieval_query: str = "prompt+choices"
                  ) -> list[QuestionPrompt]:
  """One prompt per question for the given condition."""
  if condition not in CONDITIONS:
    raise ValueError(
        f"unknown condition {condition!r}; allowed: {', '.join(CONDITIONS)}")
  if condition in ("pretrained", "finetuned"):
    head = head_text(body_text(instruction, [], separator), chat=chat)
    return [QuestionPrompt(q, head) for q in questions]
  if not documents:
    raise ValueError(f"condition {condition!r} needs training documents")
  if condition == "icl":
    docs = select_documents(documents, subsample=icl_subsample,
                            shuffle=shuffle, seed=shuffle_seed, dedup=dedup)
    head = head_text(body_text(instruction, [d.text for d in docs], separator),
                     chat=chat)
    ids = tuple(d.id for d in docs)
    return [QuestionPrompt(q, head, ids) for q in questions]
  pool = select_documents(documents, subsample=1, shuffle=False, dedup=dedup)
  retriever = retrieval.Retriever(pool)
  out = []
  for q in questions:
    docs = retriever.top_k(q, retrieval_k, retrieval_query)
    head = head_text(body_text(instruction, [d.text for d in docs], separator),
                     chat=chat)
    out.append(QuestionPrompt(q, head, tuple(d.id for d in docs)))
  return out


@dataclasses.dataclass
class Encoded:
  """Requests of all (question, choice) pairs, question-major."""

  requests: list[scoring.Request]
  owner: list[tuple[int, int]]  # request -> (question index, choice index)
  head_tokens: dict[str, int]  # distinct head text -> its token count
  # Each question's head (its condition's context) as token ids, for the
  # calibration requests, which keep it (ftgen/eval/evaluate.py).
  heads: list[tuple[int, ...]] = dataclasses.field(default_factory=list)


def encode_prompts(prompts: Sequence[QuestionPrompt], tokenizer: Any, *,
                   add_bos: bool | None = None) -> Encoded:
  """Tokenizes every (question, choice) pair; heads are encoded once each.

  Args:
    prompts: from `build_prompts`.
    tokenizer: the model's tokenizer; pairs follow its formatting rule
      (`ftgen.checkpoints.tokenizer.encode_pair`).
    add_bos: overrides the tokenizer's BOS convention (None keeps it).
  """
  heads: dict[str, tuple[int, ...]] = {}
  requests, owner, per_question = [], [], []
  for qi, p in enumerate(prompts):
    if p.head not in heads:
      heads[p.head] = tokenizer_lib.encode_head(tokenizer, p.head, add_bos)
    per_question.append(heads[p.head])
    for ci, choice in enumerate(p.question.choices):
      try:
        requests.append(scoring.Request(*tokenizer_lib.encode_pair(
            tokenizer, p.question.prompt, choice, head=heads[p.head])))
      except ValueError as e:
        raise ValueError(
            f"question {p.question.id!r} choice {ci}: {e}") from None
      owner.append((qi, ci))
  return Encoded(requests, owner, {h: len(t) for h, t in heads.items()},
                 per_question)


def context_report(encoded: Encoded, max_len: int) -> dict[str, Any]:
  """Token counts of the prompts and whether the longest fits `max_len`."""
  lengths = np.asarray([len(r) for r in encoded.requests])
  heads = np.asarray(list(encoded.head_tokens.values()) or [0])
  longest = int(lengths.max()) if lengths.size else 0
  return {
      "num_requests": int(lengths.size),
      "num_heads": int(heads.size),
      "head_tokens_max": int(heads.max()),
      "head_tokens_mean": float(heads.mean()),
      "request_tokens_max": longest,
      "request_tokens_mean": float(lengths.mean()) if lengths.size else 0.0,
      "scored_tokens": int(sum(len(r.continuation) for r in encoded.requests)),
      "max_seq_len": int(max_len),
      "fits": bool(longest <= max_len),
  }


def check_fits(report: dict[str, Any], model_name: str):
  if not report["fits"]:
    raise ContextTooLongError(
        f"the longest prompt needs {report['request_tokens_max']} tokens but"
        f" model {model_name!r} allows {report['max_seq_len']} (the context"
        f" is {report['head_tokens_max']} tokens); lower the context with"
        " --config.icl_subsample or --config.retrieval_k")
