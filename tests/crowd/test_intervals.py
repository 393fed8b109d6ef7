"""crowdkit.crowd.intervals: the cluster bootstrap over tracks, "too few", bands along a threshold sweep."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdkit.common.metrics import Confusion, bootstrap_ci
from crowdkit.crowd import intervals
from crowdkit.crowd.threshold import threshold_sweep


def two_tracks_of_identical_faces(size: int = 60):
    """Track 0: the subject, found in every frame; track 1: the subject, missed by the threshold in every frame."""
    subject = np.ones(2 * size, dtype=bool)
    decision = np.r_[np.ones(size, dtype=bool), np.zeros(size, dtype=bool)]
    tracks = np.r_[np.zeros(size, dtype=int), np.ones(size, dtype=int)]
    return subject, decision, tracks


def test_resampling_tracks_is_wider_than_resampling_faces():
    subject, decision, tracks = two_tracks_of_identical_faces()
    faces = intervals.face_clusters(subject, decision, tracks)
    low, high = intervals.rate_intervals(faces, np.zeros((0, 2)), seed=0)["recall"]
    outcomes = pd.DataFrame({"outcome": np.where(decision, "TP", "FN")})
    naive = bootstrap_ci(outcomes, lambda t: Confusion.from_outcomes(t.outcome).recall, n=300, seed=0)
    assert naive.estimate == 0.5 and (low, high) == (0.0, 1.0)  # two tracks: all, half or none of the faces found
    assert high - low > 2 * (naive.high - naive.low)  # 120 faces pretend to be far more information than 2 tracks


def test_face_clusters_count_each_track_and_the_missed_faces():
    clusters = intervals.face_clusters([True, True, False, False], [True, False, True, False], [3, 3, 7, 7],
                                       missed_tracks=[0, 0, 1])
    assert clusters.tolist() == [[1, 0, 0, 1, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 2], [0, 0, 0, 0, 1]]
    totals = intervals.face_rates(clusters.sum(axis=0))
    assert totals["recall"] == 0.5 and totals["strict_recall"] == pytest.approx(1 / 5)


def synthetic(seed: int = 3, n_tracks: int = 40):
    rng = np.random.default_rng(seed)
    tracks = rng.integers(0, n_tracks, 600)
    subject = tracks < 8
    distances = np.where(subject, rng.normal(0.05, 0.02, tracks.size), rng.normal(0.1, 0.02, tracks.size))
    return subject, distances, tracks


def test_intervals_contain_the_estimate_and_are_reproducible():
    subject, distances, tracks = synthetic()
    faces = intervals.face_clusters(subject, distances <= 0.07, tracks, missed_tracks=[100, 100, 101])
    people = np.array([[10, 8], [12, 12], [9, 3], [20, 15], [7, 7]])
    found = intervals.rate_intervals(faces, people, seed=5)
    rates = intervals.face_rates(faces.sum(axis=0))
    rates["detection_rate"] = 45 / 58
    for rate, (low, high) in found.items():
        assert low <= rates[rate] <= high, rate
    assert intervals.rate_intervals(faces, people, seed=5) == found  # seeded
    assert intervals.rate_intervals(faces, people, seed=6) != found


def test_undefined_stays_undefined_and_few_faces_read_too_few():
    faces = intervals.face_clusters([True, True, True, False], [True, True, True, False], [0, 0, 1, 2])
    found = intervals.rate_intervals(faces, np.zeros((0, 2)), seed=0)
    assert np.isnan(found["detection_rate"]).all()  # no annotated face: nothing to resample
    table = pd.DataFrame({"TP": [3, 0, 40], "FP": [0, 0, 10], "TN": [1, 5, 50], "FN": [0, 0, 0],
                          "precision": [1.0, np.nan, 0.8], "precision_low": [1.0, np.nan, 0.7],
                          "precision_high": [1.0, np.nan, 0.9]})
    assert intervals.interval_text(table, "precision").tolist() == [
        "1.000 [too few]", "undefined", "0.800 [0.700, 0.900]"]  # 3 TP behind a precision of 1: too few
    assert intervals.interval_text(table.drop(columns=["precision_low", "precision_high"]), "precision").tolist() == [
        "1.000", "undefined", "0.800"]  # a table saved before intervals: the rate alone


def test_the_sweep_band_surrounds_the_sweep():
    subject, distances, tracks = synthetic()
    band = intervals.sweep_band(subject, distances, tracks, seed=0, points=50)
    assert len(band) == 51
    sweep = threshold_sweep(subject, distances, band["threshold"])
    for rate in ("precision", "recall", "f1", "fpr"):
        assert np.allclose(band[rate], sweep[rate], equal_nan=True), rate
        defined = band[f"{rate}_low"].notna()
        assert (band.loc[defined, f"{rate}_low"] <= band.loc[defined, rate] + 1e-12).all()
        assert (band.loc[defined, rate] <= band.loc[defined, f"{rate}_high"] + 1e-12).all()
    pd.testing.assert_frame_equal(intervals.sweep_band(subject, distances, tracks, seed=0, points=50), band)
    assert intervals.sweep_band([], [], [], seed=0).empty


def test_a_rate_resting_on_one_track_has_no_interval():
    """Eight subject faces of one track: resampling tracks gives the same eight back, so no interval is claimed."""
    faces = np.array([[4, 0, 0, 4, 0],   # the subject's one track: 4 found, 4 missed by the threshold
                      [0, 1, 30, 0, 0],  # two impostor tracks
                      [0, 0, 25, 0, 0]])
    people = np.array([[8, 8], [31, 31], [25, 25]])
    found = intervals.rate_intervals(faces, people, seed=0)
    assert np.isnan(found["recall"]).all()  # the denominator (TP + FN) comes from a single track
    assert np.isfinite(found["accuracy"]).all() and np.isfinite(found["specificity"]).all()
