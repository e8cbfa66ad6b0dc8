"""metrics.py: the calibration metrics (ECE, Brier, reliability bins) against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from sertool.metrics import (bootstrap_ci, brier_score, calibration_scores, concordance, expected_calibration_error,
                             regression_bootstrap_ci, regression_scores, reliability_bins)

# 4 items, 2 classes: confidences 0.9 (right), 0.8 (wrong), 0.6 (right), 0.55 (right)
PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.55, 0.45]])
TRUE = np.array([0, 0, 1, 0])


def test_reliability_bins_put_each_confidence_in_its_equal_width_bin():
    table = reliability_bins(PROBS, TRUE, bins=5)  # bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]
    np.testing.assert_allclose(table["edges"], [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert table["count"].tolist() == [0, 0, 2, 1, 1]  # 0.6 and 0.55 share (.4, .6]; 0.8 is in (.6, .8]
    np.testing.assert_allclose(table["confidence"][2:], [0.575, 0.8, 0.9])
    np.testing.assert_allclose(table["accuracy"][2:], [1.0, 0.0, 1.0])
    assert np.isnan(table["confidence"][:2]).all() and np.isnan(table["accuracy"][:2]).all()


def test_ece_is_the_count_weighted_gap_between_accuracy_and_confidence():
    # bins of 0.2: 2/4 * |1 - 0.575| + 1/4 * |0 - 0.8| + 1/4 * |1 - 0.9| = 0.2125 + 0.2 + 0.025
    assert expected_calibration_error(PROBS, TRUE, bins=5) == pytest.approx(0.4375)
    # one bin: |accuracy 0.75 - mean confidence 0.7125|
    assert expected_calibration_error(PROBS, TRUE, bins=1) == pytest.approx(0.0375)
    # a model right exactly as often as it says is calibrated
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    assert np.isnan(expected_calibration_error(np.zeros((0, 3)), np.zeros(0, int)))


def test_confidence_one_and_bin_edges_land_in_the_lower_bin():
    table = reliability_bins(np.array([[1.0, 0.0], [0.5, 0.5], [0.3, 0.7]]), np.array([0, 1, 1]), bins=10)
    assert table["count"][9] == 1 and table["count"][4] == 1 and table["count"][6] == 1  # 1.0, 0.5, 0.7


def test_brier_score_by_hand():
    # (0.1^2 * 2) + (0.8^2 * 2) + (0.4^2 * 2) + (0.45^2 * 2), over 4
    expected = (0.02 + 1.28 + 0.32 + 0.405) / 4
    assert brier_score(PROBS, TRUE) == pytest.approx(expected)
    assert brier_score(np.eye(3), np.arange(3)) == 0.0
    assert brier_score(np.eye(3), np.array([1, 2, 0])) == pytest.approx(2.0)
    assert calibration_scores(PROBS, TRUE, bins=5) == {"ECE": pytest.approx(0.4375), "Brier": pytest.approx(expected)}


def test_bootstrap_gives_calibration_intervals_without_changing_the_others():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=200)
    true = rng.integers(0, 3, 200)
    plain = bootstrap_ci(true, probs.argmax(1), 3, resamples=200)
    both = bootstrap_ci(true, probs.argmax(1), 3, resamples=200, probs=probs)
    assert set(plain) == {"WA", "UA", "macro_F1"} and set(both) == set(plain) | {"ECE", "Brier"}
    assert all(both[k] == plain[k] for k in plain)
    for key in ("ECE", "Brier"):
        low, high = both[key]
        assert low < calibration_scores(probs, true)[key] < high


def test_ccc_pearson_mae_rmse_by_hand():
    # true mean 2.5, var 1.25; pred mean 3.25, var 1.1875; cov 1.125
    # CCC = 2 * 1.125 / (1.25 + 1.1875 + 0.75 ** 2) = 2.25 / 3.0 = 0.75
    s = regression_scores(np.array([1.0, 2, 3, 4]), np.array([2.0, 3, 3, 5]))
    assert s["CCC"] == pytest.approx(0.75)
    assert s["Pearson"] == pytest.approx(1.125 / np.sqrt(1.25 * 1.1875))
    assert s["MAE"] == pytest.approx(0.75)
    assert s["RMSE"] == pytest.approx(np.sqrt(0.75))


def test_ccc_punishes_shift_and_scale_that_pearson_ignores():
    true = np.linspace(0, 2, 50)
    assert concordance(true, true) == pytest.approx(1.0)
    assert regression_scores(true, 3 * true + 5)["Pearson"] == pytest.approx(1.0)
    assert concordance(true, 3 * true + 5) < 0.2
    centred = true - true.mean()
    assert concordance(centred, -centred) == pytest.approx(-1.0)
    assert np.isnan(concordance(np.ones(3), np.ones(3)))


def test_regression_intervals_hold_the_point_estimate():
    rng = np.random.default_rng(0)
    true = rng.normal(size=200)
    pred = true + rng.normal(scale=0.5, size=200)
    point, ci = regression_scores(true, pred), regression_bootstrap_ci(true, pred, resamples=200)
    for key in ("CCC", "Pearson", "MAE", "RMSE"):
        assert ci[key][0] < point[key] < ci[key][1]
