"""LFW View 2 verification, per-group error rates, and identity classification on embeddings.

The verification protocol follows davidsandberg/facenet's ``lfw.evaluate``
(``validate_on_lfw``), with the folds taken from ``pairs.txt`` itself:

* 10 folds of 300 same + 300 different pairs, in file order;
* for each fold, the accuracy threshold is the one that maximises accuracy on
  the *other nine* folds and is applied, unchanged, to the held-out fold;
  accuracy is reported as mean ± std over the 10 held-out folds;
* VAL @ FAR: on the nine training folds the threshold whose false-accept rate
  equals the target (1e-3) is found by linear interpolation of FAR over the
  sorted different-pair distances; VAL and FAR are then measured on the
  held-out fold and averaged;
* ROC (``sklearn.metrics.roc_curve`` over all pairs, score = −distance), AUC
  and EER (where FNR = FPR, solved with ``scipy.optimize.brentq``).

A pair is predicted "same person" when its distance is ``<= threshold``.

Typical use::

    pairs = embed_lfw_pairs("dlib")                 # cached after the first call
    result = lfw_protocol(pairs.distances, pairs.issame, pairs.folds)
    result.accuracy, result.std, result.val, result.auc
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from crowdkit.common import config
from crowdkit.common.cache import merge_embedding_table, read_embedding_table
# the dlib pipeline's status codes and centre box, re-exported: callers read them from here
from crowdkit.bias.descriptors import CENTRE_BOX, CENTRE_FALLBACK, FACE_FOUND, NO_FACE, SECOND_DETECTOR  # noqa: F401
from crowdkit.bias.descriptors import VERSION as DLIB_VERSION
from crowdkit.common.exceptions import ConfigError, DataNotFoundError

log = logging.getLogger(__name__)

#: The FAR at which VAL (TAR) is reported, as in FaceNet.
FAR_TARGET = 1e-3


# --------------------------------------------------------------------------- distances

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
        raise ConfigError(f"unknown metric {metric!r}; known: euclidean_l2, euclidean, cosine")
    return np.linalg.norm(a - b, axis=1)


# --------------------------------------------------------------------------- protocol

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


def best_accuracy_threshold(distances: np.ndarray, issame: np.ndarray) -> tuple[float, float]:
    """The threshold maximising accuracy of ``distance <= t`` ⇒ same, and that accuracy.

    Exact: every midpoint between consecutive sorted distances is tried (plus
    one below the smallest and one above the largest). Ties go to the smallest
    threshold, like ``np.argmax`` over FaceNet's grid.
    """
    d = np.asarray(distances, dtype=np.float64)
    same = np.asarray(issame, dtype=bool)
    order = np.argsort(d, kind="stable")
    d, same = d[order], same[order]
    n = len(d)
    # Accept the first k pairs (k = 0..n): correct = same among first k + different among the rest.
    same_cum = np.concatenate([[0], np.cumsum(same)])
    diff_total = n - same.sum()
    diff_cum = np.arange(n + 1) - same_cum
    correct = same_cum + (diff_total - diff_cum)
    # Only cut between distinct distances.
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = d[1:] > d[:-1]
    correct = np.where(valid, correct, -1)
    k = int(np.argmax(correct))
    if k == 0:
        t = d[0] - 1e-6
    elif k == n:
        t = d[-1] + 1e-6
    else:
        t = 0.5 * (d[k - 1] + d[k])
    return float(t), float(correct[k] / n)


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


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The EER: the FPR where FPR = 1 − TPR, by root-finding on the interpolated ROC."""
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq

    f = interp1d(fpr, tpr, kind="linear", bounds_error=False, fill_value=(0.0, 1.0))
    try:
        return float(brentq(lambda x: 1.0 - x - f(x), 0.0, 1.0))
    except ValueError:  # no sign change: degenerate ROC
        return float("nan")


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

    d = np.asarray(distances, dtype=np.float64)
    same = np.asarray(issame, dtype=bool)
    folds = np.asarray(folds)
    if not (d.shape == same.shape == folds.shape) or d.ndim != 1:
        raise ConfigError(f"distances, issame and folds must be (N,) alike, got {d.shape}, {same.shape}, {folds.shape}")
    if not np.isfinite(d).all():
        raise ConfigError(f"{int((~np.isfinite(d)).sum())} pair distances are not finite; embed every image first")
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ConfigError("the protocol needs at least 2 folds (View 2 has 10); for a single fold use "
                          "best_accuracy_threshold() directly")
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
        far_target=float(far_target), auc=float(sk_auc(fpr, tpr)), eer=equal_error_rate(fpr, tpr),
        threshold=float(np.median(thr)), val_threshold=float(np.median(vthr)),
        n_pairs=int(len(d)), n_folds=int(len(fold_ids)),
        fpr=fpr, tpr=tpr, roc_thresholds=-roc_thr,
        fold_accuracy=np.asarray(acc), fold_thresholds=np.asarray(thr),
        fold_val=np.asarray(vals), fold_far=np.asarray(fars), fold_val_thresholds=np.asarray(vthr),
    )


# --------------------------------------------------------------------------- embeddings

def cached_embeddings(keys: Sequence[str], compute: Callable[[list[int]], tuple[np.ndarray, np.ndarray]],
                      cache_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings for ``keys`` (e.g. relative image paths), computing only those not in ``cache_file``.

    ``compute(indices)`` returns ``(embeddings (k, D), status (k,))`` for
    ``keys[indices]``. The npz cache is :func:`crowdkit.common.cache.merge_embedding_table`'s
    (keys, embeddings, status), rewritten atomically; it is safe to delete.
    """
    keys = list(keys)
    known = read_embedding_table(cache_file)
    first_index: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key not in known:
            first_index.setdefault(key, i)
    if first_index:
        missing = sorted(first_index)
        embeddings, status = compute([first_index[k] for k in missing])
        new = {k: (e, int(s)) for k, e, s in zip(missing, embeddings, status)}
        merge_embedding_table(cache_file, new)
        known.update(new)
    return (np.stack([known[k][0] for k in keys]).astype(np.float32),
            np.array([known[k][1] for k in keys], dtype=np.int8))


@dataclass(frozen=True, eq=False)
class PairEmbeddings:
    """Embeddings of every image used by a set of LFW pairs, and the pairs as indices into them.

    Attributes
    ----------
    model : the model's name (``"dlib"`` or a checkpoint path).
    metric : the distance the model is meant to be compared with.
    paths : (n,) the unique images;  names : (n,) their identities (LFW folder names).
    embeddings : (n, D) float32;  status : (n,) int8, FACE_FOUND or CENTRE_FALLBACK (no face found,
        embedded from the central box).
    index_a, index_b : (N,) rows of each pair's two images.
    issame : (N,) bool;  folds : (N,) int.
    """

    model: str
    metric: str
    paths: tuple = field(repr=False)
    names: np.ndarray = field(repr=False)
    embeddings: np.ndarray = field(repr=False)
    status: np.ndarray = field(repr=False)
    index_a: np.ndarray = field(repr=False)
    index_b: np.ndarray = field(repr=False)
    issame: np.ndarray = field(repr=False)
    folds: np.ndarray = field(repr=False)

    @property
    def embeddings_a(self) -> np.ndarray:
        return self.embeddings[self.index_a]

    @property
    def embeddings_b(self) -> np.ndarray:
        return self.embeddings[self.index_b]

    @property
    def names_a(self) -> np.ndarray:
        return self.names[self.index_a]

    @property
    def names_b(self) -> np.ndarray:
        return self.names[self.index_b]

    @property
    def n_images(self) -> int:
        return len(self.paths)

    @property
    def n_fallbacks(self) -> int:
        """Images in which no detector found a face (embedded from the central box)."""
        return int((self.status == CENTRE_FALLBACK).sum())

    @property
    def n_second_detector(self) -> int:
        """Images in which only the second detector (MTCNN) found the face."""
        return int((self.status == SECOND_DETECTOR).sum())

    @property
    def distances(self) -> np.ndarray:
        return paired_distances(self.embeddings_a, self.embeddings_b, metric=self.metric)

    def protocol(self, *, far_target: float = FAR_TARGET) -> LFWResult:
        return lfw_protocol(self.distances, self.issame, self.folds, far_target=far_target)

    def identities_with(self, min_images: int) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (M, D) and names (M,) of the images whose identity has ≥ ``min_images`` of them here."""
        names, counts = np.unique(self.names, return_counts=True)
        keep = np.isin(self.names, names[counts >= min_images])
        return self.embeddings[keep], self.names[keep]


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


def _model_key(model: str) -> str:
    if model == "dlib":
        return DLIB_VERSION
    path = Path(model)
    if not path.is_file():
        raise DataNotFoundError(f"model {model!r} is neither 'dlib' nor a checkpoint file; "
                                "pass --model dlib or the path of a .pt written by crowdkit.bias.train")
    from crowdkit.common.io import sha256_file

    # A projection head reads dlib descriptors: their pipeline version is part of the key.
    return f"ckpt-{sha256_file(path)[:16]}-{DLIB_VERSION}"


def embed_paths(model: str, paths: Sequence[Path], *, root: Path, cache_name: str,
                progress: bool = True) -> tuple[np.ndarray, np.ndarray, str]:
    """Embeddings (N, D) and statuses (N,) of image files for ``model`` ("dlib" or a checkpoint), cached.

    ``"dlib"``: :func:`crowdkit.bias.descriptors.describe_photos` (cached by file
    content, shared with the ethnicity and training steps). A checkpoint: keys
    are paths relative to ``root``, the cache is
    ``config.cache_dir(cache_name)/<model key>.npz``. Returns the model's metric too.
    """
    if model == "dlib":
        from crowdkit.bias.descriptors import METRIC, describe_photos

        found = describe_photos(paths, progress=progress)
        return found.embeddings, found.status, METRIC
    key = _model_key(model)
    keys = [str(Path(p).relative_to(root)) for p in paths]
    cache_file = config.cache_dir(cache_name) / f"{key}.npz"
    from crowdkit.bias.train import load_model  # lazy: torch

    trained = load_model(model)

    def compute_trained(idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return trained.embed_paths([paths[i] for i in idx], root=root, cache_name=cache_name, progress=progress)

    emb, status = cached_embeddings(keys, compute_trained, cache_file)
    return emb, status, trained.metric


def embed_lfw_pairs(model: str = "dlib", *, pairs_path: str | os.PathLike | None = None,
                    lfw_root: str | os.PathLike | None = None, n_pairs: int | None = None,
                    progress: bool = True) -> PairEmbeddings:
    """Embed every image of the LFW pairs with ``model`` (``"dlib"`` or a trained checkpoint path).

    Each unique image is embedded once and cached under
    ``config.cache_dir("lfw")``; a second call reads the cache. ``n_pairs``
    keeps a balanced subset (same number of same/different pairs per fold) for
    quick builds.
    """
    from crowdkit.common.datasets import read_lfw_pairs

    pair_set = read_lfw_pairs(pairs_path, images_root=lfw_root)
    keep = limit_pairs(pair_set.fold, pair_set.same, n_pairs)
    paths_a = [pair_set.paths1[i] for i in keep]
    paths_b = [pair_set.paths2[i] for i in keep]
    root = Path(lfw_root) if lfw_root is not None else Path(pair_set.paths1[0]).parent.parent
    paths = sorted(set(paths_a) | set(paths_b))
    emb, status, metric = embed_paths(model, paths, root=root, cache_name="lfw", progress=progress)
    row = {p: i for i, p in enumerate(paths)}
    pairs = PairEmbeddings(
        model=str(model), metric=metric, paths=tuple(paths), names=np.array([p.parent.name for p in paths]),
        embeddings=emb, status=status, index_a=np.array([row[p] for p in paths_a]),
        index_b=np.array([row[p] for p in paths_b]), issame=pair_set.same[keep], folds=pair_set.fold[keep],
    )
    if pairs.n_fallbacks:
        log.info("%d of %d LFW images had no detectable face; embedded from the central box",
                 pairs.n_fallbacks, pairs.n_images)
    return pairs


def evaluate_lfw(model: str = "dlib", *, pairs_path: str | os.PathLike | None = None,
                 n_pairs: int | None = None, far_target: float = FAR_TARGET,
                 progress: bool = True) -> tuple[LFWResult, PairEmbeddings]:
    """``embed_lfw_pairs`` then ``lfw_protocol``: the CLI's ``crowdkit eval lfw``."""
    pairs = embed_lfw_pairs(model, pairs_path=pairs_path, n_pairs=n_pairs, progress=progress)
    return pairs.protocol(far_target=far_target), pairs


# --------------------------------------------------------------------------- per-group errors

MIXED = "mixed"


def group_errors(pairs: PairEmbeddings, labels: Mapping[str, str], *, threshold: float,
                 val_threshold: float | None = None):
    """False match / non-match rates per predicted group, at one global threshold.

    A pair belongs to group g when both of its identities are labelled g;
    pairs across groups (all different-person pairs) form the ``"mixed"`` row;
    identities without a label fall in ``"unlabelled"``. The labels are a
    classifier's *predictions*, with a measured error — not facts about anyone.

    Parameters
    ----------
    pairs : PairEmbeddings (distances, ground truth and identity names).
    labels : LFW identity → predicted group (e.g. ``crowdkit.bias.ethnicity.lookup_labels``).
    threshold : the global accuracy threshold (``LFWResult.threshold``).
    val_threshold : the global VAL threshold (``LFWResult.val_threshold``);
        TAR and FAR at it are reported per group.

    Returns
    -------
    pandas.DataFrame, one row per group: n_pairs, n_same, n_diff, n_identities,
    fmr, fnmr (at ``threshold``), tar, far (at ``val_threshold``). Rates with
    no pairs to measure them on are NaN.
    """
    import pandas as pd

    d = pairs.distances
    ga = np.array([labels.get(n, "unlabelled") for n in pairs.names_a], dtype=object)
    gb = np.array([labels.get(n, "unlabelled") for n in pairs.names_b], dtype=object)
    group = np.where(ga == gb, ga, MIXED)
    rows = []
    for g in sorted(set(group.tolist()), key=lambda v: (v == MIXED, v)):
        m = group == g
        same, diff = m & pairs.issame, m & ~pairs.issame
        ids = set(pairs.names_a[m].tolist()) | set(pairs.names_b[m].tolist())

        def rate(mask: np.ndarray, accept: bool, t: float | None) -> float:
            if t is None or not mask.any():
                return float("nan")
            return float(np.mean((d[mask] <= t) == accept))

        rows.append({"group": g, "n_pairs": int(m.sum()), "n_same": int(same.sum()), "n_diff": int(diff.sum()),
                     "n_identities": len(ids), "fmr": rate(diff, True, threshold), "fnmr": rate(same, False, threshold),
                     "tar": rate(same, True, val_threshold), "far": rate(diff, True, val_threshold)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- identification

@dataclass(frozen=True, eq=False)
class ClassificationResult:
    """Closed-set identification on embeddings: overall accuracy and a per-identity table."""

    method: str
    accuracy: float
    n_identities: int
    n_train: int
    n_test: int
    per_identity: object = field(repr=False)  # pandas.DataFrame: identity, n_train, n_test, accuracy


def _split_by_identity(embeddings: np.ndarray, identities: Sequence, min_images: int, test_size: float, seed: int):
    from sklearn.model_selection import train_test_split

    x = np.asarray(embeddings, dtype=np.float64)
    ids = np.asarray(identities)
    if len(x) != len(ids):
        raise ConfigError(f"{len(x)} embeddings but {len(ids)} identities")
    names, counts = np.unique(ids, return_counts=True)
    keep = np.isin(ids, names[counts >= min_images]) & np.isfinite(x).all(axis=1)
    if len(np.unique(ids[keep])) < 2:
        raise ConfigError(f"fewer than 2 identities have at least {min_images} images; lower min_images")
    x = x[keep] / np.maximum(np.linalg.norm(x[keep], axis=1, keepdims=True), 1e-12)
    ids = ids[keep]
    return train_test_split(x, ids, test_size=test_size, stratify=ids, random_state=seed)


def _classification_result(method: str, y_train, y_test, predicted) -> ClassificationResult:
    import pandas as pd

    rows = []
    for name in np.unique(y_test):
        m = y_test == name
        rows.append({"identity": name, "n_train": int(np.sum(y_train == name)), "n_test": int(m.sum()),
                     "accuracy": float(np.mean(predicted[m] == name))})
    table = pd.DataFrame(rows).sort_values("accuracy", kind="stable").reset_index(drop=True)
    return ClassificationResult(method, float(np.mean(predicted == y_test)), len(rows), len(y_train), len(y_test), table)


def svc_classification(embeddings: np.ndarray, identities: Sequence, *, min_images: int = 10,
                       test_size: float = 0.3, seed: int = 0) -> ClassificationResult:
    """Linear SVC on L2-normalised, then standardised, embeddings of identities with ≥ ``min_images`` images.

    The split is stratified per identity (each keeps ``test_size`` of its images for testing), seeded.
    Standardising (per dimension, fitted on the training faces) makes C = 1 mean the same for every
    embedder: dlib's L2-normalised descriptors sit close together, and an unscaled linear SVC with
    C = 1 under-fits them (0.77 vs 1.0 for nearest mean on LFW's 23 most-pictured pair people).
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x_tr, x_te, y_tr, y_te = _split_by_identity(embeddings, identities, min_images, test_size, seed)
    predicted = make_pipeline(StandardScaler(), SVC(kernel="linear", C=1.0)).fit(x_tr, y_tr).predict(x_te)
    return _classification_result("svc", y_tr, y_te, predicted)


def nearest_mean_classification(embeddings: np.ndarray, identities: Sequence, *, min_images: int = 10,
                                test_size: float = 0.3, seed: int = 0) -> ClassificationResult:
    """Each test face goes to the identity whose mean training embedding is nearest (euclidean, L2-normalised)."""
    x_tr, x_te, y_tr, y_te = _split_by_identity(embeddings, identities, min_images, test_size, seed)
    names = np.unique(y_tr)
    means = np.stack([x_tr[y_tr == n].mean(axis=0) for n in names])
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    d = np.linalg.norm(x_te[:, None, :] - means[None], axis=2)
    return _classification_result("nearest_mean", y_tr, y_te, names[np.argmin(d, axis=1)])


def embed_lfw_identities(model: str = "dlib", *, min_images: int = 10, max_identities: int | None = None,
                         max_images: int | None = None, lfw_root: str | os.PathLike | None = None,
                         progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (N, D) and identity names (N,) of LFW people with ≥ ``min_images`` images (cached like pairs).

    ``max_identities`` keeps the people with the most images first; ``max_images`` caps each person.
    """
    from crowdkit.common.datasets import lfw_people

    root = Path(lfw_root) if lfw_root is not None else config.data_path("lfw", "images_deepfunneled")
    people = lfw_people(root, min_images=min_images)
    order = sorted(people, key=lambda k: (-len(people[k]), k))[:max_identities]
    paths, names = [], []
    for name in order:
        chosen = sorted(people[name])[:max_images]
        paths += chosen
        names += [name] * len(chosen)
    emb, _, _ = embed_paths(model, paths, root=root, cache_name="lfw", progress=progress)
    return emb, np.asarray(names)


def predict_group_labels(classifier: object, pairs: PairEmbeddings, *, max_images: int = 10,
                         seed: int = 0) -> dict[str, str]:
    """Predicted group of every identity in ``pairs``, the lookup table's way: mean class probabilities over
    up to ``max_images`` images (``crowdkit.bias.ethnicity.sample_images``), then argmax.

    A classifier that reads dlib descriptors (``predict_features``, the probe) is applied to the cached
    descriptors of a ``"dlib"`` PairEmbeddings, so nothing is embedded twice; otherwise
    ``predict_proba(paths)`` runs on the images. These are predictions with a measured error, not facts.
    """
    from crowdkit.bias.ethnicity import CLASSES, sample_images

    by_name: dict[str, list[int]] = {}
    for i, name in enumerate(pairs.names.tolist()):
        by_name.setdefault(name, []).append(i)
    chosen = {}
    for name, rows in by_name.items():
        keep = {str(p) for p in sample_images([Path(str(pairs.paths[r])) for r in rows], name,
                                              max_images=max_images, seed=seed)}
        chosen[name] = [r for r in rows if str(Path(str(pairs.paths[r]))) in keep]
    rows = sorted(r for v in chosen.values() for r in v)
    if hasattr(classifier, "predict_features") and pairs.model == "dlib":
        proba = classifier.predict_features(pairs.embeddings[rows])
    else:
        proba = classifier.predict_proba([pairs.paths[r] for r in rows])
    at = {r: k for k, r in enumerate(rows)}
    return {name: CLASSES[int(np.argmax(proba[[at[r] for r in v]].mean(axis=0)))] for name, v in chosen.items()}
