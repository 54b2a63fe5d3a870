r"""The results report, generated from experiment run directories.

  python -m ftgen.experiments.report --archive=docs/results/runs \
      runs/reversals-smollm2-135m runs/celebrities-smollm2-135m ... \
      > docs/results.md
  python -m ftgen.experiments.report --readme=README.md \
      docs/results/quickstart

Nothing in the report is typed by hand: each run's tables come from its
summary.json (ftgen/experiments/results.py), its command, commit, machine and
wall time from its provenance.json (ftgen/experiments/provenance.py), and
each verdict on one of the paper's findings from the Holm-corrected
comparison rows the finding names (`FINDINGS`), once by accuracy and once by
the log-odds margin (which resolves smaller effects): "reproduces" when every
significant row goes the paper's way, "does not reproduce" when every
significant row goes against it, "mixed" when both happen, and "not
resolved at this size" when no row is significant. `--archive` copies what
the report reads (summary.json, config.json, provenance.json, summary.md,
figure.png) into one directory per run, so the report can be rebuilt from the
repository alone (tests/experiments/test_report.py does, and checks the
committed report against it). `--readme` rewrites the README's block between
the `report:quickstart` markers from one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import shutil
import sys
from typing import Any, Mapping, Sequence

from ftgen.data import registry
from ftgen.experiments import results as results_lib

# What `--archive` keeps of a run directory.
ARCHIVED = ("summary.json", "config.json", "provenance.json", "summary.md",
            "figure.png")
MODELS = ("smollm2-135m", "gemma3-270m")
BEGIN = "<!-- report:quickstart begin -->"
END = "<!-- report:quickstart end -->"

# Splits that test generalization beyond the trained statements, and splits
# that restate them, per dataset (their cards: ftgen/data/*.py).
GENERALIZATION = {
    "reversals": ("reversal",),
    "celebrities": ("p2d_reverse", "d2p_reverse"),
    "syllogisms": ("syllogism",),
    "semantic": ("reversal", "syllogism", "category_holdout"),
    "process": ("heldout_combinations",),
}


# Splits that restate the trained statements.
TRAINED = {
    "reversals": ("rephrase",),
    "celebrities": ("p2d_forward", "d2p_forward"),
    "semantic": ("rephrase",),
    "process": ("seen_combinations",),
}


@dataclasses.dataclass(frozen=True)
class Finding:
  """One of the paper's findings as a comparison: `a` - `b` on the dataset's
  generalization splits (or its trained ones) is expected to be positive."""
  claim: str
  a: str
  b: str
  trained: bool = False


FINDINGS = (
    Finding("Fine-tuning learns the trained statements (sanity check)",
            "finetune", "pretrained", trained=True),
    Finding("In-context learning generalizes better than fine-tuning",
            "icl", "finetune"),
    Finding("Fine-tuning on the model's own augmentations (local + global)"
            " generalizes better than plain fine-tuning",
            "finetune_aug", "finetune"),
    Finding("Augmented fine-tuning matches or beats in-context learning",
            "finetune_aug", "icl"),
    Finding("Local augmentations (restating each statement) help fine-tuning",
            "finetune_aug_local", "finetune"),
    Finding("Global augmentations (linking documents) help fine-tuning",
            "finetune_aug_global", "finetune"),
    Finding("Augmentation's gain is not just more steps: augmented beats"
            " plain fine-tuning for as many steps",
            "finetune_aug", "finetune_compute_control"),
    Finding("Correct (rule-written) augmentations make fine-tuning"
            " generalize", "finetune_aug_oracle", "finetune"),
)


@dataclasses.dataclass
class Run:
  name: str
  path: pathlib.Path
  summary: dict[str, Any]
  provenance: list[dict[str, Any]]


def load_run(path: pathlib.Path) -> Run:
  """A run directory's summary and provenance."""
  path = pathlib.Path(path)
  summary_path = path / "summary.json"
  if not summary_path.is_file():
    raise FileNotFoundError(
        f"{path} has no summary.json: give a finished experiment workdir")
  summary = json.loads(summary_path.read_text())
  if "comparisons" not in summary:
    raise ValueError(
        f"{summary_path} predates the comparisons (issue 18): rerun its"
        " command with this code (finished stages are skipped) to rewrite it")
  prov_path = path / "provenance.json"
  prov = json.loads(prov_path.read_text()) if prov_path.is_file() else []
  return Run(path.name, path, summary, prov)


def archive(run_dir: pathlib.Path, dest_root: pathlib.Path,
            name: str | None = None) -> pathlib.Path:
  """Copies the report's inputs of `run_dir` into `dest_root/name`."""
  run_dir = pathlib.Path(run_dir)
  dest = pathlib.Path(dest_root) / (name or run_dir.name)
  dest.mkdir(parents=True, exist_ok=True)
  for f in ARCHIVED:
    if (run_dir / f).is_file():
      shutil.copyfile(run_dir / f, dest / f)
  return dest


def _rows(run: Run, f: Finding, metric: str = "accuracy"
          ) -> list[dict[str, Any]]:
  table = TRAINED if f.trained else GENERALIZATION
  splits = table.get(run.summary["dataset"], ())
  return [r for r in run.summary["comparisons"]
          if r["metric"] == metric and r["a"] == f.a and r["b"] == f.b
          and r["split"] in splits]


def verdict(rows: Sequence[Mapping[str, Any]]) -> str:
  """The verdict of one finding on one run from its comparison rows."""
  if not rows:
    return "not measured"
  sig = [r for r in rows if r.get("significant")]
  up = [r for r in sig if r["diff"] > 0]
  down = [r for r in sig if r["diff"] < 0]
  if up and down:
    return "mixed"
  if up:
    return "reproduces"
  if down:
    return "does not reproduce"
  return "not resolved at this size"


def evidence(rows: Sequence[Mapping[str, Any]]) -> str:
  """Each row as `id diff [CI], p_Holm`, citing the comparison."""
  digits = 3 if rows and rows[0]["metric"] == "accuracy" else 2
  return "; ".join(
      f"`{results_lib.comparison_id(r)}` {results_lib.fmt(r['diff'], digits)}"
      f" [{results_lib.fmt(r['ci95'][0], 2)},"
      f" {results_lib.fmt(r['ci95'][1], 2)}],"
      f" p_Holm {results_lib.fmt_p(r['p_holm'])}"
      for r in rows)


def findings_table(runs: Sequence[Run]) -> str:
  lines = ["| paper's finding | run | by accuracy | evidence: a − b,"
           " accuracy [95% CI], Holm p | by log-odds margin | evidence: a −"
           " b, margin shift [95% CI], Holm p |",
           "| --- | --- | --- | --- | --- | --- |"]
  for f in FINDINGS:
    for run in runs:
      rows = _rows(run, f)
      if not rows:
        continue
      margin = _rows(run, f, "margin")
      lines.append(f"| {f.claim} | {run.name} | **{verdict(rows)}** |"
                   f" {evidence(rows)} | **{verdict(margin)}** |"
                   f" {evidence(margin)} |")
  return "\n".join(lines)


def coverage_table(runs: Sequence[Run]) -> str:
  have = {(r.summary["dataset"], r.summary["model"]): r for r in runs}
  lines = ["| dataset | " + " | ".join(MODELS) + " |",
           "| --- |" + " --- |" * len(MODELS)]
  for ds in registry.DATASETS:
    if ds == "user":
      continue
    cells = []
    for m in MODELS:
      run = have.get((ds, m))
      cells.append(f"[{run.name}](#{run.name})" if run
                   else "not re-measured")
    lines.append(f"| {ds} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _provenance(run: Run) -> str:
  if not run.provenance:
    return "Provenance: not recorded."
  wall = sum(float(e.get("wall_s") or 0) for e in run.provenance)
  commits = sorted({(e.get("commit") or e.get("version") or "?")[:10]
                    + (" (modified)" if e.get("dirty") else "")
                    for e in run.provenance})
  m = run.provenance[0].get("machine") or {}
  lines = [f"* machine: {m.get('cpus')} CPUs, {m.get('memory_gb')} GB,"
           f" {m.get('devices')}, {m.get('platform')}",
           f"* wall time: {wall / 60:.1f} min over {len(run.provenance)}"
           f" invocation{'s' if len(run.provenance) != 1 else ''}"
           f" ({run.provenance[0].get('started')} to"
           f" {run.provenance[-1].get('finished')}); code: "
           + ", ".join(commits)]
  for e in run.provenance:
    ran = e.get("stages_ran") or []
    lines.append(f"* `{e.get('command')}` ({len(ran)} stages ran,"
                 f" {float(e.get('wall_s') or 0) / 60:.1f} min)")
  return "\n".join(lines)


def run_section(run: Run, figures_rel: str | None = None) -> str:
  s = run.summary
  seeds = s.get("seeds") or []
  parts = [f"### {run.name}", "",
           f"{s['dataset']} with {s['model']}; seeds {seeds};"
           f" {s.get('step_rule', '')}; split mode {s.get('split_mode', '')}.",
           "", _provenance(run), "", results_lib.comparison_table(s), ""]
  for metric in ("accuracy", "margin"):
    table = results_lib.comparisons_markdown(s, metric)
    if table:
      parts += [f"Paired {metric} comparisons (bold: significant after"
                f" Holm's correction over this run's {metric} comparisons):",
                "", table, ""]
  if figures_rel:
    parts += [f"![{run.name}]({figures_rel}/{run.name}/figure.png)", ""]
  return "\n".join(parts)


# How docs/results.md is made (printed in it).
COMMAND = ("python -m ftgen.experiments.report docs/results/runs/*"
           " > docs/results.md")


def _order(run: Run) -> tuple[int, int, str]:
  ds = list(registry.DATASETS)
  s = run.summary
  return (ds.index(s["dataset"]) if s["dataset"] in ds else len(ds),
          MODELS.index(s["model"]) if s["model"] in MODELS else len(MODELS),
          run.name)


def render(runs: Sequence[Run], *, figures_rel: str | None = None) -> str:
  """docs/results.md from `runs` (in dataset, then model order)."""
  runs = sorted(runs, key=_order)
  stats_text = next((r.summary.get("statistics") for r in runs
                     if r.summary.get("statistics")), "")
  parts = [
      "# Results", "",
      "Generated by `ftgen/experiments/report.py` from the run directories"
      " archived under `docs/results/runs/` (their summary.json, config.json"
      f" and provenance.json); do not edit by hand: `{COMMAND}`.", "",
      "Every number below is what the listed command printed on the listed"
      " machine. Cells are accuracy [95% interval] with the standard"
      " deviation over seeds; a verdict cites the comparison rows it rests"
      " on (`a−b/split/metric`). " + stats_text, "",
      "## The paper's findings", "",
      "Each finding is a comparison a − b on the dataset's generalization"
      " splits (the sanity check: its trained splits), judged twice: by"
      " accuracy and by the log-odds margin (best correct minus best wrong"
      " log-likelihood), which resolves smaller effects than accuracy on a"
      " few dozen questions. \"reproduces\": every significant row goes the"
      " paper's way; \"does not reproduce\": every significant row goes"
      " against it; \"not resolved at this size\": no row is significant.",
      "", findings_table(runs), "",
      "## What was re-measured", "",
      "A cell saying \"not re-measured\" has no current number: the"
      " measurements made before the protocol fixes (the start token, the"
      " union of original and augmented data, the leak-free oracle, the"
      " shortcut-free datasets) are not carried over.", "",
      coverage_table(runs), "",
      "## Runs", "",
  ]
  for run in runs:
    parts.append(run_section(run, figures_rel))
  return "\n".join(parts).rstrip() + "\n"


def quickstart_block(run: Run) -> str:
  """The README's Quickstart results: the table the main job prints and the
  verdicts of its comparisons."""
  s = run.summary
  seeds = s.get("seeds") or []
  wall = sum(float(e.get("wall_s") or 0) for e in run.provenance)
  m = (run.provenance[0].get("machine") or {}) if run.provenance else {}
  commit = ((run.provenance[0].get("commit") or "?")[:10] if run.provenance
            else "?")
  lines = [
      BEGIN,
      f"What the main job prints ({len(seeds)} seed"
      f"{'s' if len(seeds) != 1 else ''}; accuracy [95% interval]; measured"
      f" in {wall / 60:.1f} min on {m.get('cpus')} CPUs, code"
      f" {commit}):",
      "", results_lib.comparison_table(s), "",
      "Its comparisons behind the paper's findings, on the dataset's"
      " generalization splits (the sanity check: its trained splits), paired"
      " by question, Holm-corrected within each metric's comparisons:",
      ""]
  for f in FINDINGS:
    rows = _rows(run, f)
    if rows:
      margin = _rows(run, f, "margin")
      lines.append(f"* {f.claim}: by accuracy **{verdict(rows)}**"
                   f" ({evidence(rows)}); by log-odds margin"
                   f" **{verdict(margin)}** ({evidence(margin)})")
  lines.append(END)
  return "\n".join(lines)


def update_readme(readme: pathlib.Path, run: Run) -> bool:
  """Rewrites the README's quickstart block; True if it changed."""
  text = readme.read_text()
  if BEGIN not in text or END not in text:
    raise ValueError(f"{readme} has no {BEGIN} ... {END} block")
  head, rest = text.split(BEGIN, 1)
  _, tail = rest.split(END, 1)
  new = head + quickstart_block(run) + tail
  if new != text:
    readme.write_text(new)
  return new != text


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m ftgen.experiments.report", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("runs", nargs="+", type=pathlib.Path,
                      help="finished experiment workdirs")
  parser.add_argument("--archive", type=pathlib.Path, default=None,
                      help="copy each run's report inputs here first and"
                      " report from the copies")
  parser.add_argument("--figures_rel", default="results/runs",
                      help="figure links, relative to the report")
  parser.add_argument("--readme", type=pathlib.Path, default=None,
                      help="rewrite this README's quickstart block from the"
                      " (single) run instead of printing the report")
  args = parser.parse_args(argv)
  try:
    paths = list(args.runs)
    if args.archive:
      paths = [archive(p, args.archive) for p in paths]
    runs = [load_run(p) for p in paths]
    if args.readme:
      if len(runs) != 1:
        raise ValueError("--readme takes exactly one run")
      changed = update_readme(args.readme, runs[0])
      print(f"{args.readme}: {'updated' if changed else 'unchanged'}",
            file=sys.stderr)
      return 0
  except (OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  sys.stdout.write(render(runs, figures_rel=args.figures_rel))
  return 0


if __name__ == "__main__":
  sys.exit(main())
