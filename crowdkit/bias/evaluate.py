"""LFW on embeddings: embed the View 2 pairs with dlib or a trained checkpoint, per-group error rates, identification.

The protocol itself (10 folds, accuracy thresholds from the other nine folds,
VAL @ FAR, ROC, AUC, EER) is :mod:`crowdkit.bias.protocol`, on distances; this
module produces those distances from images, each unique image embedded once
and cached.

Typical use::

    pairs = embed_lfw_pairs("dlib")                 # cached after the first call
    result = pairs.protocol()                       # crowdkit.bias.protocol.LFWResult
    result.accuracy, result.std, result.val, result.auc
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from crowdkit.bias.checkpoints import load_model
from crowdkit.bias.classifier import CLASSES, EthnicityClassifier
from crowdkit.bias.descriptors import CENTRE_FALLBACK, METRIC, SECOND_DETECTOR, describe_photos
from crowdkit.bias.descriptors import VERSION as DLIB_VERSION
from crowdkit.bias.lookup import sample_images
from crowdkit.bias.protocol import FAR_TARGET, LFWResult, limit_pairs, lfw_protocol, paired_distances
from crowdkit.common import config
from crowdkit.common.cache import merge_embedding_table, read_embedding_table
from crowdkit.common.exceptions import ConfigError, DataNotFoundError

log = logging.getLogger(__name__)


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
        found = describe_photos(paths, progress=progress)
        return found.embeddings, found.status, METRIC
    key = _model_key(model)
    keys = [str(Path(p).relative_to(root)) for p in paths]
    cache_file = config.cache_dir(cache_name) / f"{key}.npz"
    trained = load_model(model)

    def compute_trained(idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
        return trained.embed_paths([paths[i] for i in idx], progress=progress)

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
    from scipy.spatial.distance import cdist

    return _classification_result("nearest_mean", y_tr, y_te, names[np.argmin(cdist(x_te, means), axis=1)])


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


def predict_group_labels(classifier: EthnicityClassifier, pairs: Any, *, max_images: int = 10,
                         seed: int = 0) -> dict[str, str]:
    """Predicted group of every identity in ``pairs``, the lookup table's way: mean class probabilities over
    up to ``max_images`` images (:func:`crowdkit.bias.lookup.sample_images`), then argmax.

    ``pairs``: a :class:`PairEmbeddings` or a :class:`crowdkit.bias.lfw_images.LFWImages` (anything with
    ``names``, ``paths``, ``embeddings`` and ``model``).

    A classifier that reads dlib descriptors (``reads_descriptors``, the probe) is applied to the cached
    descriptors of a ``"dlib"`` PairEmbeddings, so nothing is embedded twice; otherwise
    ``predict_proba(paths)`` runs on the images. These are predictions with a measured error, not facts.
    """
    by_name: dict[str, list[int]] = {}
    for i, name in enumerate(pairs.names.tolist()):
        by_name.setdefault(name, []).append(i)
    chosen = {}
    for name, rows in by_name.items():
        keep = {str(p) for p in sample_images([Path(str(pairs.paths[r])) for r in rows], name,
                                              max_images=max_images, seed=seed)}
        chosen[name] = [r for r in rows if str(Path(str(pairs.paths[r]))) in keep]
    rows = sorted(r for v in chosen.values() for r in v)
    if classifier.reads_descriptors and pairs.model == "dlib":
        proba = classifier.predict_features(pairs.embeddings[rows])
    else:
        proba = classifier.predict_proba([pairs.paths[r] for r in rows])
    at = {r: k for k, r in enumerate(rows)}
    return {name: CLASSES[int(np.argmax(proba[[at[r] for r in v]].mean(axis=0)))] for name, v in chosen.items()}
