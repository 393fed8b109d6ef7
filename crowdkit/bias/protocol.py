"""The LFW View 2 verification protocol on precomputed pair distances (numpy only, no models).

The protocol follows davidsandberg/facenet's ``lfw.evaluate``
(``validate_on_lfw``), with the folds taken from ``pairs.txt`` itself:

* 10 folds of 300 same + 300 different pairs, in file order;
* for each fold, the accuracy threshold is the one that maximises accuracy on
  the *other nine* folds (:func:`crowdkit.common.metrics.best_accuracy_threshold`)
  and is applied, unchanged, to the held-out fold;
  accuracy is reported as mean ± std over the 10 held-out folds;
* VAL @ FAR: on the nine training folds the threshold whose false-accept rate
  equals the target (1e-3) is found by linear interpolation of FAR over the
  sorted different-pair distances; VAL and FAR are then measured on the
  held-out fold and averaged;
* ROC (``sklearn.metrics.roc_curve`` over all pairs, score = −distance), AUC
  and EER (:func:`crowdkit.common.metrics.equal_error_rate`: where FNR = FPR on
  the linearly interpolated ROC).

A pair is predicted "same person" when its distance is ``<= threshold``.

Example
-------
>>> import numpy as np
>>> same = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
>>> folds = np.repeat(np.arange(10), 60)
>>> d = np.where(same, 0.3, 0.9)
>>> lfw_protocol(d, same, folds).accuracy
1.0
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crowdkit.common.exceptions import ConfigError
from crowdkit.common.metrics import best_accuracy_threshold, equal_error_rate

#: The FAR at which VAL (TAR) is reported, as in FaceNet.
FAR_TARGET = 1e-3

#: Distances a model's embeddings can be compared with (see :func:`paired_distances`).
METRICS = ("euclidean_l2", "euclidean", "cosine")


def paired_distances(a: np.ndarray, b: np.ndarray, *, metric: str = "euclidean_l2") -> np.ndarray:
    """Row-wise distance between ``a[i]`` and ``b[i]``; both (N, D). Returns float64 (N,).

    ``metric``: ``"euclidean_l2"`` (euclidean on L2-normalised rows, FaceNet's
    choice), ``"euclidean"`` (raw, dlib's) or ``"cosine"`` (1 − cos).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(f"paired embeddings must both be (N, D), got {a.shape} and {b.shape}")
    if metric in ("euclidean_l2", "cosine"):
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    if metric == "cosine":
        return np.clip(1.0 - (a * b).sum(1), 0.0, 2.0)
    if metric not in ("euclidean", "euclidean_l2"):
        raise ConfigError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return np.linalg.norm(a - b, axis=1)


@dataclass(frozen=True, eq=False)
class LFWResult:
    """LFW verification result (all rates in [0, 1]).

    Attributes
    ----------
    accuracy, std : mean and standard deviation of the held-out-fold accuracies.
    val, val_std, far : VAL (TAR) and the achieved FAR at the ``far_target``
        threshold, mean over folds (``val_std`` its std).
    auc, eer : area under the ROC curve and equal error rate, over all pairs.
    fpr, tpr, roc_thresholds : (K,) ROC points; ``roc_thresholds`` are distances.
    fold_accuracy, fold_thresholds, fold_val, fold_far, fold_val_thresholds : (n_folds,)
    threshold : median of the per-fold accuracy thresholds (a single global
        operating point, used for per-group error rates).
    val_threshold : median of the per-fold VAL thresholds.
    """

    accuracy: float
    std: float
    val: float
    val_std: float
    far: float
    far_target: float
    auc: float
    eer: float
    threshold: float
    val_threshold: float
    n_pairs: int
    n_folds: int
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    roc_thresholds: np.ndarray = field(repr=False)
    fold_accuracy: np.ndarray = field(repr=False)
    fold_thresholds: np.ndarray = field(repr=False)
    fold_val: np.ndarray = field(repr=False)
    fold_far: np.ndarray = field(repr=False)
    fold_val_thresholds: np.ndarray = field(repr=False)

    def summary(self) -> dict[str, float]:
        """The headline numbers as plain floats (the CLI's JSON line)."""
        return {
            "accuracy": float(self.accuracy), "std": float(self.std),
            "val": float(self.val), "val_std": float(self.val_std),
            "far": float(self.far), "far_target": float(self.far_target),
            "auc": float(self.auc), "eer": float(self.eer),
            "threshold": float(self.threshold), "n_pairs": int(self.n_pairs), "n_folds": int(self.n_folds),
        }


def far_threshold(distances: np.ndarray, issame: np.ndarray, far_target: float = FAR_TARGET) -> float:
    """The distance threshold whose false-accept rate is ``far_target``, by linear interpolation.

    FAR(t) = fraction of different pairs with distance <= t. With the
    different-pair distances sorted, FAR(d_(i)) = i / m; the target is
    interpolated between those points, with FAR = 0 just below d_(1). As in
    FaceNet, when the target lies below every reachable FAR the threshold is
    the one where FAR = 0.
    """
    d = np.asarray(distances, dtype=np.float64)
    diff = np.sort(d[~np.asarray(issame, dtype=bool)])
    m = len(diff)
    if m == 0:
        raise ConfigError("FAR needs different-person pairs; the selection holds none")
    fars = np.arange(0, m + 1) / m
    thresholds = np.concatenate([[diff[0] - 1e-6], diff])
    # Ties: keep, for each distinct distance, its largest FAR.
    keep = np.ones(m + 1, dtype=bool)
    keep[1:m] = diff[1:] > diff[:-1]
    return float(np.interp(far_target, fars[keep], thresholds[keep]))


def _val_far(threshold: float, distances: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    accept = distances <= threshold
    n_same = issame.sum()
    n_diff = (~issame).sum()
    val = accept[issame].sum() / n_same if n_same else float("nan")
    far = accept[~issame].sum() / n_diff if n_diff else float("nan")
    return float(val), float(far)


def _checked_inputs(distances, issame, folds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64)
    same = np.asarray(issame, dtype=bool)
    folds = np.asarray(folds)
    if not (d.shape == same.shape == folds.shape) or d.ndim != 1:
        raise ConfigError(f"distances, issame and folds must be (N,) alike, got {d.shape}, {same.shape}, {folds.shape}")
    if not np.isfinite(d).all():
        raise ConfigError(f"{int((~np.isfinite(d)).sum())} pair distances are not finite; embed every image first")
    if len(np.unique(folds)) < 2:
        raise ConfigError("the protocol needs at least 2 folds (View 2 has 10); for a single fold use "
                          "crowdkit.common.metrics.best_accuracy_threshold() directly")
    return d, same, folds


def lfw_protocol(distances: np.ndarray, issame: np.ndarray, folds: np.ndarray, *,
                 far_target: float = FAR_TARGET) -> LFWResult:
    """Run the 10-fold LFW protocol on precomputed pair distances.

    Parameters
    ----------
    distances : (N,) float — distance of each pair (smaller = more alike).
    issame : (N,) bool — ground truth.
    folds : (N,) int — each pair's fold (from the pairs file, not a reshuffle).
    far_target : FAR for VAL (default 1e-3).
    """
    from sklearn.metrics import auc as sk_auc
    from sklearn.metrics import roc_curve

    d, same, folds = _checked_inputs(distances, issame, folds)
    fold_ids = np.unique(folds)
    acc, thr, vals, fars, vthr = [], [], [], [], []
    for fold in fold_ids:
        test = folds == fold
        train = ~test
        t, _ = best_accuracy_threshold(d[train], same[train])
        thr.append(t)
        acc.append(np.mean((d[test] <= t) == same[test]))
        vt = far_threshold(d[train], same[train], far_target)
        vthr.append(vt)
        v, f = _val_far(vt, d[test], same[test])
        vals.append(v)
        fars.append(f)
    fpr, tpr, roc_thr = roc_curve(same.astype(int), -d)
    return LFWResult(
        accuracy=float(np.mean(acc)), std=float(np.std(acc)),
        val=float(np.nanmean(vals)), val_std=float(np.nanstd(vals)), far=float(np.nanmean(fars)),
        far_target=float(far_target), auc=float(sk_auc(fpr, tpr)), eer=equal_error_rate(same, d).rate,
        threshold=float(np.median(thr)), val_threshold=float(np.median(vthr)),
        n_pairs=int(len(d)), n_folds=int(len(fold_ids)),
        fpr=fpr, tpr=tpr, roc_thresholds=-roc_thr,
        fold_accuracy=np.asarray(acc), fold_thresholds=np.asarray(thr),
        fold_val=np.asarray(vals), fold_far=np.asarray(fars), fold_val_thresholds=np.asarray(vthr),
    )


def limit_pairs(folds: np.ndarray, same: np.ndarray, n_pairs: int | None) -> np.ndarray:
    """Indices of about ``n_pairs`` pairs: the first same and different pairs of every fold, equally many.

    Keeps the fold structure, so the 10-fold protocol still applies to a quick subset.
    """
    folds, same = np.asarray(folds), np.asarray(same, dtype=bool)
    if n_pairs is None or n_pairs >= len(folds):
        return np.arange(len(folds))
    per_class = max(1, n_pairs // (2 * len(np.unique(folds))))
    keep = [np.flatnonzero((folds == f) & (same == s))[:per_class] for f in np.unique(folds) for s in (True, False)]
    return np.sort(np.concatenate(keep))
