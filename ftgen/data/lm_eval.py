"""Exports test splits as lm-evaluation-harness tasks.

For a dataset NAME with test splits S1, S2, ... this writes, under `lm_eval/`
of the dataset directory:

* `<split>.jsonl`: that split's questions (`id`, `prompt`, `choices`,
  `answer`, `answers`), so no Python `process_docs` hook is needed to filter
  by split;
* `ftgen_<name>_<split>.yaml`: one `multiple_choice` task per split;
* `ftgen_<name>.yaml`: a group of all splits;
* `README.md`: how to run them.

Paths inside the YAMLs are relative to the dataset directory (the harness
hands `data_files` to `datasets.load_dataset`, which resolves them against
the working directory), so run the harness from there:

  cd DIR/NAME && lm_eval --model hf --model_args pretrained=... \
      --include_path lm_eval --tasks ftgen_NAME

Our prompts already end where the choice starts (a question is scored as
`prompt + choice`), hence `target_delimiter: ""`.
"""

from __future__ import annotations

import json
import re

from ftgen.data import io
from ftgen.data import records

LM_EVAL_DIR = "lm_eval"


def task_name(dataset_name: str, split: str | None = None) -> str:
  """A harness-safe task name: lower case letters, digits and `_`."""
  parts = ["ftgen", dataset_name] + ([split] if split is not None else [])
  return re.sub(r"[^a-z0-9_]+", "_", "_".join(parts).lower())


def _q(text: str) -> str:
  # A JSON string is a valid double-quoted YAML scalar: no YAML library is
  # needed to write these files, and the output is byte-stable.
  return json.dumps(text, ensure_ascii=False)


def _split_file_name(split: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", split) + ".jsonl"


def _task_yaml(dataset: records.Dataset, split: str, questions) -> str:
  multi = any(len(q.answers) > 1 for q in questions)
  data_file = f"{LM_EVAL_DIR}/{_split_file_name(split)}"
  lines = [
      f"# lm-evaluation-harness task for ftgen dataset {dataset.name!r},"
      f" split {split!r}.",
      "# Run from the dataset directory (paths are relative to it):",
      f"#   lm_eval --include_path {LM_EVAL_DIR} --tasks"
      f" {task_name(dataset.name, split)} ...",
      f"task: {task_name(dataset.name, split)}",
      "dataset_path: json",
      "dataset_kwargs:",
      "  data_files:",
      f"    test: {_q(data_file)}",
      "test_split: test",
      "output_type: multiple_choice",
      # Plain column names: the harness returns the field as is (no Jinja
      # rendering and re-parsing of lists).
      "doc_to_text: prompt",
      "doc_to_choice: choices",
      # With several correct choices the harness accepts a list of gold
      # indices and counts a prediction in that list as correct.
      f"doc_to_target: {'answers' if multi else 'answer'}",
      '''target_delimiter: ""''',
      "metric_list:",
  ]
  for metric in ("acc", "acc_norm"):
    lines += [
        f"  - metric: {metric}",
        "    aggregation: mean",
        "    higher_is_better: true",
    ]
  lines += [
      "metadata:",
      f"  version: {io.GENERATOR_VERSION}.0",
      "",
  ]
  return "\n".join(lines)


def _group_yaml(dataset: records.Dataset) -> str:
  lines = [
      f"# All test splits of ftgen dataset {dataset.name!r}.",
      f"group: {task_name(dataset.name)}",
      "task:",
  ]
  lines += [f"  - {task_name(dataset.name, s)}" for s in dataset.splits]
  lines += [
      "aggregate_metric_list:",
      "  - metric: acc",
      "    aggregation: mean",
      "    weight_by_size: true",
      "metadata:",
      f"  version: {io.GENERATOR_VERSION}.0",
      "",
  ]
  return "\n".join(lines)


def _readme(dataset: records.Dataset) -> str:
  tasks = ", ".join(task_name(dataset.name, s) for s in dataset.splits)
  return "\n".join([
      f"# lm-evaluation-harness tasks for `{dataset.name}`",
      "",
      "Run from the dataset directory (the YAMLs name their data files",
      "relative to it):",
      "",
      "```",
      f"lm_eval --model hf --model_args pretrained=MODEL --include_path"
      f" {LM_EVAL_DIR} --tasks {task_name(dataset.name)}",
      "```",
      "",
      f"Tasks: {tasks} (group `{task_name(dataset.name)}`).",
      "Each question is scored as `prompt + choice` (no delimiter).",
      "",
  ])


def task_files(dataset: records.Dataset) -> dict[str, str]:
  """Relative path -> text of the lm-evaluation-harness export."""
  if not dataset.test:
    return {}
  by_split: dict[str, list[records.Question]] = {}
  for q in dataset.test:
    by_split.setdefault(q.split, []).append(q)
  names = [task_name(dataset.name, s) for s in by_split]
  if len(set(names)) != len(names):
    raise ValueError(
        f"dataset {dataset.name!r}: splits {list(by_split)} collide after"
        " sanitizing into lm-eval task names; rename the splits"
    )
  files: dict[str, str] = {}
  for split, questions in by_split.items():
    rows = [
        io.dumps({"id": q.id, "prompt": q.prompt, "choices": list(q.choices),
                  "answer": q.answer, "answers": list(q.answers)})
        for q in questions
    ]
    files[f"{LM_EVAL_DIR}/{_split_file_name(split)}"] = "\n".join(rows) + "\n"
    files[f"{LM_EVAL_DIR}/{task_name(dataset.name, split)}.yaml"] = _task_yaml(
        dataset, split, questions)
  files[f"{LM_EVAL_DIR}/{task_name(dataset.name)}.yaml"] = _group_yaml(dataset)
  files[f"{LM_EVAL_DIR}/README.md"] = _readme(dataset)
  return files
