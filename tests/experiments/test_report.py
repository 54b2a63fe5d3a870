"""The generated results report (ftgen/experiments/report.py).

The committed docs/results.md and README Quickstart block must be exactly
what the script makes of the archived runs: the report cannot drift from
the outputs it cites.
"""

import json
import pathlib

import pytest

from ftgen.data import records
from ftgen.experiments import report
from ftgen.experiments import results

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARCHIVE = ROOT / "docs" / "results"


def _row(a, b, split, diff, significant, metric="accuracy"):
  return {"a": a, "b": b, "split": split, "metric": metric, "diff": diff,
          "ci95": [diff - 0.1, diff + 0.1], "p": 0.01, "p_holm": 0.02,
          "significant": significant, "n": 24, "clusters": 24,
          "test": "mcnemar_exact"}


def test_verdicts():
  up = _row("icl", "finetune", "reversal", 0.3, True)
  down = _row("icl", "finetune", "reversal", -0.3, True)
  flat = _row("icl", "finetune", "reversal", 0.3, False)
  assert report.verdict([up, flat]) == "reproduces"
  assert report.verdict([down]) == "does not reproduce"
  assert report.verdict([up, down]) == "mixed"
  assert report.verdict([flat]) == "not resolved at this size"
  assert report.verdict([]) == "not measured"


def _run_dir(tmp_path, name="reversals-smollm2-135m"):
  qs = [records.Question(f"r{i}", "reversal", "p", ("a", "b"), 0,
                         meta={"fact_index": i}) for i in range(12)]
  qs += [records.Question(f"p{i}", "rephrase", "p", ("a", "b"), 0,
                          meta={"fact_index": i}) for i in range(12)]
  rows = []
  for cond, right in (("pretrained", 0), ("finetune", 1), ("icl", 12)):
    ids = {q.id for i, q in enumerate(qs) if i < right or q.split ==
           "rephrase" and cond != "pretrained"}
    for q in qs:
      ll = [-1.0, -2.0] if q.id in ids else [-2.0, -1.0]
      rows += results.make_rows(
          [dict(id=q.id, split=q.split, logliks=ll, pred=int(ll[1] > ll[0]),
                correct=q.id in ids)], qs, dataset="reversals",
          model="smollm2-135m", condition=cond, seed=0,
          cluster_key="fact_index")
  d = tmp_path / name
  d.mkdir()
  s = results.summarize(rows, dataset="reversals", model="smollm2-135m")
  (d / "summary.json").write_text(json.dumps(s))
  (d / "provenance.json").write_text(json.dumps([{
      "command": "python launch/run_experiment.py --x", "commit": "abc" * 10,
      "dirty": False, "machine": {"cpus": 2, "memory_gb": 23.5,
                                  "devices": "1 x cpu", "platform": "Linux"},
      "started": "t0", "finished": "t1", "wall_s": 60.0,
      "stages_ran": ["data"]}]))
  return d


def test_render_cites_comparisons_and_lists_what_is_missing(tmp_path):
  run = report.load_run(_run_dir(tmp_path))
  md = report.render([run])
  # ICL gets all 12 reversals right, fine-tuning 1: significant, the
  # paper's way.
  line = next(l for l in md.splitlines()
              if l.startswith("| In-context learning generalizes"))
  assert "**reproduces**" in line
  assert "`icl−finetune/reversal/accuracy` 0.917" in line
  # Judged by the log-odds margin as well (each question's margin moves
  # from -1 to +1: a shift of 2 on the 11 newly right ones).
  assert "`icl−finetune/reversal/margin` 1.83" in line
  assert line.count("**reproduces**") == 2
  assert "| reversals | [reversals-smollm2-135m](#reversals-smollm2-135m) |" \
      " not re-measured |" in md
  assert "| celebrities | not re-measured | not re-measured |" in md
  assert "`python launch/run_experiment.py --x`" in md and "abcabcabca" in md
  assert "±" not in md


def test_readme_block_is_rewritten_in_place(tmp_path):
  run = report.load_run(_run_dir(tmp_path))
  readme = tmp_path / "README.md"
  readme.write_text(f"intro\n{report.BEGIN}\nold\n{report.END}\nrest\n")
  assert report.update_readme(readme, run)
  text = readme.read_text()
  assert text.startswith("intro\n") and text.endswith("\nrest\n")
  assert "| finetune | 0.083 [" in text and "old" not in text
  assert not report.update_readme(readme, run)


def test_cli_errors_name_the_bad_input(tmp_path, capsys):
  assert report.main([str(tmp_path / "nope")]) == 2
  assert "has no summary.json" in capsys.readouterr().err
  old = tmp_path / "old"
  old.mkdir()
  (old / "summary.json").write_text(json.dumps({"dataset": "reversals"}))
  assert report.main([str(old)]) == 2
  assert "predates the comparisons" in capsys.readouterr().err


def _archived_runs():
  return sorted(p for p in (ARCHIVE / "runs").glob("*")
                if (p / "summary.json").is_file())


@pytest.mark.skipif(not _archived_runs(), reason="no archived runs yet")
def test_committed_results_md_is_what_the_script_makes():
  runs = [report.load_run(p) for p in _archived_runs()]
  want = report.render(runs, figures_rel="results/runs")
  assert (ROOT / "docs" / "results.md").read_text() == want, (
      f"docs/results.md is stale: {report.COMMAND}")


@pytest.mark.skipif(not (ARCHIVE / "quickstart" / "summary.json").is_file(),
                    reason="no archived Quickstart run yet")
def test_readme_quickstart_block_is_what_the_script_makes():
  run = report.load_run(ARCHIVE / "quickstart")
  readme = (ROOT / "README.md").read_text()
  assert report.quickstart_block(run) in readme, (
      "README's Quickstart block is stale: python -m"
      " ftgen.experiments.report --readme=README.md docs/results/quickstart")
