"""Searching for a person: :func:`find` over a gallery, :func:`verify` for a pair, the query photos' faces.

This is what ``crowdkit find`` / ``crowdkit verify``, the engine notebook, the
crowd study and the bias study share::

    from crowdkit.engine.faces import find
    result = find(["obama.jpg"], "gallery/", detector="mtcnn", model="dlib")
    table = result.to_frame()
    table[table.decision]

A gallery is read as :mod:`crowdkit.engine.gallery` describes (a folder, a
list of photos, a photo or a video; unreadable gallery files are skipped and
reported) and searched through :func:`crowdkit.engine.pipeline.detect_and_embed`
(per-image cache, recorded detections of extracted crops). A *query* photo
that cannot be read is always an error. :func:`forget` drops what this
process remembers (models, cache entries, file hashes, whole galleries); the
disk caches stay.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from crowdkit.common.exceptions import AmbiguousFaceError, ConfigError, ImageReadError, NoFaceError
from crowdkit.engine.backends import default_threshold, forget_backends, resolve_detector, resolve_embedder
from crowdkit.engine.detect import DEFAULT_DETECTOR
from crowdkit.engine.detection import Detector
from crowdkit.engine.embedding import Embedder
from crowdkit.engine.face_cache import FaceCache
from crowdkit.engine.gallery import VIDEO_SUFFIXES, GallerySource, check_gallery, forget_file_hashes, read_photo
from crowdkit.engine.listing import forget_listings
from crowdkit.engine.manifest import forget_manifests
from crowdkit.engine.match import check_metric, check_threshold, nearest, pairwise_distances
from crowdkit.engine.pipeline import Face, FaceSet, detect_and_embed, embed_images, forget_galleries, remembered_gallery

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

logger = logging.getLogger(__name__)

#: How a query photo with several faces is handled.
ON_MANY = ("largest", "refuse")

#: Columns of the table :meth:`FindResult.to_frame` returns, in order.
FIND_COLUMNS = (
    "source", "frame", "x1", "y1", "x2", "y2", "score",
    "distance", "closest_query", "threshold", "decision",
)


@dataclass(frozen=True, eq=False)
class FindResult:
    """What :func:`find` found: one row per detected gallery face, and how it was decided.

    Attributes
    ----------
    matches : pandas.DataFrame
        columns :data:`FIND_COLUMNS`: ``source, frame, x1, y1, x2, y2, score`` (the detection),
        ``distance`` (to the closest query photo), ``closest_query`` (its path),
        ``threshold`` and ``decision`` (``distance <= threshold``).
    threshold : the decision threshold
    threshold_source : ``"default"`` (the model's for the metric) or ``"given"``
    metric, model, detector : the distance and the backends' names
    queries : the query photos' paths
    query_faces : the face used in each query photo
    images : photos or frames looked at in the gallery
    skipped : ``"path: reason"`` for each gallery file that could not be read
    """

    matches: "pd.DataFrame"
    threshold: float
    threshold_source: str
    metric: str
    model: str
    detector: str
    queries: tuple[str, ...]
    query_faces: tuple[Face, ...]
    images: int
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.matches)

    @property
    def match_count(self) -> int:
        """Gallery faces taken to be the query person."""
        return int(self.matches["decision"].sum())

    def to_frame(self) -> "pd.DataFrame":
        """The matches table (a copy: columns :data:`FIND_COLUMNS`, one row per gallery face)."""
        return self.matches.copy()


@dataclass(frozen=True)
class Verification:
    """Whether two photos show the same person (``distance <= threshold``)."""

    distance: float
    threshold: float
    verified: bool
    metric: str
    model: str

    def to_dict(self) -> dict[str, Any]:
        """The three fields ``crowdkit verify --json`` prints."""
        return {"distance": self.distance, "threshold": self.threshold, "verified": self.verified}


# --------------------------------------------------------------------------- query photos

def _check_query_path(path: Path) -> None:
    if path.is_dir() or (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES):
        raise ImageReadError(f"query {path} must be a photo, not a {'folder' if path.is_dir() else 'video'}")


def _pick_one_face(found: FaceSet, path: Path, detector: Detector, on_many: str) -> int:
    """The index of the face a query photo stands for (the largest), or an error saying why there is none."""
    if not found.faces:
        raise NoFaceError(
            f"no face found in query photo {path} by detector {detector.name!r}. "
            "Try another detector (e.g. --detector mtcnn or dlib-hog), a lower min_face_size, "
            "or a photo where the face is larger and frontal."
        )
    if len(found.faces) == 1:
        return 0
    index = int(np.argmax([face.area for face in found.faces]))
    if on_many == "refuse":
        raise AmbiguousFaceError(
            f"query photo {path} shows {len(found.faces)} faces (detector {detector.name!r}); crop it to the "
            "person you are looking for, or allow the largest face to be used (on_many='largest')"
        )
    box = ", ".join(f"{v:.0f}" for v in found.faces[index].detection.box)
    logger.warning(
        "query photo %s shows %d faces; using the largest (box x1,y1,x2,y2 = %s), ignoring %d other(s)",
        path, len(found.faces), box, len(found.faces) - 1,
    )
    return index


def embed_query(
    path: str | os.PathLike,
    *,
    detector: str | Detector = DEFAULT_DETECTOR,
    embedder: str | Embedder = "dlib",
    on_many: str = "largest",
    return_chips: bool = False,
) -> FaceSet:
    """The one face of a query photo, embedded (a :class:`~crowdkit.engine.pipeline.FaceSet` of length 1).

    Parameters
    ----------
    on_many : ``"largest"`` uses the largest face of a photo showing several (and logs
        which one); ``"refuse"`` raises :class:`AmbiguousFaceError`.

    Raises
    ------
    ImageReadError
        the file is missing or not an image.
    NoFaceError
        the detector finds no face (the message suggests what to try).
    AmbiguousFaceError
        several faces and ``on_many="refuse"``.
    """
    if on_many not in ON_MANY:
        raise ConfigError(f"on_many must be one of {', '.join(ON_MANY)}, got {on_many!r}")
    path = Path(path)
    _check_query_path(path)
    image = read_photo(path)  # an unreadable photo fails before any model loads
    detector = resolve_detector(detector)
    embedder = resolve_embedder(embedder)
    found = embed_images([image], detector=detector, embedder=embedder, cache=FaceCache(detector, embedder),
                         batch_size=1, return_chips=return_chips)
    index = _pick_one_face(found, path, detector, on_many)
    return FaceSet(
        faces=[found.faces[index]],
        embeddings=np.asarray(found.embeddings[index], dtype=np.float32)[None, :],
        chips=np.asarray(found.chips[index])[None] if return_chips else None,
        images=1,
    )


def embed_queries(
    paths: Sequence[str | os.PathLike], *, detector: str | Detector, embedder: str | Embedder, on_many: str = "largest"
) -> FaceSet:
    """:func:`embed_query` for each photo of the person searched for, stacked (Q, D)."""
    if not paths:
        raise ConfigError("give at least one query photo")
    sets = [embed_query(p, detector=detector, embedder=embedder, on_many=on_many) for p in paths]
    return FaceSet(
        faces=[s.faces[0] for s in sets],
        embeddings=np.concatenate([s.embeddings for s in sets]),
        images=len(sets),
    )


# --------------------------------------------------------------------------- search and verify

def _matches_table(gallery_set: FaceSet, distances: np.ndarray, closest: np.ndarray,
                   queries: Sequence[str | os.PathLike], threshold: float) -> "pd.DataFrame":
    """The :data:`FIND_COLUMNS` table: each gallery face's detection, distance and decision."""
    import pandas as pd

    boxes = np.array([f.detection.box for f in gallery_set.faces], dtype=np.float64).reshape(-1, 4)
    query_names = np.array([str(q) for q in queries], dtype=object)
    return pd.DataFrame({
        "source": pd.Series([f.source for f in gallery_set.faces], dtype=object),
        "frame": np.array([f.frame for f in gallery_set.faces], dtype=np.int64),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
        "score": np.array([f.detection.score for f in gallery_set.faces], dtype=np.float64),
        "distance": distances,
        "closest_query": pd.Series(query_names[closest] if len(closest) else [], dtype=object),
        "threshold": np.full(len(distances), threshold),
        "decision": distances <= threshold,
    }, columns=list(FIND_COLUMNS))


def _embed_both(queries: Sequence[str | os.PathLike], gallery: GallerySource, *, detector: Detector,
                embedder: Embedder, on_many: str, stride: int, batch_size: int, progress: bool) -> tuple[FaceSet, FaceSet]:
    """The query photos' faces and the gallery's. Whether the gallery is one this process searched before,
    unchanged (a stat per file), is checked on a helper thread while the query photos are embedded."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crowdkit-gallery-check") as pool:
        remembered = pool.submit(remembered_gallery, gallery, detector=detector, embedder=embedder, stride=stride)
        query_set = embed_queries(queries, detector=detector, embedder=embedder, on_many=on_many)
        gallery_set = remembered.result()
    if gallery_set is None:
        gallery_set = detect_and_embed(
            gallery, detector=detector, embedder=embedder, stride=stride, batch_size=batch_size, progress=progress
        )
    return query_set, gallery_set


def _worth_warming_up(gallery: GallerySource, batch_size: int) -> bool:
    """A folder, or a list of at least two batches: the search will embed enough to start workers early."""
    if isinstance(gallery, (str, os.PathLike)):
        return Path(gallery).is_dir()
    return len(gallery) >= 2 * batch_size


def find(
    queries: Sequence[str | os.PathLike] | str | os.PathLike,
    gallery: GallerySource,
    *,
    detector: str | Detector = DEFAULT_DETECTOR,
    model: str | Embedder = "dlib",
    metric: str = "cosine",
    threshold: float | None = None,
    stride: int = 1,
    on_many: str = "largest",
    batch_size: int = 32,
    progress: bool = True,
) -> FindResult:
    """Search a gallery for the person in the query photo(s).

    Parameters
    ----------
    queries : one or more photos of the same person
    gallery : folder of images, list of images, image file or video file
    detector, model : backend names or instances
    metric : one of :data:`crowdkit.engine.match.METRICS`
    threshold : decision threshold; None uses the model's default for ``metric``. A given one must be a
        possible distance (:func:`crowdkit.engine.match.check_threshold`), else ConfigError.
    stride : for a video gallery, every ``stride``-th frame

    Returns
    -------
    FindResult
        the matches table (:meth:`FindResult.to_frame`) with the threshold, metric,
        backends, queries and what was skipped.
    """
    queries = [queries] if isinstance(queries, (str, os.PathLike)) else list(queries)
    check_metric(metric)
    given = threshold is not None
    if given:
        threshold = check_threshold(metric, threshold)
    gallery = check_gallery(gallery)  # fail before loading models or embedding the query
    for query in queries:
        read_photo(query)
    embedder = resolve_embedder(model)
    threshold = threshold if given else default_threshold(embedder, metric)
    if _worth_warming_up(gallery, batch_size):
        embedder.warm_up()  # the embedder's worker processes (if any) load their model while the query is detected
    detector = resolve_detector(detector)
    query_set, gallery_set = _embed_both(queries, gallery, detector=detector, embedder=embedder, on_many=on_many,
                                         stride=stride, batch_size=batch_size, progress=progress)
    distances, closest = nearest(query_set.embeddings, gallery_set.embeddings, metric=metric)
    return FindResult(
        matches=_matches_table(gallery_set, distances, closest, queries, threshold),
        threshold=threshold, threshold_source="given" if given else "default",
        metric=metric, model=embedder.name, detector=detector.name,
        queries=tuple(str(q) for q in queries), query_faces=tuple(query_set.faces),
        images=gallery_set.images, skipped=tuple(gallery_set.skipped),
    )


def verify(
    a: str | os.PathLike,
    b: str | os.PathLike,
    *,
    model: str | Embedder = "dlib",
    detector: str | Detector = DEFAULT_DETECTOR,
    metric: str = "cosine",
    threshold: float | None = None,
    on_many: str = "largest",
) -> Verification:
    """Whether photos ``a`` and ``b`` show the same person (each must show a face).

    A given ``threshold`` must be a possible ``metric`` distance (:func:`crowdkit.engine.match.check_threshold`).
    """
    check_metric(metric)
    if threshold is not None:
        threshold = check_threshold(metric, threshold)
    read_photo(a), read_photo(b)  # unreadable photos fail before any model loads
    detector = resolve_detector(detector)
    embedder = resolve_embedder(model)
    limit = default_threshold(embedder, metric) if threshold is None else float(threshold)
    ea = embed_query(a, detector=detector, embedder=embedder, on_many=on_many).embeddings
    eb = embed_query(b, detector=detector, embedder=embedder, on_many=on_many).embeddings
    distance = float(pairwise_distances(ea, eb, metric=metric)[0, 0])
    return Verification(distance=distance, threshold=limit, verified=bool(distance <= limit), metric=metric, model=embedder.name)


def forget() -> None:
    """Drop what this process remembers (built models, cached entries, file hashes, galleries, manifests).

    The disk caches stay: the next search reads them instead of computing again.
    """
    forget_backends()
    FaceCache.forget()
    forget_file_hashes()
    forget_galleries()
    forget_listings()
    forget_manifests()
