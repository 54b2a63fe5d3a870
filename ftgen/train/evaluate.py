"""Evaluation during fine-tuning: the `finetuned` condition of the final
evaluator, on the params being trained.

Questions are chosen by `ftgen.eval.evaluate.select_questions`; prompts are
built, tokenized and scored by `ftgen.eval.prompts.build_prompts`,
`encode_prompts` and `ftgen.eval.evaluate.score_encoded`, with a float32
compute model, as `launch/evaluate.py --config=configs/evaluate.py:finetuned`
does on the export. So the accuracy (and every question's log-likelihoods)
reported during training is the final evaluation's.
"""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

from ftgen.data import records
from ftgen.eval import evaluate as evaluate_lib
from ftgen.eval import prompts as prompts_lib
from ftgen.models import decoder

CONDITION = "finetuned"


def select_questions(questions: Sequence[records.Question], eval_config: Any
                     ) -> list[records.Question]:
  """The questions of a fine-tuning config's `eval` block.

  Reads `eval.splits` (comma separated, "" = all),
  `eval.max_questions_per_split` (0: all) and `eval.seed`.
  """
  splits = [s.strip() for s in eval_config.splits.split(",") if s.strip()]
  return evaluate_lib.select_questions(
      questions, splits, int(eval_config.max_questions_per_split),
      int(eval_config.seed), key="config.eval.splits")


def encode_questions(questions: Sequence[records.Question], tokenizer: Any
                     ) -> prompts_lib.Encoded:
  """The (question, choice) requests, as the final `finetuned` evaluation
  builds and encodes them (no instruction, no chat template, the tokenizer's
  BOS convention)."""
  prompts = prompts_lib.build_prompts(CONDITION, questions, None)
  return prompts_lib.encode_prompts(prompts, tokenizer)


def evaluate(model_config: Any, params: Any, tokenizer: Any,
             questions: Sequence[records.Question], *, batch_size: int = 16,
             results_path: pathlib.Path | None = None, model_name: str = "",
             mesh: Any = None) -> dict[str, dict[str, Any]]:
  """Scores `questions` with the fine-tuned params.

  Args:
    model_config: the trained model's config (scored in float32 compute).
    params: the full params (LoRA merged).
    tokenizer: the model's tokenizer.
    questions: from `select_questions`.
    batch_size: rows per scoring batch.
    results_path: if given, also score the calibration prompt and write the
      per-question rows there, as launch/evaluate.py writes results.jsonl.
    model_name: for the error when a prompt does not fit the context.
    mesh: the mesh the params lie on; the rows are split over its batch
      axes (`ftgen.eval.scoring.score_requests`).

  Returns:
    {split: {"acc", "stderr", "n", "chance", ...}}, plus "all" for several
    splits.
  """
  model = decoder.Decoder(model_config.replace(dtype="float32"))
  encoded = encode_questions(questions, tokenizer)
  prompts_lib.check_fits(
      prompts_lib.context_report(encoded, model_config.max_seq_len),
      model_name)
  scored = evaluate_lib.score_encoded(
      model, params, tokenizer, CONDITION, questions, encoded,
      calibration_prompt=None if results_path is None else "",
      batch_size=batch_size, mesh=mesh)
  if results_path is not None:
    evaluate_lib.write_results(results_path, scored.rows)
  return evaluate_lib.summarize(questions, scored.rows)
