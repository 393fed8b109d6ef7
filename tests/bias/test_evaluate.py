"""LFW protocol on synthetic distances with known answers, plus a small real dlib run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from crowdkit.bias import evaluate as ev
from crowdkit.common.exceptions import ConfigError


def _folds(n_folds: int = 10, per_class: int = 30) -> tuple[np.ndarray, np.ndarray]:
    same = np.tile(np.r_[np.ones(per_class, bool), np.zeros(per_class, bool)], n_folds)
    folds = np.repeat(np.arange(n_folds), 2 * per_class)
    return same, folds


def test_separable_distances_give_perfect_scores():
    rng = np.random.default_rng(0)
    same, folds = _folds()
    d = np.where(same, rng.uniform(0.1, 0.4, same.size), rng.uniform(0.6, 1.2, same.size))
    r = ev.lfw_protocol(d, same, folds)
    assert r.accuracy == 1.0 and r.std == 0.0
    assert r.auc == 1.0 and r.eer == pytest.approx(0.0, abs=1e-9)
    assert r.val == 1.0 and r.far < 0.01
    assert 0.4 <= r.threshold <= 0.6
    assert r.n_folds == 10 and r.fold_accuracy.shape == (10,)


def test_random_distances_give_chance():
    rng = np.random.default_rng(1)
    same, folds = _folds(per_class=300)
    r = ev.lfw_protocol(rng.uniform(0, 1, same.size), same, folds)
    assert 0.45 < r.accuracy < 0.55
    assert 0.45 < r.auc < 0.55
    assert 0.4 < r.eer < 0.6


def test_threshold_comes_from_training_folds_only():
    # Folds 1..9: same at 0.3, different at 0.7 → learnt threshold ≈ 0.5.
    # Fold 0 is shifted: same at 0.6, different at 0.9. Its own best threshold (0.75)
    # would give 1.0; the protocol must apply the training folds' ≈0.5 and reject every same pair.
    same, folds = _folds()
    d = np.where(same, 0.3, 0.7)
    d[(folds == 0) & same] = 0.6
    d[(folds == 0) & ~same] = 0.9
    r = ev.lfw_protocol(d, same, folds)
    assert r.fold_accuracy[0] == pytest.approx(0.5)
    assert r.fold_thresholds[0] == pytest.approx(0.5)
    assert np.all(r.fold_accuracy[1:] == 1.0)
    # Choosing on the test fold itself would have scored it perfectly:
    t_own, acc_own = ev.best_accuracy_threshold(d[folds == 0], same[folds == 0])
    assert acc_own == 1.0 and t_own > 0.6


def test_best_accuracy_threshold_is_exact():
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    same = np.array([1, 1, 0, 1, 0, 0], bool)
    t, acc = ev.best_accuracy_threshold(d, same)
    # Cuts after 0.2 or after 0.4 both give 5/6; ties go to the smaller one.
    assert acc == pytest.approx(5 / 6)
    assert t == pytest.approx(0.25)


def test_far_threshold_interpolates():
    # 1000 different pairs at distances 1..1000 (×0.001): FAR(d_(i)) = i/1000.
    diff = np.arange(1, 1001) / 1000.0
    d = np.r_[diff, np.zeros(5)]
    same = np.r_[np.zeros(1000, bool), np.ones(5, bool)]
    assert ev.far_threshold(d, same, 1e-3) == pytest.approx(0.001)
    assert ev.far_threshold(d, same, 2.5e-3) == pytest.approx(0.0025)
    # Below every reachable FAR: interpolate towards "just below the smallest distance".
    t = ev.far_threshold(d, same, 0.5e-3)
    assert 0.0 < t < 0.001


def test_val_at_far_on_held_out_fold():
    rng = np.random.default_rng(3)
    same, folds = _folds(per_class=300)
    d = np.where(same, rng.normal(0.4, 0.1, same.size), rng.normal(1.0, 0.1, same.size))
    r = ev.lfw_protocol(d, same, folds)
    assert r.far < 0.01
    assert 0.5 < r.val <= 1.0
    assert r.fold_val_thresholds.shape == (10,)


def test_bad_input_is_reported():
    same, folds = _folds()
    with pytest.raises(ConfigError, match="not finite"):
        ev.lfw_protocol(np.full(same.size, np.nan), same, folds)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        ev.lfw_protocol(np.zeros(4), np.array([1, 0, 1, 0], bool), np.zeros(4, int))
    with pytest.raises(ConfigError):
        ev.paired_distances(np.zeros((3, 4)), np.zeros((2, 4)))


def test_paired_distances_metrics():
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[3.0, 4.0], [0.0, 2.0]])
    assert ev.paired_distances(a, b, metric="euclidean") == pytest.approx([0.0, np.sqrt(5)])
    assert ev.paired_distances(a, b, metric="euclidean_l2") == pytest.approx([0.0, np.sqrt(2)])
    assert ev.paired_distances(a, b, metric="cosine") == pytest.approx([0.0, 1.0])


def test_limit_pairs_keeps_every_fold_balanced():
    same, folds = _folds(per_class=300)
    keep = ev.limit_pairs(folds, same, 200)
    assert len(keep) == 200
    for f in range(10):
        assert same[keep][folds[keep] == f].sum() == 10
        assert (~same[keep][folds[keep] == f]).sum() == 10


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


def test_group_errors_split_pairs_by_predicted_group():
    labels = {"a1": "X", "a2": "X", "b1": "Y", "b2": "Y"}
    pairs = _pair_embeddings(
        d=[0.2, 0.8, 0.3, 0.5, 0.9, 0.4, 0.7],
        same=[1, 1, 1, 0, 0, 0, 0],
        names_a=["a1", "a2", "b1", "a1", "b1", "a1", "zz"],
        names_b=["a1", "a2", "b1", "a2", "b2", "b1", "a1"],
    )
    table = ev.group_errors(pairs, labels, threshold=0.6, val_threshold=0.35).set_index("group")
    assert list(table.index) == ["X", "Y", "mixed"]
    x = table.loc["X"]
    assert (x.n_same, x.n_diff, x.n_identities) == (2, 1, 2)
    assert x.fnmr == 0.5 and x.fmr == 1.0          # 0.8 rejected; the 0.5 impostor accepted
    assert x.tar == 0.5 and x.far == 0.0           # at 0.35: 0.2 accepted, 0.8 not; impostor 0.5 rejected
    y = table.loc["Y"]
    assert y.fnmr == 0.0 and y.fmr == 0.0
    mixed = table.loc["mixed"]
    # a1–b1 (0.4, accepted) and zz–a1 (0.7; "zz" has no label, so the pair is cross-group, rejected).
    assert mixed.n_pairs == 2 and mixed.n_same == 0 and np.isnan(mixed.fnmr) and mixed.fmr == 0.5


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
