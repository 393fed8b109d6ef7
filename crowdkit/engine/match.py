"""Distances between face embeddings, and query-vs-gallery search.

Three metrics, as deepface names them:

``cosine``
    ``1 - cos(a, b)``: 0 for the same direction, 2 for opposite ones.
``euclidean``
    the plain L2 distance between the raw embeddings.
``euclidean_l2``
    the L2 distance after scaling each embedding to unit length
    (``sqrt(2 * cosine)``), so it does not depend on the embeddings' norms.

Everything is vectorised numpy: one (N, M) matrix per call, no Python loop
over pairs. A query may have several photos of the same person; a gallery face
is then as close to the query as it is to the *closest* of those photos
(:func:`nearest`).

Example::

    >>> import numpy as np
    >>> a = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> pairwise_distances(a, a, metric="cosine").round(3).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crowdkit.common.exceptions import ConfigError

#: The metric names every function here accepts.
METRICS = ("cosine", "euclidean", "euclidean_l2")
#: The distances each metric can take, (low, high): a decision threshold outside them decides nothing.
DISTANCE_RANGES = {"cosine": (0.0, 2.0), "euclidean": (0.0, float("inf")), "euclidean_l2": (0.0, 2.0)}

_EPS = 1e-12


def check_metric(metric: str) -> None:
    """Raise :class:`ConfigError` naming the known metrics unless ``metric`` is one of :data:`METRICS`."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")


def check_threshold(metric: str, value: float) -> float:
    """``value`` as a float if it is a possible ``metric`` distance (see :data:`DISTANCE_RANGES`).

    Raises
    ------
    ConfigError
        the metric is unknown, or the value is not a number or lies outside the
        metric's range; the message names the metric, the value and the range.

    Examples
    --------
    >>> check_threshold("cosine", 0.4)
    0.4
    >>> check_threshold("cosine", -1)
    Traceback (most recent call last):
    ...
    crowdkit.common.exceptions.ConfigError: a cosine threshold must be between 0 and 2 (cosine distances lie there), got -1
    """
    check_metric(metric)
    low, high = DISTANCE_RANGES[metric]
    span = f"between {low:g} and {high:g}" if math.isfinite(high) else f"{low:g} or more"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"a {metric} threshold must be a number {span}, got {value!r}") from None
    if isinstance(value, bool) or not low <= number <= high:  # NaN fails the comparison too
        raise ConfigError(f"a {metric} threshold must be {span} ({metric} distances lie there), got {value!r}")
    return number


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ConfigError(f"{name} must be a (N, D) array of embeddings, got shape {x.shape}")
    return x


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Scale each row of ``x`` (N, D) to unit length (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, _EPS)


def pairwise_distances(a: np.ndarray, b: np.ndarray, *, metric: str) -> np.ndarray:
    """Distances between every row of ``a`` and every row of ``b``.

    Parameters
    ----------
    a : array (N, D) (a single (D,) vector is treated as N = 1)
    b : array (M, D)
    metric : ``"cosine"``, ``"euclidean"`` or ``"euclidean_l2"``

    Returns
    -------
    float64 array (N, M), never negative.
    """
    check_metric(metric)
    a = _as_matrix(a, "a")
    b = _as_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"embedding sizes differ: a has {a.shape[1]} dimensions, b has {b.shape[1]}")
    if metric == "cosine":
        return np.clip(1.0 - l2_normalize(a) @ l2_normalize(b).T, 0.0, 2.0)
    if metric == "euclidean_l2":
        a, b = l2_normalize(a), l2_normalize(b)
    # |a-b|^2 = |a|^2 + |b|^2 - 2ab, clipped at 0 against rounding.
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0.0))


def nearest(query_embeddings: np.ndarray, gallery: np.ndarray, *, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Each gallery face's distance to the closest query photo.

    Parameters
    ----------
    query_embeddings : array (Q, D), one row per photo of the person searched for
    gallery : array (G, D)
    metric : one of :data:`METRICS`

    Returns
    -------
    distances : float64 (G,)
        ``min`` over the query photos.
    closest : int64 (G,)
        the index (into ``query_embeddings``) of that closest photo.
    """
    query_embeddings = _as_matrix(query_embeddings, "query_embeddings")
    gallery = _as_matrix(gallery, "gallery")
    if len(query_embeddings) == 0:
        raise ConfigError("no query embeddings: give at least one query photo")
    if len(gallery) == 0:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    d = pairwise_distances(query_embeddings, gallery, metric=metric)  # (Q, G)
    closest = d.argmin(axis=0)
    return d[closest, np.arange(d.shape[1])], closest.astype(np.int64)


@dataclass(frozen=True)
class Match:
    """One gallery face compared with a query.

    ``index`` points into the gallery; ``closest_query`` into the query photos.
    """

    index: int
    distance: float
    closest_query: int
    threshold: float

    @property
    def decision(self) -> bool:
        """True when the face is taken to be the query person (distance ≤ threshold)."""
        return self.distance <= self.threshold


def match(query_embeddings: np.ndarray, gallery: np.ndarray, *, metric: str, threshold: float) -> list[Match]:
    """:func:`nearest` as a list of :class:`Match`, in gallery order."""
    distances, closest = nearest(query_embeddings, gallery, metric=metric)
    return [Match(int(i), float(d), int(q), float(threshold)) for i, (d, q) in enumerate(zip(distances, closest))]
