"""ftgen/eval/stats.py against textbook cases and scipy's own tests."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from ftgen.eval import stats


@pytest.mark.parametrize("k,n,lo,hi", [
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3.
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_newcombe(k, n, lo, hi):
  got = stats.wilson_interval(k / n, n)
  assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_interval_equals_scipy_and_stays_informative_at_the_ends():
  for k, n in ((0, 24), (24, 24), (7, 24), (3, 11)):
    ci = sps.binomtest(k, n).proportion_ci(method="wilson")
    assert stats.wilson_interval(k / n, n) == pytest.approx(
        (ci.low, ci.high), abs=1e-12)
  lo, hi = stats.wilson_interval(1.0, 24)
  assert hi == 1.0 and 0.8 < lo < 0.9  # Not a zero-width "± 0.000".


def test_mcnemar_exact_matches_fagerland():
  # Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91: the
  # airway hyper-responsiveness example, b = 1, c = 7, exact p = 0.070.
  assert stats.mcnemar_exact(1, 7) == pytest.approx(0.0703125)
  assert stats.mcnemar_exact(7, 1) == pytest.approx(0.0703125)
  assert stats.mcnemar_exact(0, 0) == 1.0
  assert stats.mcnemar_exact(0, 6) == pytest.approx(2 / 2**6)


def test_cluster_standard_error_by_hand():
  # Unclustered: sample std / sqrt(n).
  mean, se, g = stats.cluster_mean_se([1, 1, 0, 0])
  assert (mean, g) == (0.5, 4)
  assert se == pytest.approx(np.std([1, 1, 0, 0], ddof=1) / 2)
  # Two clusters of two identical values: residual sums +1 and -1,
  # sqrt(2/1 * (1 + 1)) / 4 = 0.5, not 0.289.
  mean, se, g = stats.cluster_mean_se([1, 1, 0, 0], ["a", "a", "b", "b"])
  assert (mean, g) == (0.5, 2) and se == pytest.approx(0.5)
  # Negatively correlated within clusters: smaller than unclustered.
  _, se, _ = stats.cluster_mean_se([1, 0, 1, 0], ["a", "a", "b", "b"])
  assert se == pytest.approx(0.0)
  assert math.isnan(stats.cluster_mean_se([1, 0], ["a", "a"])[1])


def test_accuracy_interval_widens_with_clustering():
  values = [1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0]
  flat = stats.accuracy_interval(values)
  # Independent questions: the textbook Wilson interval at n.
  assert flat["n_eff"] == pytest.approx(12)
  assert flat["ci95"] == pytest.approx(
      list(stats.wilson_interval(5 / 12, 12)))
  clustered = stats.accuracy_interval(values, [0, 0, 0, 1, 1, 1, 2, 2, 3, 3,
                                               4, 4])
  assert clustered["clusters"] == 5 and clustered["n_eff"] < 12
  assert (clustered["ci95"][1] - clustered["ci95"][0]
          > flat["ci95"][1] - flat["ci95"][0])


def test_paired_difference_equals_scipys_paired_t_without_clusters():
  d = [1.0, 1.0, 0.0, -1.0, 1.0, 0.0, 1.0, 0.5]
  got = stats.paired_difference(d)
  ref = sps.ttest_1samp(d, 0.0)
  ci = ref.confidence_interval(0.95)
  assert got["p"] == pytest.approx(ref.pvalue)
  assert got["ci95"] == pytest.approx([ci.low, ci.high])
  assert got["df"] == len(d) - 1


def test_paired_difference_without_variance_uses_the_sign_test():
  got = stats.paired_difference([1.0] * 6)
  assert got["p"] == pytest.approx(2 / 2**6) and got["ci95"] == [1.0, 1.0]
  assert stats.paired_difference([0.0] * 6)["p"] == 1.0
  # 24 identical differences of 0.7 leave float residuals of 1e-16 and a
  # standard error of ~1e-17, not 0: still the sign test, not p = 0.
  assert stats.cluster_mean_se([0.7] * 24)[1] > 0
  got = stats.paired_difference([0.7] * 24)
  assert got["p"] == pytest.approx(2 / 2**24)


def test_holm_by_hand():
  # Sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x, 1x, made monotone.
  assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx(
      [0.03, 0.06, 0.06, 0.02])
  out = stats.holm([0.5, math.nan, 0.01])
  assert out[0] == pytest.approx(0.5) and math.isnan(out[1])
  assert out[2] == pytest.approx(0.02)


def test_seed_spread():
  s = stats.seed_spread({2: 0.5, 0: 0.25, 1: 0.75})
  assert list(s["seed_accs"]) == ["0", "1", "2"]
  assert s["seed_sd"] == pytest.approx(0.25) and s["seed_range"] == [0.25,
                                                                     0.75]
  assert stats.seed_spread({0: 0.5})["seed_sd"] is None
