"""The face pipeline: gallery images → detections → aligned chips → embeddings, batch by batch, cached.

    from crowdkit.engine.pipeline import detect_and_embed
    faces = detect_and_embed("gallery/", detector="mtcnn", embedder="dlib")
    faces.embeddings.shape        # (N, 128), one row per detected face

Per image, the detections come from a face manifest (:mod:`crowdkit.engine.manifest`:
the recorded box and landmarks of an extracted crop, no detector run), from
the per-image cache (:mod:`crowdkit.engine.face_cache`) or from the detector;
the embeddings from the cache or from the embedder. Two stages overlap: while
the embedder embeds earlier batches from helper threads, this thread reads,
detects and aligns the next one.

Within one process a whole gallery's result is also remembered, keyed by
every file's path, size, mtime and inode (and the manifests beside them): a
second search over an unchanged gallery does no per-file work
(:func:`crowdkit.engine.faces.forget` drops everything this process remembers).
"""
from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from crowdkit.common.exceptions import ConfigError, EmptyGalleryError
from crowdkit.engine.align import align_face
from crowdkit.engine.backends import resolve_detector, resolve_embedder
from crowdkit.engine.detection import Detection, Detector
from crowdkit.engine.embedding import Embedder
from crowdkit.engine.face_cache import FaceCache
from crowdkit.engine.gallery import (
    GalleryImage,
    GallerySource,
    chunks,
    describe_gallery,
    file_signature,
    is_video,
    iter_gallery,
)
from crowdkit.engine.listing import list_folder
from crowdkit.engine.manifest import manifest_signatures, recorded_detections
from crowdkit.common.io import show_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    """One detected face: where it comes from and what the detector said.

    ``frame`` is the video frame index, 0 for a photo.
    """

    source: str
    frame: int
    detection: Detection

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.detection.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass(frozen=True)
class FaceSet:
    """Faces and their embeddings, row-aligned.

    Attributes
    ----------
    faces : list of :class:`Face`, N entries
    embeddings : float32 array (N, D)
    chips : uint8 array (N, S, S, 3) of the aligned faces, or None when not asked for
    images : how many photos or frames were looked at
    skipped : ``"path: reason"`` for each gallery file that could not be read
    """

    faces: list[Face]
    embeddings: np.ndarray
    chips: np.ndarray | None = None
    images: int = 0
    skipped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.faces)


# --------------------------------------------------------------------------- one batch

@dataclass
class _Batch:
    """One batch of images between detection and embedding."""

    items: list[GalleryImage]
    detections: list[list[Detection]]
    embeddings: list[np.ndarray | None]
    aligned: dict[int, list[np.ndarray]]
    to_embed: list[int]
    pending: Future | None = None  # the embedder's output for ``to_embed``


def _known_detections(chunk: list[GalleryImage], cache: FaceCache,
                      recorded: dict[str, list[Detection]] | None) -> list[list[Detection] | None]:
    """Each image's recorded (manifest) or cached detections; None where the detector must run."""
    detections: list[list[Detection] | None] = []
    for item in chunk:
        found = recorded.get(item.key) if recorded else None
        if found is not None:
            cache.reused += 1
            detections.append(list(found))
        else:
            detections.append(cache.get_detections(item.key))
    return detections


def _detect_and_align(chunk: list[GalleryImage], *, detector: Detector, template: str, cache: FaceCache,
                      return_chips: bool, recorded: dict[str, list[Detection]] | None = None) -> _Batch:
    """Stage 1: recorded, cached or fresh detections (cached as soon as found), then aligned chips where needed.

    ``recorded`` maps an image's content key to the detections a face manifest
    recorded for it; those images skip the detector.
    """
    detections = _known_detections(chunk, cache, recorded)
    embeddings: list[np.ndarray | None] = [
        cache.get_embeddings(item.key) if dets is not None else None for item, dets in zip(chunk, detections)
    ]
    needs_pixels = [
        dets is None or (emb is None and len(dets) > 0) or (return_chips and len(dets) > 0)
        for dets, emb in zip(detections, embeddings)
    ]
    pixels = {i: chunk[i].load() for i, need in enumerate(needs_pixels) if need}
    to_detect = [i for i, dets in enumerate(detections) if dets is None]
    if to_detect:
        for i, found in zip(to_detect, detector.detect_batch([pixels[i] for i in to_detect])):
            detections[i] = list(found)
            cache.put_detections(chunk[i].key, detections[i])
    aligned = {
        i: [align_face(pixels[i], d.landmarks, template) for d in dets]
        for i, dets in enumerate(detections) if dets and (embeddings[i] is None or return_chips)
    }
    to_embed = [i for i, dets in enumerate(detections) if dets and embeddings[i] is None]
    return _Batch(chunk, detections, embeddings, aligned, to_embed)


def _submit(batch: _Batch, pool: ThreadPoolExecutor | None, embedder: Embedder, return_chips: bool) -> None:
    """Stage 2's start: hand the batch's new chips to the embedder on a helper thread (``pool``), or embed
    them on this thread when ``pool`` is None."""
    if batch.to_embed:
        stack = np.stack([chip for i in batch.to_embed for chip in batch.aligned[i]])
        if not return_chips:
            batch.aligned = {}  # the stack holds them; free the per-image copies
        if pool is not None:
            batch.pending = pool.submit(embedder.embed, stack)
        else:
            batch.pending = Future()
            batch.pending.set_result(embedder.embed(stack))


def _finish_batch(batch: _Batch, cache: FaceCache) -> None:
    """Stage 2's end: collect the embedder's output and cache each image's embeddings."""
    if not batch.to_embed:
        return
    vectors = np.asarray(batch.pending.result(), dtype=np.float32)
    start = 0
    for i in batch.to_embed:
        n = len(batch.detections[i])
        batch.embeddings[i] = vectors[start:start + n]
        start += n
        cache.put_embeddings(batch.items[i].key, batch.embeddings[i])


class _FaceCollector:
    """Gathers the faces, embeddings and chips of finished batches, in order."""

    def __init__(self, cache: FaceCache, *, return_chips: bool, progress: Any) -> None:
        self.cache, self.return_chips, self.progress = cache, return_chips, progress
        self.faces: list[Face] = []
        self.embeddings: list[np.ndarray] = []
        self.chips: list[np.ndarray] = []
        self.images = 0

    def collect(self, batch: _Batch) -> None:
        _finish_batch(batch, self.cache)
        self.images += len(batch.items)
        for i, item in enumerate(batch.items):
            for j, detection in enumerate(batch.detections[i]):
                self.faces.append(Face(item.source, item.frame, detection))
                self.embeddings.append(batch.embeddings[i][j])
                if self.return_chips:
                    self.chips.append(batch.aligned[i][j])
        if self.progress is not None:
            self.progress.update(len(batch.items))
            self.progress.set_postfix(faces=len(self.faces), refresh=False)

    def face_set(self, dim: int) -> FaceSet:
        embeddings = (np.stack(self.embeddings).astype(np.float32) if self.embeddings
                      else np.zeros((0, int(dim)), dtype=np.float32))
        chips = (np.stack(self.chips) if self.chips else None) if self.return_chips else None
        return FaceSet(faces=self.faces, embeddings=embeddings, chips=chips, images=self.images)


def _marking_last(items: Iterable[Any]) -> Iterator[tuple[Any, bool]]:
    """``(item, is_last)`` for each of ``items``, read one ahead."""
    iterator = iter(items)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for following in iterator:
        yield current, False
        current = following
    yield current, True


def embed_images(
    images: Iterable[GalleryImage],
    *,
    detector: Detector,
    embedder: Embedder,
    cache: FaceCache,
    batch_size: int,
    return_chips: bool = False,
    progress: Any = None,
    recorded: dict[str, list[Detection]] | None = None,
) -> FaceSet:
    """Detect → align → embed ``images``, batch by batch, in order (the images' faces as one :class:`FaceSet`).

    While the embedder (its own worker processes) embeds earlier batches from
    helper threads, this thread reads, detects and aligns the next one. Up to
    ``embedder.max_in_flight`` batches are handed to the embedder at once, so
    its workers always have queued work (no idle gap between batches). The
    last batch (the only one, for a query photo) is embedded on this thread:
    nothing is left to overlap it with, and torch runs a small batch on the
    thread that made its intra-op thread team at about half the time it takes
    from a helper thread (1 chip: 4.7 against 11.4 ms here).
    ``progress`` is a tqdm bar (or None); ``recorded`` maps content keys to
    detections read from a face manifest.
    """
    collector = _FaceCollector(cache, return_chips=return_chips, progress=progress)
    in_flight = max(1, int(embedder.max_in_flight))
    waiting: deque[_Batch] = deque()
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="crowdkit-embed") as pool:
        try:
            for chunk, last in _marking_last(chunks(images, batch_size)):
                batch = _detect_and_align(chunk, detector=detector, template=embedder.template, cache=cache,
                                          return_chips=return_chips, recorded=recorded)
                if last:  # nothing left to overlap with: finish the others, then embed this one right here
                    while waiting:
                        collector.collect(waiting.popleft())
                _submit(batch, None if last else pool, embedder, return_chips)
                waiting.append(batch)
                while len(waiting) > in_flight or (waiting and waiting[0].pending is None):
                    collector.collect(waiting.popleft())
                while waiting and waiting[0].pending is not None and waiting[0].pending.done():
                    collector.collect(waiting.popleft())
            while waiting:
                collector.collect(waiting.popleft())
        except BaseException:
            for batch in waiting:
                if batch.pending is not None:
                    batch.pending.cancel()
            raise
    return collector.face_set(embedder.dim)


# --------------------------------------------------------------------------- a whole gallery

# Whole galleries searched in this process, keyed by detector, embedder and every file's
# (path, size, mtime, inode): a warm search over an unchanged gallery does no per-file work.
_GALLERIES: dict[tuple[str, str, tuple], FaceSet] = {}
_GALLERY_LIMIT = 4


def _gallery_signature(sources: GallerySource, stride: int) -> tuple | None:
    """Every gallery file's (path, size, mtime_ns, inode), or None where that cannot tell a change (video, errors)."""
    try:
        if isinstance(sources, (str, os.PathLike)) and Path(sources).is_dir():
            # a folder's images may be described by a manifest in it or above it (manifest.recorded_detections)
            rows = [file_signature(path) for path in list_folder(sources)]
            return ((os.fspath(sources),), stride, tuple(rows), manifest_signatures([os.fspath(sources)]))
        if isinstance(sources, (str, os.PathLike)) and is_video(sources):
            return None
        paths = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
        rows = [file_signature(path) for path in paths]
    except OSError:
        return None
    return ((), stride, tuple(rows), manifest_signatures({os.path.dirname(row[0]) for row in rows}))


def _gallery_memo_key(sources: GallerySource, detector: Detector, embedder: Embedder, stride: int) -> tuple | None:
    signature = _gallery_signature(sources, stride)
    return None if signature is None else (detector.cache_id, embedder.cache_id, signature)


def _remembered(memo_key: tuple) -> FaceSet:
    logger.debug("gallery unchanged since the last search in this process: %d face(s)", len(_GALLERIES[memo_key]))
    return replace(_GALLERIES[memo_key], faces=list(_GALLERIES[memo_key].faces))  # the caller may change its list


def remembered_gallery(sources: GallerySource, *, detector: Detector, embedder: Embedder,
                       stride: int = 1) -> FaceSet | None:
    """What :func:`detect_and_embed` would return for an unchanged gallery searched before in this process, or
    None (never searched, changed since, or a video). Only stats files: safe to run beside other work."""
    memo_key = _gallery_memo_key(sources, detector, embedder, stride)
    return _remembered(memo_key) if memo_key in _GALLERIES else None


def _remember_gallery(memo_key: tuple, result: FaceSet) -> None:
    result.embeddings.setflags(write=False)
    if len(_GALLERIES) >= _GALLERY_LIMIT:
        _GALLERIES.clear()
    _GALLERIES[memo_key] = result


def _report(sources: GallerySource, result: FaceSet, total: int, skipped: list[str], cache: FaceCache,
            recorded: dict[str, list[Detection]], detector: Detector) -> None:
    """Log what the run reused and skipped; raise :class:`EmptyGalleryError` if it read no image."""
    logger.debug("cache hits %s, misses %s", cache.hits, cache.misses)
    if recorded:
        logger.info("reused %d recorded detection(s) from face manifest(s) (detector %r); %d image(s) "
                    "detected or read from the cache", cache.reused, detector.name, result.images - cache.reused)
    if skipped:
        logger.warning("skipped %d unreadable file(s) of %d: %s", len(skipped), total, "; ".join(skipped))
    if result.images == 0:
        if skipped:
            raise EmptyGalleryError(
                f"none of the {len(skipped)} file(s) in the gallery {describe_gallery(sources)} could be read as "
                "an image: " + "; ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
            )
        raise EmptyGalleryError(f"the gallery {describe_gallery(sources)} yielded no images or frames to search")


def detect_and_embed(
    sources: GallerySource,
    *,
    detector: str | Detector = "mtcnn",
    embedder: str | Embedder = "dlib",
    stride: int = 1,
    batch_size: int = 32,
    return_chips: bool = False,
    progress: bool = True,
) -> FaceSet:
    """Detect, align and embed every face in a gallery, reusing cached results.

    Parameters
    ----------
    sources : a folder of images (recursive), a list of image files, an image file or a video file
    detector, embedder : backend names (built once per process) or instances
    stride : for a video, use every ``stride``-th frame
    batch_size : images per detection/embedding batch (and per cache flush)
    return_chips : also return the aligned chips, uint8 (N, S, S, 3)
    progress : show a tqdm bar

    Returns
    -------
    FaceSet
        one entry per detected face, in source order (folder: sorted paths; video: frame order).

    Raises
    ------
    EmptyGalleryError
        no images in the folder, or none of them readable, or a video without frames.
    VideoReadError
        a video that cannot be opened or decoded.
    """
    from tqdm.auto import tqdm

    if stride < 1:
        raise ConfigError(f"stride must be ≥ 1, got {stride}")
    detector = resolve_detector(detector)
    embedder = resolve_embedder(embedder)
    memo_key = None if return_chips else _gallery_memo_key(sources, detector, embedder, stride)
    if memo_key in _GALLERIES:
        return _remembered(memo_key)
    cache = FaceCache(detector, embedder)
    skipped: list[str] = []
    total, images = iter_gallery(sources, stride=stride, skipped=skipped)
    recorded = recorded_detections(sources, detector.name)
    if total >= 2 * batch_size:
        embedder.warm_up()  # worker processes load their model while the first batches are read
    with tqdm(total=total or None, desc=f"faces ({detector.name} → {embedder.name})", unit="img",
              disable=not show_progress(progress)) as bar:
        found = embed_images(images, detector=detector, embedder=embedder, cache=cache, batch_size=batch_size,
                             return_chips=return_chips, progress=bar, recorded=recorded)
    _report(sources, found, total, skipped, cache, recorded, detector)
    result = replace(found, skipped=tuple(skipped))
    if memo_key is not None and not skipped:
        _remember_gallery(memo_key, result)
    return result


def forget_galleries() -> None:
    """Drop the whole-gallery results remembered in this process."""
    _GALLERIES.clear()
