"""LFW embeddings: the cache, unknown models, per-group rates, identification, and a small real dlib run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from crowdkit.bias import evaluate as ev
from crowdkit.common.exceptions import ConfigError


def test_cached_embeddings_compute_only_missing(tmp_path):
    calls = []

    def compute(idx):
        calls.append(list(idx))
        return np.array([[float(i)] for i in idx], np.float32), np.zeros(len(idx), np.int8)

    cache = tmp_path / "c.npz"
    emb, _ = ev.cached_embeddings(["a", "b"], compute, cache)
    emb2, _ = ev.cached_embeddings(["b", "c", "a"], compute, cache)
    assert calls == [[0, 1], [1]]
    assert emb2[:, 0].tolist() == [1.0, 1.0, 0.0]  # b kept its cached row, c computed at index 1


def test_unknown_model_says_what_to_pass(isolated_home):
    from crowdkit.common.exceptions import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="--model dlib"):
        ev.embed_paths("no_such_model.pt", [], root=".", cache_name="lfw")


@pytest.mark.slow
def test_dlib_on_an_lfw_subset_lands_high(capsys):
    """200 real View 2 pairs (20 per fold) through dlib's pipeline, via the CLI."""
    from crowdkit.cli import main

    assert main(["eval", "lfw", "--model", "dlib", "--n-pairs", "200", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    summary = json.loads(out[0])
    assert {"accuracy", "std", "val", "far", "auc", "eer"} <= set(summary)
    assert summary["accuracy"] >= 0.95
    assert summary["auc"] >= 0.98


def _pair_embeddings(d, same, names_a, names_b) -> ev.PairEmbeddings:
    # One image per pair side; 1-D "embeddings" whose euclidean distance is d.
    n = len(d)
    return ev.PairEmbeddings(
        model="synthetic", metric="euclidean", paths=tuple(range(2 * n)), names=np.r_[names_a, names_b],
        embeddings=np.r_[np.zeros(n), np.asarray(d, float)][:, None], status=np.zeros(2 * n, np.int8),
        index_a=np.arange(n), index_b=np.arange(n, 2 * n), issame=np.asarray(same, bool), folds=np.arange(n) % 2)


def test_svc_and_nearest_mean_on_separable_identities():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    x = np.repeat(centres, 12, axis=0) + 0.1 * rng.normal(size=(72, 16))
    ids = np.repeat([f"p{i}" for i in range(6)], 12)
    ids[:3] = "rare"  # an identity with < 10 images is left out
    for fn in (ev.svc_classification, ev.nearest_mean_classification):
        result = fn(x, ids, min_images=10, seed=0)
        assert result.accuracy == 1.0
        assert result.n_identities == 5
        assert set(result.per_identity["identity"]) == {f"p{i}" for i in range(1, 6)}
        assert (result.per_identity["n_test"] >= 2).all()
    with pytest.raises(ConfigError, match="min_images"):
        ev.svc_classification(x, ids, min_images=50)
