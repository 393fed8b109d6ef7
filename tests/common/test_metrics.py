"""crowdkit.common.metrics: undefined rates stay undefined; curves agree with scikit-learn; EER; bootstrap."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from crowdkit.common.metrics import (Confusion, UndefinedMetricWarning, bootstrap_ci, cluster_bootstrap_counts,
                                     cluster_resample_weights, equal_error_rate, format_interval, format_rate,
                                     percentile_interval, pr_points, rate_array, roc_points)


def test_rates():
    c = Confusion(tp=8, fp=2, tn=85, fn=5)
    assert c.precision == pytest.approx(0.8)
    assert c.recall == pytest.approx(8 / 13)
    assert c.f1 == pytest.approx(2 * 0.8 * (8 / 13) / (0.8 + 8 / 13))
    assert c.accuracy == pytest.approx(0.93)
    assert c.specificity == pytest.approx(85 / 87)
    assert (c.positives, c.negatives, c.predicted_positives, c.predicted_negatives, c.total) == (13, 87, 10, 90, 100)


def test_agrees_with_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(1)
    y_true, y_pred = rng.random(200) < 0.3, rng.random(200) < 0.4
    c = Confusion.from_labels(y_true, y_pred)
    assert c.precision == pytest.approx(precision_score(y_true, y_pred))
    assert c.recall == pytest.approx(recall_score(y_true, y_pred))
    assert c.f1 == pytest.approx(f1_score(y_true, y_pred))
    assert c.accuracy == pytest.approx(accuracy_score(y_true, y_pred))


def test_no_predicted_positive_is_undefined_not_zero():
    c = Confusion(tp=0, fp=0, tn=50, fn=3)
    with pytest.warns(UndefinedMetricWarning, match="precision"):
        assert math.isnan(c.precision)
    assert c.recall == 0.0  # defined: 0 of 3 found
    assert c.f1 == 0.0


def test_no_positives_at_all():
    c = Confusion(tn=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert math.isnan(c.precision) and math.isnan(c.recall) and math.isnan(c.f1)
    assert c.accuracy == 1.0
    row = c.as_row()  # no warning from a table row
    assert math.isnan(row["precision"]) and row["TN"] == 10
    assert format_rate(row["precision"]) == "undefined" and format_rate(0.5) == "0.500"


def test_empty_confusion():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert math.isnan(Confusion().accuracy) and math.isnan(Confusion().specificity)


def test_from_outcomes_and_add():
    c = Confusion.from_outcomes(["TP", "TP", "FN", "TN", "FP", "TN"])
    assert c == Confusion(2, 1, 2, 1)
    assert c + Confusion(1, 0, 0, 0) == Confusion(3, 1, 2, 1)
    with pytest.raises(ValueError, match="unknown outcome"):
        Confusion.from_outcomes(["TP", "maybe"])
    with pytest.raises(ValueError):
        Confusion(tp=-1)


@pytest.fixture()
def separable():
    rng = np.random.default_rng(0)
    same = rng.normal(0.3, 0.08, 60)
    diff = rng.normal(0.8, 0.1, 140)
    labels = np.r_[np.ones(60, bool), np.zeros(140, bool)]
    return labels, np.r_[same, diff]


def test_roc_from_distances(separable):
    from sklearn.metrics import roc_auc_score

    labels, distances = separable
    roc = roc_points(labels, distances=distances)
    assert list(roc.columns) == ["fpr", "tpr", "threshold"]
    assert roc.attrs["auc"] == pytest.approx(roc_auc_score(labels, -distances))
    assert roc["fpr"].is_monotonic_increasing and roc["tpr"].is_monotonic_increasing
    # each row's threshold is a distance: accepting distance <= threshold gives that row's rates
    for _, row in roc.iloc[1:].iterrows():
        accept = distances <= row.threshold
        assert accept[labels].mean() == pytest.approx(row.tpr)
        assert accept[~labels].mean() == pytest.approx(row.fpr)


def test_pr_points(separable):
    labels, distances = separable
    pr = pr_points(labels, distances=distances)
    assert pr["recall"].iloc[-1] == 0 and math.isnan(pr["threshold"].iloc[-1])
    assert 0.9 < pr.attrs["average_precision"] <= 1
    with pytest.raises(ValueError, match="exactly one"):
        pr_points(labels)


def test_equal_error_rate(separable):
    labels, distances = separable
    eer = equal_error_rate(labels, distances)
    accept = distances <= eer.threshold
    fpr, fnr = accept[~labels].mean(), 1 - accept[labels].mean()
    assert 0 <= eer.rate < 0.1
    assert abs(fpr - fnr) <= 0.03 and abs(eer.rate - (fpr + fnr) / 2) <= 0.03


def test_eer_perfect_and_hand_computed():
    labels = np.array([1, 1, 0, 0], bool)
    eer = equal_error_rate(labels, np.array([0.1, 0.2, 0.8, 0.9]))
    assert eer.rate == 0.0 and 0.2 <= eer.threshold < 0.8
    # positives at 0.1, 0.7 and negatives at 0.4, 0.9: accepting distance <= 0.4 errs once each way
    eer = equal_error_rate(labels, np.array([0.1, 0.7, 0.4, 0.9]))
    assert eer.rate == pytest.approx(0.5)


def test_one_class_curves_are_undefined():
    with pytest.warns(UndefinedMetricWarning):
        roc = roc_points([True, True], distances=[0.1, 0.2])
    assert roc.empty and math.isnan(roc.attrs["auc"])
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(equal_error_rate([False], [0.3]).rate)


def test_bootstrap_ci_array_and_frame():
    values = np.random.default_rng(3).normal(5, 1, 400)
    interval = bootstrap_ci(values, n=300, seed=1)
    assert interval.low < 5 < interval.high and interval.estimate == pytest.approx(values.mean())
    assert bootstrap_ci(values, n=300, seed=1) == interval  # seeded
    table = pd.DataFrame({"outcome": ["TP"] * 30 + ["FP"] * 10 + ["TN"] * 50})
    precision = bootstrap_ci(table, lambda t: Confusion.from_outcomes(t.outcome).precision, n=200)
    assert precision.estimate == pytest.approx(0.75) and precision.low < 0.75 < precision.high
    assert math.isnan(bootstrap_ci([], n=10).estimate)


def test_cluster_bootstrap_keeps_clusters_whole_and_is_seeded():
    weights = cluster_resample_weights(4, n=50, seed=2)
    assert weights.shape == (50, 4) and (weights.sum(axis=1) == 4).all() and (weights >= 0).all()
    assert (cluster_resample_weights(4, n=50, seed=2) == weights).all()
    clusters = np.array([[3, 0], [0, 5], [1, 1]])
    totals = cluster_bootstrap_counts(clusters, n=200, seed=0)
    assert totals.shape == (200, 2)
    assert (totals == cluster_resample_weights(3, n=200, seed=0) @ clusters).all()
    assert cluster_bootstrap_counts(np.zeros((0, 4)), n=3).tolist() == [[0.0] * 4] * 3  # no cluster: zero totals
    with pytest.raises(ValueError, match="2-D"):
        cluster_bootstrap_counts([1, 2, 3])


def test_percentile_interval_rate_array_and_format_interval():
    assert percentile_interval([0.0, 1.0, 2.0, 3.0, 4.0, np.nan], level=0.5) == (1.0, 3.0)
    assert all(math.isnan(v) for v in percentile_interval([np.nan, np.nan]))
    assert np.allclose(rate_array([1, 2, 0], [2, 0, 0]), [0.5, np.nan, np.nan], equal_nan=True)
    assert format_interval(0.75, 0.52, 0.91) == "0.750 [0.520, 0.910]"
    assert format_interval(36.4, 20.04, 50.1, digits=1) == "36.4 [20.0, 50.1]"
    assert format_interval(1.0, 1.0, 1.0, support=4) == "1.000 [too few]"  # fewer than 5 faces behind it
    assert format_interval(0.5, math.nan, math.nan, support=50) == "0.500 [too few]"  # no resample defined it
    assert format_interval(math.nan, 0.1, 0.2, support=50) == "undefined"  # undefined stays undefined


def test_performance_table_display():
    from crowdkit.common.metrics import performance_table

    table = performance_table({"normal": Confusion(5, 1, 90, 4), "mask2": Confusion(0, 0, 80, 7)}, display=True)
    assert table.loc["normal", "precision"] == "0.833"
    assert table.loc["mask2", "precision"] == "undefined" and table.loc["mask2", "recall"] == "0.000"
    assert table.loc["mask2", "TN"] == 80
    assert performance_table({}).empty
