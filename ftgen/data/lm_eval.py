"""Exports test splits as lm-evaluation-harness tasks.

For a dataset NAME with test splits S1, S2, ... this writes, under `lm_eval/`
of the dataset directory:

* `<split>.jsonl`: that split's questions (`id`, `prompt`, `choices`,
  `answer`, `answers`), so no Python `process_docs` hook is needed to filter
  by split;
* `<prefix>_<split>.yaml`: one `multiple_choice` task per split, scored
  with `acc`, `acc_norm` and `acc_mutual_info` (ftgen's raw, per-byte and
  calibrated variants, ftgen/eval/metrics.py);
* `<prefix>.yaml`: the group of all splits (size-weighted means);
* `ftgen_lm_eval_data.py`: the tasks' `custom_dataset`, which reads the
  split files relative to itself;
* `README.md`: how to run them.

The harness resolves a YAML's `data_files` against the working directory;
the tasks name their files through `ftgen_lm_eval_data.load` instead, which
the harness imports from beside the YAML (`!function`), so they run from any
directory:

  lm_eval --model hf --model_args pretrained=EXPORT \
      --include_path DIR/NAME/lm_eval --tasks PREFIX

PREFIX (`task_prefix`, configs/data.py) names the group and starts every
task name; by default `ftgen_<name>_<8 hex digits>`, the digits from the
sha256 of train.jsonl and test.jsonl (`default_task_prefix`), so two builds
of a dataset with different data load side by side, while the same data
keeps its names. (Not from the manifest's own digest: the manifest digests
these YAMLs, which carry the prefix.)

Our prompts already end where the choice starts (a question is scored as
`prompt + choice`), hence `target_delimiter: ""`.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
from typing import Any

from ftgen.data import io
from ftgen.data import records
from ftgen.data import workdir as workdir_lib

LM_EVAL_DIR = "lm_eval"
LOADER_MODULE = "ftgen_lm_eval_data"
# The harness's names for ftgen's score variants (ftgen/eval/metrics.py).
METRICS = ("acc", "acc_norm", "acc_mutual_info")
_NAME = re.compile(r"[a-z][a-z0-9_]*")

_LOADER = '''\
"""Loads ftgen's exported questions for lm-evaluation-harness.

Written by ftgen (ftgen/data/lm_eval.py) beside the task YAMLs, which name
`load` as their `custom_dataset`: the split files resolve against this
directory, so `lm_eval --include_path THIS_DIR` works from any directory.
"""

import pathlib

import datasets


def load(data_files, **unused_metadata):
  here = pathlib.Path(__file__).resolve().parent
  return datasets.load_dataset(
      "json", data_files={k: str(here / v) for k, v in data_files.items()})
'''


def _sanitize(text: str) -> str:
  return re.sub(r"[^a-z0-9_]+", "_", text.lower())


def _jsonl_sha256(rows) -> str:
  # The bytes io.write_jsonl writes (so equal to the manifest's sha256).
  h = hashlib.sha256()
  for row in rows:
    h.update((io.dumps(row) + "\n").encode("utf-8"))
  return h.hexdigest()


def default_task_prefix(dataset_name: str, train_sha256: str,
                        test_sha256: str) -> str:
  """`ftgen_<name>_<8 hex>`: the hex from train.jsonl's and test.jsonl's
  sha256 (as in manifest.json)."""
  digest = hashlib.sha256(
      f"train.jsonl {train_sha256}\ntest.jsonl {test_sha256}\n".encode()
  ).hexdigest()[:8]
  return _sanitize(f"ftgen_{dataset_name}_{digest}")


def check_task_prefix(prefix: str) -> str:
  """`prefix` if it is a valid harness task name, else a ValueError."""
  if not _NAME.fullmatch(prefix):
    raise ValueError(
        f"task_prefix={prefix!r}; allowed: lower-case letters, digits and"
        " '_', starting with a letter (or '' for ftgen_<name>_<digest>)")
  return prefix


def dataset_task_prefix(dataset: records.Dataset, prefix: str = "") -> str:
  """`prefix` (checked), or the default prefix of `dataset`."""
  if prefix:
    return check_task_prefix(prefix)
  return default_task_prefix(
      dataset.name, _jsonl_sha256(d.to_json() for d in dataset.train),
      _jsonl_sha256(q.to_json() for q in dataset.test))


def task_prefix_of(data_dir: str | pathlib.Path) -> str:
  """The task prefix a dataset directory's export uses (or would use).

  From its manifest: the `task_prefix` it was generated with, else the
  default from the manifest's train/test digests. A directory without
  ftgen's manifest (questions of your own) digests its files.
  """
  data_dir = workdir_lib.as_path(data_dir)  # Local or gs://.
  manifest: dict[str, Any] = {}
  if (data_dir / "manifest.json").is_file():
    manifest = json.loads((data_dir / "manifest.json").read_text("utf-8"))
  prefix = (manifest.get("config") or {}).get("task_prefix") or ""
  if prefix:
    return check_task_prefix(prefix)
  digests = manifest.get("sha256") or {}

  def digest(name: str) -> str:
    if name in digests:
      return digests[name]
    path = data_dir / name
    return io.sha256_file(path) if path.is_file() else _jsonl_sha256([])

  return default_task_prefix(manifest.get("name") or data_dir.name,
                             digest("train.jsonl"), digest("test.jsonl"))


def task_name(prefix: str, split: str | None = None) -> str:
  """The group (`prefix`) or a split's task name: harness-safe (lower-case
  letters, digits and `_`)."""
  return _sanitize(prefix if split is None else f"{prefix}_{split}")


def _q(text: str) -> str:
  # A JSON string is a valid double-quoted YAML scalar: no YAML library is
  # needed to write these files, and the output is byte-stable.
  return json.dumps(text, ensure_ascii=False)


def _split_file_name(split: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", split) + ".jsonl"


def doc(question: records.Question) -> dict[str, Any]:
  """A question as a row of its split file (the harness's `doc`)."""
  return {"id": question.id, "prompt": question.prompt,
          "choices": list(question.choices), "answer": question.answer,
          "answers": list(question.answers)}


def task_config(prefix: str, split: str, multi_answer: bool) -> dict[str, Any]:
  """A split task's config as the harness records it under `configs` in its
  results file (the YAML's keys plus the harness's defaults)."""
  return {
      "task": task_name(prefix, split),
      "custom_dataset": f"{LOADER_MODULE}.load",
      "dataset_kwargs": {"data_files": {"test": _split_file_name(split)}},
      "test_split": "test",
      "doc_to_text": "prompt",
      "doc_to_target": "answers" if multi_answer else "answer",
      "unsafe_code": False,
      "doc_to_choice": "choices",
      "description": "",
      "target_delimiter": "",
      "fewshot_delimiter": "\n\n",
      "num_fewshot": 0,
      "metric_list": [{"metric": m, "aggregation": "mean",
                       "higher_is_better": True} for m in METRICS],
      "output_type": "multiple_choice",
      "repeats": 1,
      "should_decontaminate": False,
      "metadata": {"version": float(io.GENERATOR_VERSION)},
  }


def _task_yaml(dataset: records.Dataset, prefix: str, split: str,
               questions) -> str:
  multi = any(len(q.answers) > 1 for q in questions)
  lines = [
      f"# lm-evaluation-harness task for ftgen dataset {dataset.name!r},"
      f" split {split!r}.",
      f"# The data file is relative to this directory ({LOADER_MODULE}.py",
      "# reads it), so run from anywhere:",
      f"#   lm_eval --include_path DIR/{dataset.name}/{LM_EVAL_DIR} --tasks"
      f" {task_name(prefix, split)} ...",
      f"task: {task_name(prefix, split)}",
      f"custom_dataset: !function {LOADER_MODULE}.load",
      "dataset_kwargs:",
      "  data_files:",
      f"    test: {_q(_split_file_name(split))}",
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
  for metric in METRICS:
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


def _group_yaml(dataset: records.Dataset, prefix: str) -> str:
  lines = [
      f"# All test splits of ftgen dataset {dataset.name!r}.",
      f"group: {task_name(prefix)}",
      "task:",
  ]
  lines += [f"  - {task_name(prefix, s)}" for s in dataset.splits]
  lines.append("aggregate_metric_list:")
  for metric in METRICS:
    lines += [
        f"  - metric: {metric}",
        "    aggregation: mean",
        "    weight_by_size: true",
    ]
  lines += [
      "metadata:",
      f"  version: {io.GENERATOR_VERSION}.0",
      "",
  ]
  return "\n".join(lines)


def _readme(dataset: records.Dataset, prefix: str) -> str:
  tasks = ", ".join(task_name(prefix, s) for s in dataset.splits)
  return "\n".join([
      f"# lm-evaluation-harness tasks for `{dataset.name}`",
      "",
      "Run from any directory (the tasks read their data files relative to",
      f"this one, through `{LOADER_MODULE}.py`):",
      "",
      "```",
      "lm_eval --model hf --model_args pretrained=MODEL --include_path"
      f" DIR/{dataset.name}/{LM_EVAL_DIR} --tasks {task_name(prefix)}",
      "```",
      "",
      f"Tasks: {tasks} (group `{task_name(prefix)}`), scored with",
      f"{', '.join(METRICS)}.",
      "Each question is scored as `prompt + choice` (no delimiter).",
      "",
  ])


def task_files(dataset: records.Dataset, prefix: str = "") -> dict[str, str]:
  """Relative path -> text of the lm-evaluation-harness export.

  Args:
    dataset: the dataset; no files when it has no questions.
    prefix: the group name and task-name prefix; "" for the default
      (`default_task_prefix`).

  Raises:
    ValueError: an invalid `prefix`, or splits whose task names collide.
  """
  if not dataset.test:
    return {}
  prefix = dataset_task_prefix(dataset, prefix)
  by_split: dict[str, list[records.Question]] = {}
  for q in dataset.test:
    by_split.setdefault(q.split, []).append(q)
  names = [task_name(prefix, s) for s in by_split]
  if len(set(names)) != len(names):
    raise ValueError(
        f"dataset {dataset.name!r}: splits {list(by_split)} collide after"
        " sanitizing into lm-eval task names; rename the splits"
    )
  files: dict[str, str] = {}
  for split, questions in by_split.items():
    rows = [io.dumps(doc(q)) for q in questions]
    files[f"{LM_EVAL_DIR}/{_split_file_name(split)}"] = "\n".join(rows) + "\n"
    files[f"{LM_EVAL_DIR}/{task_name(prefix, split)}.yaml"] = _task_yaml(
        dataset, prefix, split, questions)
  files[f"{LM_EVAL_DIR}/{task_name(prefix)}.yaml"] = _group_yaml(dataset,
                                                                 prefix)
  files[f"{LM_EVAL_DIR}/{LOADER_MODULE}.py"] = _LOADER
  files[f"{LM_EVAL_DIR}/README.md"] = _readme(dataset, prefix)
  return files
