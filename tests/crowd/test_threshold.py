"""crowdkit.crowd.threshold: mean + kσ, sweeps against brute force, what a new threshold flips, the KDE never crashes."""
from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from crowdkit.common.metrics import Confusion, UndefinedMetricWarning
from crowdkit.crowd.threshold import mean_plus_k_sigma, plot_distance_kde, threshold_sweep, what_changes


def test_mean_plus_k_sigma():
    d = [0.2, 0.4, 0.6]
    assert mean_plus_k_sigma(d) == pytest.approx(0.4 + 2 * np.std(d))
    assert mean_plus_k_sigma(d, k=1, ddof=1) == pytest.approx(0.4 + 0.2)
    assert mean_plus_k_sigma([0.5, np.nan]) == 0.5
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(mean_plus_k_sigma([]))


def test_sweep_matches_brute_force():
    rng = np.random.default_rng(5)
    labels = rng.random(80) < 0.3
    distances = np.where(labels, rng.normal(0.4, 0.1, 80), rng.normal(0.8, 0.1, 80)).round(2)
    sweep = threshold_sweep(labels, distances)
    assert sweep.threshold.is_monotonic_increasing and sweep.iloc[0][["TP", "FP"]].tolist() == [0, 0]
    assert sweep.iloc[-1][["FN", "TN"]].tolist() == [0, 0]
    for _, row in sweep.sample(10, random_state=0).iterrows():
        expected = Confusion.from_labels(labels, distances <= row.threshold)
        assert (row.TP, row.FP, row.TN, row.FN) == (expected.tp, expected.fp, expected.tn, expected.fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert math.isnan(sweep.iloc[0].precision)  # nothing accepted: undefined, not 0


def test_sweep_given_thresholds():
    sweep = threshold_sweep([True, False], [0.3, 0.7], [0.3, 0.5, 0.7])
    assert sweep[["TP", "FP", "TN", "FN"]].values.tolist() == [[1, 0, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0]]
    assert sweep.precision.tolist() == [1.0, 1.0, 0.5]


def test_what_changes():
    outcomes = pd.DataFrame({
        "distance": [0.30, 0.60, 0.70, 0.50, 0.66, 0.90],
        "outcome": ["TP", "TP", "FN", "FP", "TN", "TN"],
    })
    change = what_changes(outcomes, old=0.65, new=0.75)
    assert change.before == Confusion(tp=2, fp=1, tn=2, fn=1)
    assert change.after == Confusion(tp=3, fp=2, tn=1, fn=0)
    assert (change.to_positive, change.to_negative, change.flipped) == (2, 0, 2)
    assert change.as_table().loc["new", "TP"] == 3
    stricter = what_changes(outcomes, old=0.65, new=0.4)
    assert (stricter.to_positive, stricter.to_negative) == (0, 2)


@pytest.mark.parametrize("tp, fp", [
    ([0.2, 0.3, 0.35, 0.5], [0.6, 0.7, 0.75]),
    ([0.3], [0.6, 0.7]),      # one TP: a rug and a note
    ([], [0.6, 0.6, 0.6]),    # no TP; FP all equal (singular)
    ([], []),
])
def test_kde_never_crashes(tp, fp):
    import matplotlib.pyplot as plt

    ax = plot_distance_kde(tp, fp, thresholds={"default": 0.65, "mean + 2σ": mean_plus_k_sigma(tp) if len(tp) else None})
    assert ax.get_xlabel() == "distance to the query photo"
    labels = ax.get_legend_handles_labels()[1]
    assert "default = 0.650" in labels
    if len(tp) < 2:
        assert any("true positives" in t.get_text() for t in ax.texts)
    plt.close(ax.figure)


def test_study_retuning_uses_the_sample_sigma_rounded_and_checks_the_overlap():
    from crowdkit.crowd.threshold import study_retuning

    tp, fp = [0.40, 0.50, 0.60], [0.55, 0.70]
    study = study_retuning(tp, fp)
    assert study.tp_std == round(float(np.std(tp, ddof=1)), 4) == 0.1
    assert study.threshold == 0.7 and study.fp_mean == 0.625 and study.overlap is True
    assert (study.tp_max, study.fp_min) == (0.6, 0.55)
    one = study_retuning([0.4], [])
    assert math.isnan(one.threshold) and one.overlap is None
