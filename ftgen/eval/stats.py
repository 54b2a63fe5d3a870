"""Intervals and tests that fit how the questions were drawn.

Questions of one split are not independent draws: several can share a unit
(a fact, an entity, a category, a person: the dataset's `cluster_key`,
ftgen/data/registry.py), and a seeded condition is measured once per seed.
So every statistic here takes the unit of each value:

* seeds are the inner level: a question's value is its mean over seeds
  (several seeds never add questions), and the seed-to-seed spread of the
  split's accuracy is reported beside it (`seed_spread`);
* questions sharing a cluster are summed before the variance is taken
  (cluster-robust "CR1" standard error, G/(G-1) small-sample factor), so a
  split of 200 questions about 16 categories has 16 units, not 200; with one
  question per cluster it is the usual sample-std / sqrt(n);
* accuracy intervals are Wilson intervals (informative at 0 and 1) at the
  effective sample size the clustered standard error implies (Kish's design
  effect, capped at n);
* paired comparisons take per-question differences between two conditions:
  t intervals with G-1 degrees of freedom; p-values by the exact McNemar test
  when the pairs are independent binary outcomes (one seed, one question per
  cluster), else the clustered paired t test;
* a family of comparisons is corrected by Holm's step-down method.

Distributions come from `scipy.stats`.
"""

from __future__ import annotations

import math
from typing import Hashable, Sequence

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95


def _z(confidence: float) -> float:
  return float(sps.norm.ppf(0.5 + confidence / 2))


def wilson_interval(p: float, n: float, confidence: float = CONFIDENCE
                    ) -> tuple[float, float]:
  """Wilson score interval of a proportion `p` observed over `n` trials.

  `n` may be fractional (an effective sample size) and `p` need not be k/n
  for an integer k (a mean over seeds); for integer k it equals scipy's
  `binomtest(k, n).proportion_ci(method="wilson")`.
  """
  if not n > 0 or not math.isfinite(p):
    return math.nan, math.nan
  z = _z(confidence)
  z2n = z * z / n
  centre = (p + z2n / 2) / (1 + z2n)
  half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
  return max(0.0, centre - half), min(1.0, centre + half)


def cluster_mean_se(values: Sequence[float],
                    clusters: Sequence[Hashable] | None = None
                    ) -> tuple[float, float, int]:
  """(mean, cluster-robust standard error, number of clusters).

  CR1: sqrt(G/(G-1) * sum_g (sum_{i in g} (x_i - mean))^2) / n. Without
  clusters (or one value per cluster) this is sample-std / sqrt(n). The
  standard error is NaN with fewer than two clusters.
  """
  x = np.asarray(values, np.float64)
  n = x.size
  if n == 0:
    return math.nan, math.nan, 0
  if clusters is None:
    clusters = range(n)
  if len(clusters) != n:
    raise ValueError(f"{n} values but {len(clusters)} cluster labels")
  mean = float(x.mean())
  sums: dict[Hashable, float] = {}
  for v, g in zip(x - mean, clusters):
    sums[g] = sums.get(g, 0.0) + float(v)
  num_clusters = len(sums)
  if num_clusters < 2:
    return mean, math.nan, num_clusters
  s = np.asarray(list(sums.values()))
  se = math.sqrt(num_clusters / (num_clusters - 1) * float(np.sum(s * s))) / n
  return mean, se, num_clusters


def effective_n(p: float, se: float, n: int) -> float:
  """Sample size whose binomial standard error equals `se` (at most n).

  Kish's n / design effect: 1 + p(1-p)/se^2, which is exactly n for n
  independent 0/1 values (their CR1 se^2 is p(1-p)/(n-1)). At p in {0, 1}
  (no variance to compare) and for an undefined `se` it is n.
  """
  if not (math.isfinite(se) and se > 0) or p <= 0 or p >= 1:
    return float(n)
  return float(min(n, 1 + p * (1 - p) / (se * se)))


def accuracy_interval(per_question: Sequence[float],
                      clusters: Sequence[Hashable] | None = None,
                      confidence: float = CONFIDENCE) -> dict:
  """{"acc", "stderr", "ci95", "n", "clusters", "n_eff"} of a split.

  `per_question`: each question's correctness averaged over seeds (0..1).
  """
  acc, se, num_clusters = cluster_mean_se(per_question, clusters)
  n = len(per_question)
  n_eff = effective_n(acc, se, n) if n else math.nan
  lo, hi = wilson_interval(acc, n_eff, confidence)
  return {"acc": acc, "stderr": se, "ci95": [lo, hi], "n": n,
          "clusters": num_clusters, "n_eff": n_eff}


def seed_spread(per_seed: dict[int, float]) -> dict:
  """{"seed_accs", "seed_sd", "seed_range"} of one split over seeds (sd and
  range are None with one seed)."""
  vals = [per_seed[s] for s in sorted(per_seed)]
  out = {"seed_accs": {str(s): per_seed[s] for s in sorted(per_seed)}}
  if len(vals) > 1:
    out["seed_sd"] = float(np.std(vals, ddof=1))
    out["seed_range"] = [float(min(vals)), float(max(vals))]
  else:
    out["seed_sd"] = None
    out["seed_range"] = None
  return out


def mcnemar_exact(b: int, c: int) -> float:
  """Two-sided exact (conditional) McNemar p-value from the discordant
  counts: b pairs where only the first is correct, c where only the second.
  """
  if b + c == 0:
    return 1.0
  return float(sps.binomtest(int(b), int(b + c), 0.5).pvalue)


def paired_difference(diffs: Sequence[float],
                      clusters: Sequence[Hashable] | None = None,
                      confidence: float = CONFIDENCE) -> dict:
  """Mean of per-question differences with a clustered t interval and the
  two-sided t test of a zero mean: {"diff", "stderr", "ci95", "p", "df",
  "clusters"}.

  When the standard error is 0 (every cluster moved alike), the t test has
  no variance to use; the p-value is then the exact sign test over clusters
  (1 when nothing moved).
  """
  d = np.asarray(diffs, np.float64)
  mean, se, num_clusters = cluster_mean_se(d, clusters)
  out = {"diff": mean, "stderr": se, "clusters": num_clusters,
         "df": num_clusters - 1}
  if not num_clusters or not math.isfinite(se):
    return dict(out, ci95=[math.nan, math.nan], p=math.nan)
  # Float rounding of identical differences leaves a standard error of
  # ~1e-17, not 0: treat it as none.
  if se <= 1e-12 * max(1.0, abs(mean)):
    if abs(mean) <= 1e-12:
      return dict(out, ci95=[0.0, 0.0], p=1.0)
    return dict(out, ci95=[mean, mean], p=mcnemar_exact(
        num_clusters if mean > 0 else 0, num_clusters if mean < 0 else 0))
  df = num_clusters - 1
  tq = float(sps.t.ppf(0.5 + confidence / 2, df))
  p = float(2 * sps.t.sf(abs(mean / se), df))
  return dict(out, ci95=[mean - tq * se, mean + tq * se], p=p)


def holm(pvalues: Sequence[float]) -> list[float]:
  """Holm's step-down adjusted p-values (NaN stays NaN, not counted)."""
  idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
  m = len(idx)
  out = [math.nan] * len(pvalues)
  running = 0.0
  for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
    running = max(running, min(1.0, (m - rank) * pvalues[i]))
    out[i] = running
  return out
