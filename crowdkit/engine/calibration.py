"""A decision threshold calibrated for one model and metric on LFW View 2, by its 10-fold protocol.

A model's published threshold (deepface's 0.07 for dlib with cosine, say) was
tuned for another pipeline than ours. :func:`calibrate_threshold` measures one
for this pipeline: LFW's ``pairs.txt`` (10 folds of same- and different-person
pairs) is embedded with the same detect → align → embed pipeline a search uses
(:func:`crowdkit.engine.pipeline.detect_and_embed`), and per fold the
best-accuracy threshold is chosen on the other nine folds and applied to the
held-out one. The calibrated threshold is the mean of the ten fold thresholds;
the ten held-out accuracies give the accuracy ± std it is reported with::

    calibration = calibrate_threshold(model="dlib", metric="cosine", detector="mtcnn", pairs=600)
    calibration.threshold, calibration.accuracy, calibration.to_frame()

Embedding all 6,000 pairs (about 7,700 photos) takes a while on a small CPU,
so ``pairs`` takes that many pairs in all, the same number from each fold
(half same-person, half different-person, in file order). The result is cached
as JSON under ``$CROWDKIT_HOME/cache/calibration``, keyed by model, metric,
detector (their cache ids), the pairs file's sha256 and the number of pairs;
the photos' faces are cached per image by the pipeline as usual.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from crowdkit.common import config
from crowdkit.common.datasets import read_lfw_pairs
from crowdkit.common.exceptions import ConfigError, EmptyGalleryError
from crowdkit.common.io import sha256_file, write_json_atomic
from crowdkit.common.metrics import best_accuracy_threshold

log = logging.getLogger(__name__)

#: Pairs in LFW View 2 (10 folds × 300 same + 300 different).
ALL_PAIRS = 6000


@dataclass(frozen=True)
class Calibration:
    """A threshold calibrated on LFW pairs, with where it comes from and how well it separates them.

    Attributes
    ----------
    model, metric, detector : the pipeline it was measured with
    pairs_file, pairs_sha256 : the pairs file read and its sha256
    pairs_asked, pairs_used : pairs taken from the file; pairs with a face found in both photos
    threshold : mean of the ten fold thresholds
    fold_thresholds, fold_accuracies : per held-out fold
    accuracy, accuracy_std : mean and (population) std of the held-out accuracies
    default_threshold : the model's published default for ``metric`` (deepface's), for comparison
    """

    model: str
    metric: str
    detector: str
    pairs_file: str
    pairs_sha256: str
    pairs_asked: int
    pairs_used: int
    threshold: float
    fold_thresholds: tuple[float, ...]
    fold_accuracies: tuple[float, ...]
    accuracy: float
    accuracy_std: float
    default_threshold: float

    @property
    def n_folds(self) -> int:
        return len(self.fold_thresholds)

    def describe(self) -> str:
        """One line: threshold, model, metric, pairs and the 10-fold accuracy."""
        return (f"{self.threshold:.4f}, calibrated for {self.model} + {self.metric} on {self.pairs_used} LFW View 2 "
                f"pairs ({self.n_folds}-fold accuracy {self.accuracy:.3f} ± {self.accuracy_std:.3f})")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["fold_thresholds"] = list(self.fold_thresholds)
        values["fold_accuracies"] = list(self.fold_accuracies)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Calibration":
        return cls(**{**values, "fold_thresholds": tuple(values["fold_thresholds"]),
                      "fold_accuracies": tuple(values["fold_accuracies"])})

    def to_frame(self):
        """The calibration as a one-column table (``value``) for a page."""
        import pandas as pd

        rows = {"model": self.model, "metric": self.metric, "detector": self.detector,
                "pairs file": Path(self.pairs_file).name, "pairs file sha256": self.pairs_sha256,
                "pairs asked": self.pairs_asked, "pairs used (a face in both photos)": self.pairs_used,
                "calibrated threshold (mean of the folds)": round(self.threshold, 4),
                f"{self.n_folds}-fold accuracy": f"{self.accuracy:.3f} ± {self.accuracy_std:.3f}",
                "model's default threshold (deepface)": self.default_threshold}
        return pd.Series(rows, name="value", dtype=object).to_frame()


# --------------------------------------------------------------------------- the protocol, numpy only


def k_fold_thresholds(distances: Sequence[float], same: Sequence[bool], fold: Sequence[int]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per fold: the best-accuracy threshold of the other folds, and its accuracy on this one.

    Returns
    -------
    (thresholds, accuracies) : two float arrays, one value per fold (``0..max(fold)``);
        NaN for a fold without pairs.
    """
    distances = np.asarray(distances, dtype=np.float64).ravel()
    same = np.asarray(same, dtype=bool).ravel()
    fold = np.asarray(fold, dtype=np.int64).ravel()
    if not distances.shape == same.shape == fold.shape:
        raise ValueError(f"distances, same and fold differ in length: {distances.size}, {same.size}, {fold.size}")
    n_folds = int(fold.max()) + 1 if fold.size else 0
    thresholds, accuracies = np.full(n_folds, math.nan), np.full(n_folds, math.nan)
    for k in range(n_folds):
        held_out = fold == k
        if not held_out.any() or held_out.all():
            continue
        thresholds[k], _ = best_accuracy_threshold(distances[~held_out], same[~held_out])
        accuracies[k] = float(np.mean((distances[held_out] <= thresholds[k]) == same[held_out]))
    return thresholds, accuracies


def select_pairs(same: np.ndarray, fold: np.ndarray, n_pairs: int | None) -> np.ndarray:
    """Indices of ``n_pairs`` pairs (all if None): the same number per fold, half of each class, in file order."""
    if n_pairs is None or n_pairs >= len(same):
        return np.arange(len(same))
    n_folds = int(fold.max()) + 1
    per_class = n_pairs // (2 * n_folds)
    if per_class < 1:
        raise ConfigError(f"calibration needs at least {2 * n_folds} pairs (one of each class per fold), "
                          f"got {n_pairs}")
    chosen = [np.flatnonzero((fold == k) & (same == label))[:per_class]
              for k in range(n_folds) for label in (True, False)]
    return np.sort(np.concatenate(chosen))


# --------------------------------------------------------------------------- embedding the pairs


def _face_per_photo(face_set: Any) -> dict[str, int]:
    """Per photo, the index of its face nearest the photo's centre (LFW photos are centred on their person)."""
    best: dict[str, tuple[float, int]] = {}
    for index, face in enumerate(face_set.faces):
        x1, y1, x2, y2 = face.detection.box
        off_centre = math.hypot((x1 + x2) / 2 - 125.0, (y1 + y2) / 2 - 125.0)
        if face.source not in best or off_centre < best[face.source][0]:
            best[face.source] = (off_centre, index)
    return {source: index for source, (_, index) in best.items()}


def _pair_distances(paths1: Sequence[Path], paths2: Sequence[Path], *, detector: Any, embedder: Any, metric: str,
                    progress: bool) -> np.ndarray:
    """Distance of each pair's two faces (NaN where either photo shows no face)."""
    from crowdkit.engine.match import pairwise_distances
    from crowdkit.engine.pipeline import detect_and_embed

    photos = sorted({str(p) for p in (*paths1, *paths2)})
    face_set = detect_and_embed(photos, detector=detector, embedder=embedder, batch_size=16, progress=progress)
    chosen = _face_per_photo(face_set)
    distances = np.full(len(paths1), math.nan)
    for i, (a, b) in enumerate(zip(map(str, paths1), map(str, paths2))):
        if a in chosen and b in chosen:
            pair = face_set.embeddings[[chosen[a], chosen[b]]]
            distances[i] = float(pairwise_distances(pair[:1], pair[1:], metric=metric)[0, 0])
    return distances


def _cache_path(*, embedder: Any, detector: Any, metric: str, pairs_sha256: str, n_pairs: int | None) -> Path:
    key = json.dumps([embedder.cache_id, detector.cache_id, metric, pairs_sha256, n_pairs])
    name = f"{embedder.name}-{metric}-{detector.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    return config.cache_dir("calibration") / name


def calibrate_threshold(*, model: str | Any = "dlib", metric: str = "cosine", detector: str | Any = "mtcnn",
                        pairs: int | None = 600, pairs_file: str | Path | None = None,
                        progress: bool = False) -> Calibration:
    """The threshold for ``model`` + ``metric`` calibrated on LFW View 2 by the 10-fold protocol (cached).

    Parameters
    ----------
    model, detector : backend names or instances (:func:`crowdkit.engine.backends.resolve_embedder`)
    metric : one of :data:`crowdkit.engine.match.METRICS`
    pairs : how many pairs to use in all (see :func:`select_pairs`); None: all 6,000
    pairs_file : LFW's ``pairs.txt`` (default: the data folder's)
    progress : show a progress bar while the photos are embedded

    Raises
    ------
    DataNotFoundError
        the pairs file or one of its photos is missing.
    EmptyGalleryError
        no pair has a face in both photos.
    """
    from crowdkit.engine.backends import default_threshold, resolve_detector, resolve_embedder
    from crowdkit.engine.match import check_metric

    check_metric(metric)
    detector, embedder = resolve_detector(detector), resolve_embedder(model)
    pair_set = read_lfw_pairs(pairs_file)
    source = Path(pairs_file) if pairs_file is not None else config.data_path("lfw", "pairs.txt")
    digest = sha256_file(source)
    cache = _cache_path(embedder=embedder, detector=detector, metric=metric, pairs_sha256=digest, n_pairs=pairs)
    if cache.is_file():
        return Calibration.from_dict(json.loads(cache.read_text(encoding="utf-8")))
    chosen = select_pairs(pair_set.same, pair_set.fold, pairs)
    distances = _pair_distances([pair_set.paths1[i] for i in chosen], [pair_set.paths2[i] for i in chosen],
                                detector=detector, embedder=embedder, metric=metric, progress=progress)
    found = ~np.isnan(distances)
    if not found.any():
        raise EmptyGalleryError(f"calibration: {detector.name} found no face in both photos of any of the "
                                f"{len(chosen)} LFW pairs; try another detector")
    thresholds, accuracies = k_fold_thresholds(distances[found], pair_set.same[chosen][found],
                                               pair_set.fold[chosen][found])
    calibration = Calibration(
        model=embedder.name, metric=metric, detector=detector.name, pairs_file=str(source), pairs_sha256=digest,
        pairs_asked=int(len(chosen)), pairs_used=int(found.sum()), threshold=float(np.nanmean(thresholds)),
        fold_thresholds=tuple(float(t) for t in thresholds), fold_accuracies=tuple(float(a) for a in accuracies),
        accuracy=float(np.nanmean(accuracies)), accuracy_std=float(np.nanstd(accuracies)),
        default_threshold=default_threshold(embedder, metric))
    write_json_atomic(cache, calibration.to_dict())
    log.info("calibrated %s + %s on %d LFW pairs: %s", embedder.name, metric, calibration.pairs_used,
             calibration.describe())
    return calibration
