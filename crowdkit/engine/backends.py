"""Backends by name, built once per process: detectors, embedders, their default thresholds, detectors side by side.

A name (``"mtcnn"``, ``"dlib"``) is built on first use and reused, so a
model loads once per process; an instance is used as given::

    from crowdkit.engine.backends import resolve_detector, resolve_embedder, default_threshold
    detector = resolve_detector("mtcnn")
    embedder = resolve_embedder("dlib")
    default_threshold(embedder, "cosine")    # 0.07

A backend's identity in cache keys is its ``cache_id``
(:attr:`crowdkit.engine.detection.Detector.cache_id`,
:attr:`crowdkit.engine.embed.Embedder.cache_id`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from crowdkit.common.exceptions import ConfigError, CrowdkitError
from crowdkit.engine.detect import get_detector
from crowdkit.engine.detect_dlib import forget_shape_predictors
from crowdkit.engine.detection import Detection, Detector
from crowdkit.engine.embed import get_embedder
from crowdkit.engine.embedding import Embedder
from crowdkit.engine.match import check_metric


@lru_cache(maxsize=8)
def _detector_by_name(name: str, options: tuple[tuple[str, Any], ...]) -> Detector:
    return get_detector(name, **dict(options))


@lru_cache(maxsize=8)
def _embedder_by_name(name: str, options: tuple[tuple[str, Any], ...]) -> Embedder:
    return get_embedder(name, **dict(options))


def resolve_detector(detector: str | Detector, **options: Any) -> Detector:
    """A detector instance; a name is built once per process and reused (models load once)."""
    if isinstance(detector, str):
        return _detector_by_name(detector, tuple(sorted(options.items())))
    return detector


def resolve_embedder(model: str | Embedder, **options: Any) -> Embedder:
    """An embedder instance; a name is built once per process and reused."""
    if isinstance(model, str):
        return _embedder_by_name(model, tuple(sorted(options.items())))
    return model


def forget_backends() -> None:
    """Drop the detectors and embedders built by name in this process, and dlib's shape predictors they share
    (the next use builds or loads them again)."""
    _detector_by_name.cache_clear()
    _embedder_by_name.cache_clear()
    forget_shape_predictors()


def default_threshold(embedder: Embedder, metric: str) -> float:
    """The embedder's published or measured threshold for ``metric``."""
    check_metric(metric)
    try:
        return float(embedder.thresholds[metric])
    except KeyError:
        known = ", ".join(sorted(embedder.thresholds)) or "(none)"
        raise ConfigError(
            f"model {embedder.name!r} has no default threshold for metric {metric!r} "
            f"(it has: {known}); pass a threshold explicitly"
        ) from None


# --------------------------------------------------------------------------- detectors side by side

@dataclass(frozen=True)
class DetectorRun:
    """One detector on one photo: what it found and how long it took, or why it could not run."""

    name: str
    detections: list[Detection]
    seconds: float
    error: str | None = None


def compare_detectors(image: np.ndarray, names: Sequence[str], **options: Any) -> list[DetectorRun]:
    """Run each named detector on ``image`` (RGB uint8); a backend that cannot run is reported, not raised.

    The time is the detection alone (the model is built first; a fast detector
    runs twice and the second, warmed-up call is timed). A backend whose weights are missing offline, or whose
    package is not installed, comes back with ``error`` set to the message of
    the :class:`~crowdkit.common.exceptions.CrowdkitError` it raised.
    """
    runs = []
    for name in names:
        try:
            detector = resolve_detector(name, **options.get(name, {}))
            start = time.perf_counter()
            found = detector.detect(image)
            seconds = time.perf_counter() - start
            if seconds < 2.0:  # the first call pays for lazy initialisation; time a second one
                start = time.perf_counter()
                found = detector.detect(image)
                seconds = time.perf_counter() - start
            runs.append(DetectorRun(name, list(found), seconds))
        except CrowdkitError as error:
            runs.append(DetectorRun(name, [], float("nan"), f"{type(error).__name__}: {error}"))
    return runs
