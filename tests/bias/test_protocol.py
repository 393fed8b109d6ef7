"""The LFW protocol on synthetic distances with known answers (numpy only)."""
from __future__ import annotations

import numpy as np
import pytest

from crowdkit.bias import protocol as P
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.metrics import best_accuracy_threshold, equal_error_rate


def _folds(n_folds: int = 10, per_class: int = 30) -> tuple[np.ndarray, np.ndarray]:
    same = np.tile(np.r_[np.ones(per_class, bool), np.zeros(per_class, bool)], n_folds)
    folds = np.repeat(np.arange(n_folds), 2 * per_class)
    return same, folds


def test_separable_distances_give_perfect_scores():
    rng = np.random.default_rng(0)
    same, folds = _folds()
    d = np.where(same, rng.uniform(0.1, 0.4, same.size), rng.uniform(0.6, 1.2, same.size))
    r = P.lfw_protocol(d, same, folds)
    assert r.accuracy == 1.0 and r.std == 0.0
    assert r.auc == 1.0 and r.eer == pytest.approx(0.0, abs=1e-9)
    assert r.val == 1.0 and r.far < 0.01
    assert 0.4 <= r.threshold <= 0.6
    assert r.n_folds == 10 and r.fold_accuracy.shape == (10,)


def test_random_distances_give_chance():
    rng = np.random.default_rng(1)
    same, folds = _folds(per_class=300)
    r = P.lfw_protocol(rng.uniform(0, 1, same.size), same, folds)
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
    r = P.lfw_protocol(d, same, folds)
    assert r.fold_accuracy[0] == pytest.approx(0.5)
    assert r.fold_thresholds[0] == pytest.approx(0.5)
    assert np.all(r.fold_accuracy[1:] == 1.0)
    # Choosing on the test fold itself would have scored it perfectly:
    t_own, acc_own = best_accuracy_threshold(d[folds == 0], same[folds == 0])
    assert acc_own == 1.0 and t_own > 0.6


def test_best_accuracy_threshold_is_exact():
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    same = np.array([1, 1, 0, 1, 0, 0], bool)
    t, acc = best_accuracy_threshold(d, same)
    # Cuts after 0.2 or after 0.4 both give 5/6; ties go to the smaller one.
    assert acc == pytest.approx(5 / 6)
    assert t == pytest.approx(0.25)


def test_far_threshold_interpolates():
    # 1000 different pairs at distances 1..1000 (×0.001): FAR(d_(i)) = i/1000.
    diff = np.arange(1, 1001) / 1000.0
    d = np.r_[diff, np.zeros(5)]
    same = np.r_[np.zeros(1000, bool), np.ones(5, bool)]
    assert P.far_threshold(d, same, 1e-3) == pytest.approx(0.001)
    assert P.far_threshold(d, same, 2.5e-3) == pytest.approx(0.0025)
    # Below every reachable FAR: interpolate towards "just below the smallest distance".
    t = P.far_threshold(d, same, 0.5e-3)
    assert 0.0 < t < 0.001


def test_val_at_far_on_held_out_fold():
    rng = np.random.default_rng(3)
    same, folds = _folds(per_class=300)
    d = np.where(same, rng.normal(0.4, 0.1, same.size), rng.normal(1.0, 0.1, same.size))
    r = P.lfw_protocol(d, same, folds)
    assert r.far < 0.01
    assert 0.5 < r.val <= 1.0
    assert r.fold_val_thresholds.shape == (10,)


def test_bad_input_is_reported():
    same, folds = _folds()
    with pytest.raises(ConfigError, match="not finite"):
        P.lfw_protocol(np.full(same.size, np.nan), same, folds)
    with pytest.raises(ConfigError, match="at least 2 folds"):
        P.lfw_protocol(np.zeros(4), np.array([1, 0, 1, 0], bool), np.zeros(4, int))
    with pytest.raises(ConfigError):
        P.paired_distances(np.zeros((3, 4)), np.zeros((2, 4)))


def test_paired_distances_metrics():
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[3.0, 4.0], [0.0, 2.0]])
    assert P.paired_distances(a, b, metric="euclidean") == pytest.approx([0.0, np.sqrt(5)])
    assert P.paired_distances(a, b, metric="euclidean_l2") == pytest.approx([0.0, np.sqrt(2)])
    assert P.paired_distances(a, b, metric="cosine") == pytest.approx([0.0, 1.0])


def test_limit_pairs_keeps_every_fold_balanced():
    same, folds = _folds(per_class=300)
    keep = P.limit_pairs(folds, same, 200)
    assert len(keep) == 200
    for f in range(10):
        assert same[keep][folds[keep] == f].sum() == 10
        assert (~same[keep][folds[keep] == f]).sum() == 10


def test_eer_is_the_shared_metric():
    """One EER implementation: the protocol reports crowdkit.common.metrics.equal_error_rate over all pairs."""
    rng = np.random.default_rng(5)
    same, folds = _folds(per_class=100)
    d = np.where(same, rng.normal(0.5, 0.2, same.size), rng.normal(0.9, 0.2, same.size))
    r = P.lfw_protocol(d, same, folds)
    assert r.eer == equal_error_rate(same, d).rate
    assert 0.0 < r.eer < 0.5

