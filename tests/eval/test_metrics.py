"""Accuracy, standard errors, variants and the lm-eval results layout."""

import math

import numpy as np
import pytest

from ftgen.eval import metrics


def test_mean_stderr_matches_formula():
  x = [1, 0, 1, 1, 0, 1, 1, 1]
  mean, se = metrics.mean_stderr(x)
  p, n = 6 / 8, 8
  assert mean == pytest.approx(p)
  # Sample std with ddof=1 over sqrt(n), as lm-eval's mean_stderr.
  assert se == pytest.approx(
      math.sqrt(p * (1 - p) * n / (n - 1)) / math.sqrt(n))
  assert math.isnan(metrics.mean_stderr([1.0])[1])


def test_variants_and_calibration_change_the_pick():
  logliks = [-10.0, -12.0]
  out = metrics.variant_scores(logliks, num_tokens=[2, 4], num_bytes=[5, 20],
                               neutral=[-5.0, -9.0])
  assert metrics.argmax(out["raw"]) == 0
  assert metrics.argmax(out["per_token"]) == 1  # -5 vs -3
  assert metrics.argmax(out["per_byte"]) == 1  # -2 vs -0.6
  assert metrics.argmax(out["calibrated"]) == 1  # -5 vs -3
  assert "calibrated" not in metrics.variant_scores(logliks, [1, 1], [1, 1],
                                                    None)


def test_margin_with_several_correct_answers():
  scores = [-1.0, -2.0, -0.5, -3.0]
  assert metrics.margin(scores, [1, 2]) == pytest.approx(0.5)  # -0.5 - (-1)
  assert metrics.margin(scores, [1]) == pytest.approx(-1.5)


def _row(split, correct, cal=None):
  row = {"split": split, "correct": correct, "variants": {}}
  if cal is not None:
    row["variants"]["calibrated"] = {"correct": cal}
  return row


def test_summarize_per_split_and_all():
  rows = [_row("a", True, False), _row("a", False, False),
          _row("b", True, True), _row("b", True, True), _row("b", False, True)]
  out = metrics.summarize(rows, {"a": 0.5, "b": 1 / 3})
  assert out["a"]["acc"] == 0.5 and out["a"]["n"] == 2
  assert out["b"]["acc"] == pytest.approx(2 / 3)
  assert out["b"]["acc_calibrated"] == 1.0 and out["a"]["acc_calibrated"] == 0.0
  assert out["all"]["n"] == 5 and out["all"]["acc"] == pytest.approx(0.6)
  # A Wilson interval beside lm-eval's stderr: 3 of 5.
  assert out["all"]["ci95"] == pytest.approx([0.2307, 0.8824], abs=1e-4)
  assert out["all"]["chance"] == pytest.approx((2 * 0.5 + 3 / 3) / 5)
  lm = metrics.lm_eval_results(out, {"a": "t_a", "b": "t_b"}, "t",
                               configs={"t_a": {}, "t_b": {}},
                               original_sizes={"a": 4, "b": 3})
  assert set(lm["results"]) == {"t_a", "t_b", "t"}
  assert lm["results"]["t_b"]["acc,none"] == pytest.approx(2 / 3)
  assert lm["results"]["t_a"]["acc_mutual_info,none"] == 0.0
  assert np.isfinite(lm["results"]["t_a"]["acc_stderr,none"])
  assert lm["n-samples"]["t_b"] == {"original": 3, "effective": 3}
  assert lm["n-samples"]["t_a"] == {"original": 4, "effective": 2}
  # The group: size-weighted mean (= over all questions) and the harness's
  # pooled stderr (not ftgen's stderr of "all").
  group = lm["groups"]["t"]
  assert lm["results"]["t"] == group and lm["group_subtasks"]["t"] == [
      "t_a", "t_b"]
  assert group["acc,none"] == pytest.approx(out["all"]["acc"])
  se = [out["a"]["stderr"], out["b"]["stderr"]]
  pooled = math.sqrt(((2 - 1) * se[0]**2 * 2 + (3 - 1) * se[1]**2 * 3)
                     / (5 - 2) / 5)
  assert group["acc_stderr,none"] == pytest.approx(pooled)
  assert group["acc_stderr,none"] != pytest.approx(out["all"]["stderr"])
  assert group["sample_count"] == {"acc,none": 5, "acc_mutual_info,none": 5}
