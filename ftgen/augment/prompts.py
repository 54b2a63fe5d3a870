"""Augmentation prompt templates: defaults, filling, validation, leakage guard.

`default_template` gives a dataset's template: its own from the dataset
registry (`ftgen.data.registry`), else the generic one here;
`configs/augment.py` sets it as `config.template`, which users can replace.
The local prompt's worked examples are the dataset's own
(`DatasetSpec.augment_examples`, in its wording and logic) when it has them.
A local template needs `{statement}`; a global template needs `{documents}`
(the training set in context) and `{document}` (the one to connect). Worked
examples use real English about unrelated things, never dataset words.
"""

from __future__ import annotations

import string
from typing import Iterable, Sequence

from ftgen.data import checks
from ftgen.data import records
from ftgen.data import registry

REQUIRED_FIELDS = {"local": ("statement",), "global": ("documents", "document")}

_LOCAL_INSTRUCTION = """\
Rewrite the statement in several different ways. Include its reversal (the \
same fact stated from the other side) and paraphrases. Write one statement \
per line and nothing else.
"""

# Worked examples of the generic local prompt, for datasets without their
# own (`DatasetSpec.augment_examples`). Each restatement follows from its
# statement alone: no existential import ("all violins are ..." does not
# give "some string instruments are violins").
GENERIC_EXAMPLES = (
    ("Lions are heavier than foxes.",
     ("Foxes are lighter than lions.", "A lion weighs more than a fox.",
      "Foxes weigh less than lions.")),
    ("All violins are string instruments.",
     ("Every violin is a string instrument.",
      "Violins are a kind of string instrument.",
      "Anything that is a violin is a string instrument.")),
)


def local_template(examples=GENERIC_EXAMPLES) -> str:
  """The local augmentation prompt with these worked examples: (statement,
  restatements) pairs in the dataset's own wording and logic."""
  parts = [_LOCAL_INSTRUCTION]
  for statement, restatements in examples:
    parts.append(f"Statement: {statement}\nRestatements:\n"
                 + "".join(f"{r}\n" for r in restatements))
  parts.append("Statement: {statement}\nRestatements:\n")
  return "\n".join(parts)


LOCAL_TEMPLATE = local_template()

GLOBAL_TEMPLATE = """\
Here are some documents.

{documents}

Consider this document:
{document}

Write statements that follow from this document together with the other \
documents: reversals of its facts, conclusions that combine facts from \
several documents, and chained relations. Write one statement per line and \
nothing else.
Statements:
"""

GENERIC_TEMPLATES = {"local": LOCAL_TEMPLATE, "global": GLOBAL_TEMPLATE}


class TemplateError(ValueError):
  """A template that misses or misnames its fields."""


def template_fields(template: str) -> set[str]:
  return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def validate_template(template: str, strategy: str, key: str) -> None:
  """Raises when `template` lacks a required field or has an unknown one."""
  if strategy not in REQUIRED_FIELDS:
    raise TemplateError(
        f"unknown augmentation strategy {strategy!r}; allowed:"
        f" {', '.join(REQUIRED_FIELDS)}")
  try:
    fields = template_fields(template)
  except ValueError as e:
    raise TemplateError(f"{key}: malformed template ({e})") from None
  required = set(REQUIRED_FIELDS[strategy])
  missing = required - fields
  if missing:
    raise TemplateError(
        f"{key}: template is missing field(s) {sorted(missing)}; a {strategy}"
        f" template needs {{{'}, {'.join(sorted(required))}}}")
  unknown = fields - required
  if unknown:
    raise TemplateError(
        f"{key}: template has unknown field(s) {sorted(unknown)}; allowed:"
        f" {sorted(required)} (write literal braces as {{{{ }}}})")


def default_template(dataset: str, strategy: str) -> str:
  """The augmentation prompt of `dataset` for `strategy` (local, global)."""
  if strategy not in GENERIC_TEMPLATES:
    raise TemplateError(
        f"unknown augmentation strategy {strategy!r}; allowed:"
        f" {', '.join(GENERIC_TEMPLATES)}")
  spec = registry.get(dataset)
  if strategy in spec.augment_templates:
    return spec.augment_templates[strategy]
  if strategy == "local" and spec.augment_examples:
    return local_template(spec.augment_examples)
  return GENERIC_TEMPLATES[strategy]


def local_prompt(template: str, statement: str) -> str:
  return template.format(statement=statement.strip())


def global_prompt(template: str, documents: Sequence[str],
                  document: str) -> str:
  return template.format(documents="\n\n".join(d.strip() for d in documents),
                         document=document.strip())


def assert_only_training_text(prompt: str, template: str,
                              training: Iterable[records.Document],
                              questions: Iterable[records.Question]) -> None:
  """The leakage guard: a prompt holds the template and training text only.

  Every test answer (prompt + correct choice) that occurs in the filled
  prompt must also occur in the template or a training document; anything
  else means test data leaked into the prompt.
  """
  filled = checks.normalize(prompt)
  allowed = checks.normalize(template) + "\n" + "\n".join(
      checks.normalize(d.text) for d in training)
  for q in questions:
    for a in q.answers:
      target = checks.normalize(q.prompt + q.choices[a])
      if len(target) >= 12 and target in filled and target not in allowed:
        raise AssertionError(
            f"augmentation prompt contains test item {q.id!r} ({target!r}),"
            " which is not training text")
