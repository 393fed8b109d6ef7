"""Clustering scores on well-separated and on structureless synthetic embeddings."""
from __future__ import annotations

import numpy as np
import pytest

from crowdkit.bias import cluster
from crowdkit.common.exceptions import ConfigError


def _blobs(n_ids: int = 5, per_id: int = 12, spread: float = 0.02, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 16))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, per_id, axis=0) + spread * rng.normal(size=(n_ids * per_id, 16))
    ids = np.repeat([f"person{i}" for i in range(n_ids)], per_id)
    return x, ids


@pytest.mark.parametrize("method", [cluster.kmeans, cluster.dbscan, cluster.tsne])
def test_separated_blobs_are_recovered(method):
    x, ids = _blobs()
    result = method(x, ids)
    assert result.ari == pytest.approx(1.0, abs=1e-9)
    assert result.nmi == pytest.approx(1.0, abs=1e-9)
    assert result.n_clusters == 5


def test_dbscan_marks_noise_on_structureless_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 64))
    ids = np.repeat(np.arange(6), 10)
    result = cluster.dbscan(x, ids, eps=0.4)
    assert result.noise_fraction == 1.0 and result.n_clusters == 0
    assert abs(result.ari) < 0.05


def test_som_winners_follow_identities():
    x, ids = _blobs(n_ids=4, per_id=10)
    result = cluster.som(x, ids, size=20, iterations=1000, seed=0)
    assert result.coordinates.shape == (40, 2)
    # A person's faces share a node or a few; different people never share one.
    for node in np.unique(result.labels):
        assert len(set(ids[result.labels == node])) == 1
    assert result.params["node_purity"] == 1.0
    assert result.nmi > 0.5  # over-segmented (a node per face or few), so NMI stays well below 1
    again = cluster.som(x, ids, size=20, iterations=1000, seed=0)
    assert np.array_equal(again.labels, result.labels)


def test_plots_draw(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    x, ids = _blobs()
    cluster.plot_scatter(cluster.tsne(x, ids))
    cluster.plot_clusters(cluster.dbscan(x, ids), x)
    cluster.plot_som(cluster.som(x, ids, iterations=200))
    with pytest.raises(ConfigError):
        cluster.plot_som(cluster.kmeans(x, ids))


def test_pick_identities_and_bad_input():
    ids = np.array(["a"] * 5 + ["b"] * 2 + ["c"] * 6)
    chosen = cluster.pick_identities(ids, n=2, min_images=5, seed=0)
    assert set(ids[chosen]) == {"a", "c"}
    with pytest.raises(ConfigError, match="only 2"):
        cluster.pick_identities(ids, n=3, min_images=5)
    with pytest.raises(ConfigError, match="NaN"):
        cluster.kmeans(np.full((4, 3), np.nan), ["a", "a", "b", "b"])
