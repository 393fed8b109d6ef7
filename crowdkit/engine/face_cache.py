"""The per-image face cache: detections and embeddings of each photo or frame, content-addressed.

Detections are stored under the image's content key (see
:class:`crowdkit.engine.gallery.GalleryImage`) in the namespace of the
detector's :attr:`~crowdkit.engine.detection.Detector.cache_id`; embeddings
under that plus the embedder's :attr:`~crowdkit.engine.embed.Embedder.cache_id`.
Each entry is written atomically as soon as its batch is computed, so an
interrupted run resumes where it stopped. Entries live under
``config.cache_dir("faces")`` and are safe to delete.

Within one process the decoded entries are also kept in memory, so a warm
search touches neither the disk nor numpy's npz reader
(:meth:`FaceCache.forget` drops them).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from crowdkit.common import config
from crowdkit.common.cache import ArrayCache
from crowdkit.engine.detection import Detection, Detector
from crowdkit.engine.embedding import Embedder


class FaceCache:
    """Per-image detections and embeddings, on disk (atomic, content-addressed) and in memory.

    Parameters
    ----------
    detector : the detector whose detections are cached
    embedder : the embedder whose embeddings are cached, or None (detections only)

    Attributes
    ----------
    hits, misses : ``{"detections": n, "embeddings": n}`` lookups answered or not
    reused : detections taken from a face manifest instead (counted by the pipeline)
    """

    _memory: dict[tuple[str, str], Any] = {}
    _MEMORY_LIMIT = 500_000

    def __init__(self, detector: Detector, embedder: Embedder | None) -> None:
        det_id = detector.cache_id
        self._det_ns = "faces-detections:" + det_id
        self._det = ArrayCache(config.cache_dir("faces", "detections"), namespace=det_id)
        self._emb = None
        if embedder is not None:
            emb_ns = det_id + "|" + embedder.cache_id
            self._emb_ns = "faces-embeddings:" + emb_ns
            self._emb = ArrayCache(config.cache_dir("faces", "embeddings"), namespace=emb_ns)
        self.hits = {"detections": 0, "embeddings": 0}
        self.reused = 0
        self.misses = {"detections": 0, "embeddings": 0}

    @classmethod
    def forget(cls) -> None:
        """Drop the entries kept in memory (the disk cache stays)."""
        cls._memory.clear()

    def _get(self, cache: Any, namespace: str, key: str, kind: str, decode: Callable[[dict], Any]) -> Any:
        value = self._memory.get((namespace, key))
        if value is None:
            arrays = cache.get(key)
            if arrays is not None:
                value = decode(arrays)
                self._remember(namespace, key, value)
        if value is None:
            self.misses[kind] += 1
        else:
            self.hits[kind] += 1
        return value

    def _remember(self, namespace: str, key: str, value: Any) -> None:
        if len(self._memory) >= self._MEMORY_LIMIT:
            self._memory.clear()
        self._memory[(namespace, key)] = value

    def get_detections(self, key: str) -> list[Detection] | None:
        """The cached detections of the image with content key ``key``, or None."""
        found = self._get(self._det, self._det_ns, key, "detections", _detections_from_arrays)
        return None if found is None else list(found)

    def put_detections(self, key: str, detections: list[Detection]) -> None:
        self._det.put(key, _detections_to_arrays(detections))
        self._remember(self._det_ns, key, tuple(detections))

    def get_embeddings(self, key: str) -> np.ndarray | None:
        """The cached float32 (N, D) embeddings of the image's N faces, or None."""
        return self._get(self._emb, self._emb_ns, key, "embeddings",
                         lambda arrays: np.asarray(arrays["embeddings"], dtype=np.float32))

    def put_embeddings(self, key: str, embeddings: np.ndarray) -> None:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        self._emb.put(key, {"embeddings": embeddings})
        self._remember(self._emb_ns, key, embeddings)


def _detections_to_arrays(detections: list[Detection]) -> dict[str, np.ndarray]:
    return {
        "boxes": np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4),
        "scores": np.array([d.score for d in detections], dtype=np.float64).reshape(-1),
        "landmarks": np.array([d.landmarks for d in detections], dtype=np.float32).reshape(-1, 5, 2),
    }


def _detections_from_arrays(arrays: dict[str, np.ndarray]) -> list[Detection]:
    return [
        Detection(box=tuple(float(v) for v in box), score=float(score), landmarks=np.asarray(lm, dtype=np.float32))
        for box, score, lm in zip(arrays["boxes"], arrays["scores"], arrays["landmarks"])
    ]
