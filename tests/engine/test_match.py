"""Distances and nearest-query search against plain per-pair formulas."""
from __future__ import annotations

import numpy as np
import pytest

from crowdkit.common.exceptions import ConfigError
from crowdkit.engine.match import (DISTANCE_RANGES, METRICS, Match, check_threshold, match, nearest,
                                   pairwise_distances)


def _reference(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    if metric == "cosine":
        return 1.0 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
    if metric == "euclidean_l2":
        a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(np.linalg.norm(a - b))


@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_matches_per_pair_formula(metric):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 128)).astype(np.float32)
    b = rng.normal(size=(7, 128)).astype(np.float32) * 3.0
    d = pairwise_distances(a, b, metric=metric)
    assert d.shape == (5, 7)
    expected = np.array([[_reference(x.astype(np.float64), y.astype(np.float64), metric) for y in b] for x in a])
    np.testing.assert_allclose(d, expected, atol=1e-9)
    assert (d >= 0).all()


@pytest.mark.parametrize("metric", METRICS)
def test_identical_vectors_are_at_distance_zero(metric):
    x = np.random.default_rng(1).normal(size=(3, 16))
    d = pairwise_distances(x, x, metric=metric)
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-6)


def test_l2_metrics_ignore_scale_but_euclidean_does_not():
    x = np.array([[1.0, 2.0, 3.0]])
    assert pairwise_distances(x, 10 * x, metric="cosine")[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert pairwise_distances(x, 10 * x, metric="euclidean_l2")[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert pairwise_distances(x, 10 * x, metric="euclidean")[0, 0] == pytest.approx(9 * np.linalg.norm(x))


def test_euclidean_l2_is_sqrt_two_cosine():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 8)), rng.normal(size=(6, 8))
    np.testing.assert_allclose(
        pairwise_distances(a, b, metric="euclidean_l2"),
        np.sqrt(2 * pairwise_distances(a, b, metric="cosine")),
        atol=1e-9,
    )


def test_nearest_takes_the_closest_query_photo():
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    gallery = np.array([[0.1, 1.0], [1.0, 0.05], [-1.0, -1.0]])
    distances, closest = nearest(queries, gallery, metric="cosine")
    assert closest.tolist() == [1, 0, 0]
    full = pairwise_distances(queries, gallery, metric="cosine")
    np.testing.assert_allclose(distances, full.min(axis=0))


def test_nearest_with_an_empty_gallery_returns_empty_arrays():
    distances, closest = nearest(np.ones((1, 4)), np.zeros((0, 4)), metric="euclidean")
    assert distances.shape == (0,) and closest.shape == (0,)


def test_match_decisions_use_the_threshold_inclusively():
    queries = np.array([[3.0, 4.0]])
    gallery = np.array([[3.0, 4.0], [3.0, 9.0], [3.0, 14.0]])
    matches = match(queries, gallery, metric="euclidean", threshold=5.0)
    assert [m.distance for m in matches] == [0.0, 5.0, 10.0]
    assert [m.decision for m in matches] == [True, True, False]
    assert isinstance(matches[0], Match)


def test_bad_inputs_fail_clearly():
    with pytest.raises(ConfigError, match="unknown metric 'manhattan'"):
        pairwise_distances(np.ones((1, 2)), np.ones((1, 2)), metric="manhattan")
    with pytest.raises(ConfigError, match="embedding sizes differ"):
        pairwise_distances(np.ones((1, 2)), np.ones((1, 3)), metric="cosine")
    with pytest.raises(ConfigError, match="no query embeddings"):
        nearest(np.zeros((0, 2)), np.ones((1, 2)), metric="cosine")


@pytest.mark.parametrize("metric, value", [("cosine", 0.0), ("cosine", 2), ("cosine", 0.07), ("euclidean", 0.0),
                                           ("euclidean", 42.0), ("euclidean_l2", 2.0), ("euclidean_l2", 0.4)])
def test_check_threshold_accepts_every_possible_distance(metric, value):
    assert check_threshold(metric, value) == float(value)
    assert isinstance(check_threshold(metric, value), float)


@pytest.mark.parametrize("metric, value, wanted", [
    ("cosine", -1, "a cosine threshold must be between 0 and 2 (cosine distances lie there), got -1"),
    ("cosine", 2.01, "a cosine threshold must be between 0 and 2 (cosine distances lie there), got 2.01"),
    ("euclidean", -0.1, "a euclidean threshold must be 0 or more (euclidean distances lie there), got -0.1"),
    ("euclidean_l2", 2.5, "a euclidean_l2 threshold must be between 0 and 2 (euclidean_l2 distances lie there)"),
    ("euclidean_l2", -1e-9, "a euclidean_l2 threshold must be between 0 and 2"),
    ("cosine", float("nan"), "got nan"),
    ("cosine", "low", "a cosine threshold must be a number between 0 and 2, got 'low'"),
    ("cosine", True, "got True"),
])
def test_check_threshold_refuses_impossible_distances_naming_metric_value_and_range(metric, value, wanted):
    with pytest.raises(ConfigError) as error:
        check_threshold(metric, value)
    assert wanted in str(error.value)


def test_check_threshold_ranges_hold_the_distances_pairwise_distances_gives():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 16)), rng.normal(size=(30, 16)) * 5.0
    for metric in METRICS:
        d = pairwise_distances(np.vstack([a, -a]), b, metric=metric)
        low, high = DISTANCE_RANGES[metric]
        assert low <= d.min() and d.max() <= high
    with pytest.raises(ConfigError, match="unknown metric 'manhattan'"):
        check_threshold("manhattan", 0.5)


@pytest.mark.parametrize("call", ["find", "verify"])
def test_find_and_verify_refuse_an_impossible_threshold_before_loading_anything(call, tmp_path, monkeypatch):
    from crowdkit.engine import backends, faces

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(backends, "get_detector", no_models)
    monkeypatch.setattr(backends, "get_embedder", no_models)
    backends.forget_backends()
    with pytest.raises(ConfigError, match=r"a cosine threshold must be between 0 and 2 .*got -1"):
        if call == "find":
            faces.find([tmp_path / "missing.jpg"], tmp_path, threshold=-1)
        else:
            faces.verify(tmp_path / "a.jpg", tmp_path / "b.jpg", threshold=-1)
