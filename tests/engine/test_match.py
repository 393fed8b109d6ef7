"""Distances and nearest-query search against plain per-pair formulas."""
from __future__ import annotations

import numpy as np
import pytest

from crowdkit.common.exceptions import ConfigError
from crowdkit.engine.match import METRICS, Match, match, nearest, pairwise_distances


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
