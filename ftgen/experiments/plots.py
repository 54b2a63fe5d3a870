"""Bar figure of one experiment, in the style of the paper's figures.

Test splits along x; within each split one bar per condition (same colour
for a condition across splits), 95% interval bars (Wilson, clustered
effective n; ftgen/eval/stats.py), a dashed line at the split's chance level,
and marks over a bar whose accuracy differs significantly (Holm) from plain
fine-tuning (*) or from ICL (†) on that split (summary["comparisons"]).
Written as PNG and SVG with the Agg backend (no
display needed: Colab, CI, TPU VMs).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from etils import epath

from ftgen.data import io as data_io
from ftgen.data import workdir as workdir_lib

# Colours per condition: plain fine-tuning grey, ICL/retrieval blues,
# augmented fine-tuning greens/oranges (paper-like grouping).
COLORS = {
    "pretrained": "#b0b0b0",
    "finetune": "#6b6b6b",
    "icl": "#1f77b4",
    "retrieval": "#7fb2e5",
    "finetune_aug_local": "#ffbb78",
    "finetune_aug_global": "#ff7f0e",
    "finetune_aug": "#2ca02c",
    "finetune_aug_oracle": "#9467bd",
    "finetune_compute_control": "#3b3b3b",
}
LABELS = {
    "pretrained": "pretrained",
    "finetune": "fine-tune",
    "icl": "ICL (all docs)",
    "retrieval": "ICL (retrieval)",
    "finetune_aug_local": "FT + local aug.",
    "finetune_aug_global": "FT + global aug.",
    "finetune_aug": "FT + aug. (both)",
    "finetune_aug_oracle": "FT + oracle aug.",
    "finetune_compute_control": "fine-tune (matched compute)",
}
_FALLBACK = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728")


def _num(x: Any) -> float:
  return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else 0.0


def _label(cond: str, summary: Mapping[str, Any]) -> str:
  k = summary.get("icl_subsample")
  if cond == "icl" and isinstance(k, int) and k > 1:
    return f"ICL (1/{k} of docs)"  # The whole set did not fit the context.
  return LABELS.get(cond, cond)


# Marks of significant accuracy comparisons, by the compared condition.
MARKS = {"finetune": "*", "icl": "†"}


def _marks(summary: Mapping[str, Any]) -> dict[tuple[str, str], str]:
  """(condition, split) -> the marks of its significant accuracy
  comparisons against `MARKS`' conditions."""
  out: dict[tuple[str, str], str] = {}
  for r in summary.get("comparisons") or []:
    if (r["metric"] == "accuracy" and r.get("significant")
        and r["b"] in MARKS):
      key = (r["a"], r["split"])
      out[key] = out.get(key, "") + MARKS[r["b"]]
  return out


def _err(e: Mapping[str, Any]) -> tuple[float, float]:
  """(below, above) the bar: the 95% interval, else one standard error."""
  acc = _num(e["acc"])
  ci = e.get("ci95")
  if ci and all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
    return max(acc - ci[0], 0.0), max(ci[1] - acc, 0.0)
  se = _num(e.get("stderr"))
  return se, se


def plot_summary(summary: Mapping[str, Any], path_stem: epath.PathLike
                 ) -> dict[str, workdir_lib.AnyPath]:
  """Draws summary["conditions"] and writes `path_stem`.png and .svg."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib import patches  # pylint: disable=g-import-not-at-top

  conds = summary["conditions"]
  names = list(conds)
  splits = list(summary.get("splits") or
                dict.fromkeys(s for c in conds.values() for s in c))
  n_c = max(len(names), 1)
  width = 0.8 / n_c
  fig_w = max(5.0, 1.0 + len(splits) * (0.45 * n_c + 0.6))
  fig, ax = plt.subplots(figsize=(fig_w, 4.2), dpi=120)
  # Legend entries are drawn explicitly: a condition that is invalid in
  # every split has no bar to take its colour from.
  handles = []
  marks = _marks(summary)
  for j, cond in enumerate(names):
    color = COLORS.get(cond, _FALLBACK[j % len(_FALLBACK)])
    xs, ys, lows, highs = [], [], [], []
    invalid = False
    for i, s in enumerate(splits):
      e = conds[cond].get(s)
      if e is None:
        continue
      if e.get("invalid"):
        # No bar (a 0 would read as a result): a mark where it would stand
        # (docs/design.md#reliability).
        invalid = True
        ax.text(i - 0.4 + width * (j + 0.5), 0.02, "invalid",
                rotation=90, ha="center", va="bottom", fontsize=7,
                color=color)
        continue
      xs.append(i - 0.4 + width * (j + 0.5))
      ys.append(_num(e["acc"]))
      below, above = _err(e)
      lows.append(below)
      highs.append(above)
      if (cond, s) in marks:
        ax.text(xs[-1], min(ys[-1] + above + 0.01, 1.0), marks[(cond, s)],
                ha="center", va="bottom", fontsize=8)
    ax.bar(xs, ys, width * 0.92, yerr=[lows, highs], color=color,
           edgecolor="black",
           linewidth=0.5, capsize=2, error_kw=dict(elinewidth=0.8))
    handles.append(patches.Patch(
        facecolor=color, edgecolor="black", linewidth=0.5,
        label=_label(cond, summary) + (" (invalid)" if invalid else "")))
  for i, s in enumerate(splits):
    chances = [c[s]["chance"] for c in conds.values()
               if s in c and c[s].get("chance") is not None]
    if chances:
      line = ax.hlines(_num(chances[0]), i - 0.45, i + 0.45, colors="black",
                       linestyles="dashed", linewidth=1.0, label="chance")
      if i == 0:
        handles.insert(0, line)
  # The heuristics the task itself lets beat chance (ftgen/data/validity.py):
  # what a no-reasoning rule scores, so a bar is read against it.
  styles = ("dotted", (0, (5, 2, 1, 2)), (0, (1, 3)))
  for k, (name, accs) in enumerate((summary.get("baselines") or {}).items()):
    drawn = [ax.hlines(_num(accs[s]), i - 0.45, i + 0.45, colors="0.35",
                       linestyles=styles[k % len(styles)], linewidth=1.0,
                       label=f"heuristic: {name}")
             for i, s in enumerate(splits) if s in accs]
    if drawn:
      handles.insert(1 + k, drawn[0])
  ax.set_xticks(range(len(splits)))
  ax.set_xticklabels(splits)
  ax.set_xlim(-0.55, len(splits) - 0.45)
  ax.set_ylim(0, 1.08)
  ax.set_ylabel("accuracy (95% interval)")
  if marks:
    ax.text(1.01, -0.02, "* differs from fine-tune, † from ICL\n(paired,"
            " Holm-corrected p < 0.05)", transform=ax.transAxes, fontsize=7,
            va="top")
  ax.spines[["top", "right"]].set_visible(False)
  ax.set_title(f"{summary.get('dataset', '')} — {summary.get('model', '')}")
  ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
            frameon=False, fontsize=8)
  fig.tight_layout()
  stem = workdir_lib.as_path(path_stem)  # Local or gs://.
  stem.parent.mkdir(parents=True, exist_ok=True)
  out = {}
  for ext in ("png", "svg"):
    path = stem.with_suffix(f".{ext}")
    with data_io.atomic_path(path) as tmp:
      fig.savefig(tmp, format=ext, bbox_inches="tight")
    out[ext] = path
  plt.close(fig)
  return out
