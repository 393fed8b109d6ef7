"""The face pipeline: photos or video frames → detections → aligned chips → embeddings → matches.

This is what ``crowdkit find`` / ``crowdkit verify``, the engine notebook, the
crowd study and the bias study share::

    from crowdkit.engine.faces import find
    table = find(["obama.jpg"], "gallery/", detector="mtcnn", model="dlib")
    table[table.decision]

How a gallery is read
---------------------
A gallery is a folder of images (searched recursively), a list of image files,
one image file, or a video file (every ``stride``-th frame). An unreadable file
*inside a gallery* is skipped, logged and listed in :attr:`FaceSet.skipped`
(one bad file should not sink a search over thousands); a folder with no
readable image, or a video that cannot be decoded, is an error. A *query* photo
that cannot be read is always an error.

Caching
-------
Results are cached per source image, content-addressed: detections under the
sha256 of the image bytes (for a video frame: the video's sha256, the frame
index and the stride) plus the detector's name and options; embeddings under
that plus the embedder's name and version. Each image's entry is written
atomically as soon as its batch is computed, so an interrupted run resumes
where it stopped, and a second search over the same gallery only embeds the
new query. Entries live under ``config.cache_dir("faces")`` and are safe to
delete. Within one process the entries (and the file → sha256 map, keyed by
the file's size and modification time) are also kept in memory, and so is a
whole gallery's result, keyed by every file's path, size, mtime and inode: a
second search over an unchanged gallery only embeds the new query.

Recorded detections
-------------------
A folder written by :func:`crowdkit.engine.extract.extract_faces` (face crops plus
``crowdkit-faces.json``) carries its detections. For every image whose bytes
hash to a manifest row's sha256, searched with a detector of the row's name,
the recorded box and landmarks are used: no detector and no landmark model
run, the crop is only read, aligned and embedded. Other images (not listed,
or edited since) are detected as usual. Manifests are looked up in each
image's folder and up to three folders above it.
"""
from __future__ import annotations

import hashlib
import logging
import os
from stat import S_ISREG
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from crowdkit.common import config
from crowdkit.common.exceptions import (
    AmbiguousFaceError,
    ConfigError,
    CrowdkitError,
    DataNotFoundError,
    EmptyGalleryError,
    ImageReadError,
    NoFaceError,
)
from crowdkit.common.io import IMAGE_SUFFIXES, decode_image, sha256_bytes, sha256_file
from crowdkit.engine.match import METRICS, nearest, pairwise_distances

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from crowdkit.engine.detect import Detection, Detector
    from crowdkit.engine.embed import Embedder

logger = logging.getLogger(__name__)

#: How a query photo with several faces is handled.
ON_MANY = ("largest", "refuse")

#: Columns of the table :func:`find` returns, in order.
FIND_COLUMNS = (
    "source", "frame", "x1", "y1", "x2", "y2", "score",
    "distance", "closest_query", "threshold", "decision",
)


# --------------------------------------------------------------------------- dataclasses

@dataclass(frozen=True)
class Face:
    """One detected face: where it comes from and what the detector said.

    ``frame`` is the video frame index, 0 for a photo.
    """

    source: str
    frame: int
    detection: "Detection"

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


# --------------------------------------------------------------------------- backends

@lru_cache(maxsize=8)
def _detector_by_name(name: str, options: tuple[tuple[str, Any], ...]) -> "Detector":
    from crowdkit.engine.detect import get_detector

    return get_detector(name, **dict(options))


@lru_cache(maxsize=8)
def _embedder_by_name(name: str, options: tuple[tuple[str, Any], ...]) -> "Embedder":
    from crowdkit.engine.embed import get_embedder

    return get_embedder(name, **dict(options))


def resolve_detector(detector: "str | Detector", **options: Any) -> "Detector":
    """A detector instance; a name is built once per process and reused (models load once)."""
    if isinstance(detector, str):
        return _detector_by_name(detector, tuple(sorted(options.items())))
    return detector


def resolve_embedder(model: "str | Embedder", **options: Any) -> "Embedder":
    """An embedder instance; a name is built once per process and reused."""
    if isinstance(model, str):
        return _embedder_by_name(model, tuple(sorted(options.items())))
    return model


def default_threshold(embedder: "Embedder", metric: str) -> float:
    """The embedder's published or measured threshold for ``metric``."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    try:
        return float(embedder.thresholds[metric])
    except KeyError:
        known = ", ".join(sorted(embedder.thresholds)) or "(none)"
        raise ConfigError(
            f"model {embedder.name!r} has no default threshold for metric {metric!r} "
            f"(it has: {known}); pass a threshold explicitly"
        ) from None


def _detector_id(detector: "Detector") -> str:
    """Name plus options: what decides which faces a detector finds (part of every cache key)."""
    for attribute in ("cache_id", "cache_key"):
        value = getattr(detector, attribute, None)
        if isinstance(value, str) and value:
            return value
    options = getattr(detector, "options", None)
    if not isinstance(options, dict):
        # The backend's public, plain-valued attributes are its options (min_face_size, thresholds, ...);
        # batch size and device change speed, not results.
        options = {
            k: v for k, v in vars(detector).items()
            if not k.startswith("_") and k not in {"batch_size", "device", "name"}
            and isinstance(v, (int, float, str, bool, tuple))
        }
    if options:
        return detector.name + "(" + ",".join(f"{k}={options[k]!r}" for k in sorted(options)) + ")"
    return detector.name


def _embedder_id(embedder: "Embedder") -> str:
    return f"{embedder.name}@{getattr(embedder, 'version', '0')}/{embedder.template}"


# --------------------------------------------------------------------------- the per-image cache

class _FaceCache:
    """Per-image detections and embeddings, on disk (atomic, content-addressed) and in memory.

    The in-memory layer holds decoded values (lists of Detection, embedding
    arrays) keyed by namespace and content key, so a warm search in the same
    process touches neither the disk nor numpy's npz reader.
    """

    _memory: dict[tuple[str, str], Any] = {}
    _MEMORY_LIMIT = 500_000

    def __init__(self, detector: "Detector", embedder: "Embedder | None") -> None:
        from crowdkit.common.cache import ArrayCache

        det_id = _detector_id(detector)
        self._det_ns = "faces-detections:" + det_id
        self._det = ArrayCache(config.cache_dir("faces", "detections"), namespace=det_id)
        self._emb = None
        if embedder is not None:
            emb_ns = det_id + "|" + _embedder_id(embedder)
            self._emb_ns = "faces-embeddings:" + emb_ns
            self._emb = ArrayCache(config.cache_dir("faces", "embeddings"), namespace=emb_ns)
        self.hits = {"detections": 0, "embeddings": 0}
        self.reused = 0  # detections taken from a face manifest
        self.misses = {"detections": 0, "embeddings": 0}

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

    def get_detections(self, key: str) -> list["Detection"] | None:
        found = self._get(self._det, self._det_ns, key, "detections", _detections_from_arrays)
        return None if found is None else list(found)

    def put_detections(self, key: str, detections: list["Detection"]) -> None:
        self._det.put(key, _detections_to_arrays(detections))
        self._remember(self._det_ns, key, tuple(detections))

    def get_embeddings(self, key: str) -> np.ndarray | None:
        return self._get(self._emb, self._emb_ns, key, "embeddings",
                         lambda arrays: np.asarray(arrays["embeddings"], dtype=np.float32))

    def put_embeddings(self, key: str, embeddings: np.ndarray) -> None:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        self._emb.put(key, {"embeddings": embeddings})
        self._remember(self._emb_ns, key, embeddings)


def _detections_to_arrays(detections: list["Detection"]) -> dict[str, np.ndarray]:
    return {
        "boxes": np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4),
        "scores": np.array([d.score for d in detections], dtype=np.float64).reshape(-1),
        "landmarks": np.array([d.landmarks for d in detections], dtype=np.float32).reshape(-1, 5, 2),
    }


def _detections_from_arrays(arrays: dict[str, np.ndarray]) -> list["Detection"]:
    from crowdkit.engine.detect import Detection

    return [
        Detection(box=tuple(float(v) for v in box), score=float(score), landmarks=np.asarray(lm, dtype=np.float32))
        for box, score, lm in zip(arrays["boxes"], arrays["scores"], arrays["landmarks"])
    ]


# --------------------------------------------------------------------------- sources

#: File suffixes read as videos when given as a gallery.
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}

# (path, size, mtime_ns, inode) → sha256 of the bytes, so a second search in the same
# process does not re-read an unchanged gallery.
_FILE_HASHES: dict[tuple[str, int, int, int], str] = {}


@dataclass
class _Image:
    """One photo or video frame waiting to be processed."""

    source: str
    frame: int
    key: str
    load: Callable[[], np.ndarray] = field(repr=False)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _photo(path: str | os.PathLike) -> _Image:
    """A photo as an :class:`_Image`; raises :class:`ImageReadError` if it cannot be read.

    Its key is the sha256 of its bytes; an unchanged file (same size, mtime and
    inode) is not re-read in the same process.
    """
    path = os.fspath(path)
    try:
        stat = os.stat(path)
        if not S_ISREG(stat.st_mode):
            raise FileNotFoundError
        memo = (path, stat.st_size, stat.st_mtime_ns, stat.st_ino)
        key = _FILE_HASHES.get(memo)
        data = None if key is not None else _read_bytes(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path} does not exist or is not a file") from None
    except OSError as error:
        raise ImageReadError(f"{path} could not be read: {error.strerror or error}") from None

    if data is None:
        return _Image(path, 0, key, lambda: decode_image(_read_bytes(path), source=path))
    image = decode_image(data, source=path)  # check decodability now, so a bad file is reported where it is
    key = sha256_bytes(data)
    _FILE_HASHES[memo] = key  # remembered only once known to decode: a broken file stays skipped next time
    return _Image(path, 0, key, lambda: image)


def is_video(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES


def _list_images(folder: Path) -> list[str]:
    """Like :func:`crowdkit.common.io.list_images` (recursive, by suffix, same order) without a stat per file."""
    found: list[str] = []
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    pending.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                    found.append(entry.path)
    return sorted(found, key=lambda p: p.split(os.sep))


def _gallery_paths(gallery: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    if isinstance(gallery, (str, os.PathLike)):
        path = Path(gallery)
        if path.is_dir():
            paths = _list_images(path)
            if not paths:
                raise EmptyGalleryError(
                    f"gallery folder {path} holds no images (looked recursively for "
                    f"{', '.join(sorted(IMAGE_SUFFIXES))}); point --gallery at a folder of photos or a video"
                )
            return paths
        if not path.exists():
            raise DataNotFoundError(f"gallery {path} does not exist; give a folder of photos or a video file")
        return [path]
    paths = list(gallery)
    if not paths:
        raise EmptyGalleryError("the gallery is an empty list of photos")
    return paths


def check_gallery(
    gallery: str | os.PathLike | Sequence[str | os.PathLike],
) -> str | os.PathLike | list[str | os.PathLike]:
    """Fail early, without loading a model, for a missing or empty gallery or an undecodable video.

    Returns the gallery in the form :func:`detect_and_embed` reads fastest: the
    list of image paths for a folder, the video path for a video.
    """
    if isinstance(gallery, (str, os.PathLike)) and is_video(gallery):
        from crowdkit.engine.video import video_info

        video_info(gallery)
        return gallery
    return _gallery_paths(gallery)


def _video_images(path: Path, *, stride: int) -> tuple[int, Iterator[_Image]]:
    from crowdkit.engine.video import iter_frames, video_info

    info = video_info(path)
    stat = os.stat(path)
    memo = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    video_hash = _FILE_HASHES.get(memo) or sha256_file(path)
    _FILE_HASHES[memo] = video_hash
    total = max(0, -(-int(info.frame_count) // stride)) if info.frame_count else 0

    def frames() -> Iterator[_Image]:
        for frame in iter_frames(path, stride=stride):
            key = hashlib.sha256(f"{video_hash}:frame={frame.index}:stride={stride}".encode()).hexdigest()
            image = frame.image
            yield _Image(str(path), int(frame.index), key, lambda image=image: image)

    return total, frames()


def _iter_gallery(
    gallery: str | os.PathLike | Sequence[str | os.PathLike], *, stride: int, skipped: list[str]
) -> tuple[int, Iterator[_Image]]:
    """(expected count, images); unreadable photos are appended to ``skipped`` and left out."""
    if isinstance(gallery, (str, os.PathLike)) and is_video(gallery):
        return _video_images(Path(gallery), stride=stride)
    paths = _gallery_paths(gallery)

    def photos() -> Iterator[_Image]:
        for path in paths:
            try:
                yield _photo(path)
            except ImageReadError as error:
                skipped.append(f"{path}: {error}")
                logger.warning("skipping %s", error)

    return len(paths), photos()


def _chunks(items: Iterable[_Image], size: int) -> Iterator[list[_Image]]:
    chunk: list[_Image] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --------------------------------------------------------------------------- the pipeline

def _align(image: np.ndarray, detections: list["Detection"], template: str) -> list[np.ndarray]:
    from crowdkit.engine.align import align_face

    return [align_face(image, d.landmarks, template) for d in detections]


@dataclass
class _Batch:
    """One batch of images between detection and embedding."""

    items: list[_Image]
    detections: list[list["Detection"]]
    embeddings: list[np.ndarray | None]
    aligned: dict[int, list[np.ndarray]]
    to_embed: list[int]
    pending: Any = None  # a Future of the embedder's output for ``to_embed``


def _detect_and_align(chunk: list[_Image], *, detector: "Detector", template: str, cache: _FaceCache,
                      return_chips: bool, recorded: dict[str, list["Detection"]] | None = None) -> _Batch:
    """Stage 1: recorded, cached or fresh detections (cached as soon as found), then aligned chips where needed.

    ``recorded`` maps an image's content key to the detections a face manifest
    recorded for it (see :mod:`crowdkit.engine.extract`); those images skip the detector.
    """
    detections: list[list[Detection] | None] = []
    for item in chunk:
        found = recorded.get(item.key) if recorded else None
        if found is not None:
            cache.reused += 1
            detections.append(list(found))
        else:
            detections.append(cache.get_detections(item.key))
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
        i: _align(pixels[i], dets, template)
        for i, dets in enumerate(detections) if dets and (embeddings[i] is None or return_chips)
    }
    to_embed = [i for i, dets in enumerate(detections) if dets and embeddings[i] is None]
    return _Batch(chunk, detections, embeddings, aligned, to_embed)


def _finish_batch(batch: _Batch, cache: _FaceCache) -> None:
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


def _process(
    images: Iterable[_Image],
    *,
    detector: "Detector",
    embedder: "Embedder",
    cache: _FaceCache,
    batch_size: int,
    return_chips: bool,
    progress: Any,
    recorded: dict[str, list["Detection"]] | None = None,
    in_flight: int = 2,
) -> tuple[list[Face], list[np.ndarray], list[np.ndarray], int]:
    """Detect → align → embed, batch by batch, in order.

    Two stages overlap: while the embedder (its own worker processes) embeds
    earlier batches from helper threads, this thread reads, detects and aligns
    the next one. Up to ``in_flight`` batches are handed to the embedder at once,
    so its workers always have queued work (no idle gap between batches).
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    faces: list[Face] = []
    embeddings: list[np.ndarray] = []
    chips: list[np.ndarray] = []
    count = 0

    def collect(batch: _Batch) -> None:
        _finish_batch(batch, cache)
        for i, item in enumerate(batch.items):
            for j, detection in enumerate(batch.detections[i]):
                faces.append(Face(item.source, item.frame, detection))
                embeddings.append(batch.embeddings[i][j])
                if return_chips:
                    chips.append(batch.aligned[i][j])
        if progress is not None:
            progress.update(len(batch.items))
            progress.set_postfix(faces=len(faces), refresh=False)

    waiting: deque[_Batch] = deque()
    in_flight = max(1, int(in_flight))
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="crowdkit-embed") as embedding:
        try:
            for chunk in _chunks(images, batch_size):
                count += len(chunk)
                batch = _detect_and_align(chunk, detector=detector, template=embedder.template, cache=cache,
                                          return_chips=return_chips, recorded=recorded)
                if batch.to_embed:
                    stack = np.stack([chip for i in batch.to_embed for chip in batch.aligned[i]])
                    if not return_chips:
                        batch.aligned = {}  # the stack holds them; free the per-image copies
                    batch.pending = embedding.submit(embedder.embed, stack)
                waiting.append(batch)
                while len(waiting) > in_flight or (waiting and waiting[0].pending is None):
                    collect(waiting.popleft())
                while waiting and waiting[0].pending is not None and waiting[0].pending.done():
                    collect(waiting.popleft())
            while waiting:
                collect(waiting.popleft())
        except BaseException:
            for batch in waiting:
                if batch.pending is not None:
                    batch.pending.cancel()
            raise
    return faces, embeddings, chips, count


def _describe(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> str:
    """A short name for a gallery in messages (a list of photos is named by its common folder)."""
    if isinstance(sources, (str, os.PathLike)):
        return str(sources)
    paths = [str(p) for p in sources]
    try:
        folder = os.path.commonpath(paths) if paths else ""
    except ValueError:
        folder = ""
    return f"of {len(paths)} photo(s)" + (f" under {folder}" if folder else "")


def _empty_embeddings(embedder: "Embedder") -> np.ndarray:
    return np.zeros((0, int(getattr(embedder, "dim", 0))), dtype=np.float32)


def detect_and_embed(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    detector: "str | Detector" = "mtcnn",
    embedder: "str | Embedder" = "dlib",
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
    signature = None if return_chips else _gallery_signature(sources, stride)
    memo_key = None
    if signature is not None:
        memo_key = (_detector_id(detector), _embedder_id(embedder), signature)
        remembered = _GALLERIES.get(memo_key)
        if remembered is not None:
            logger.debug("gallery unchanged since the last search in this process: %d face(s)", len(remembered))
            return replace(remembered, faces=list(remembered.faces))  # the caller may change its own list
    cache = _FaceCache(detector, embedder)
    skipped: list[str] = []
    total, images = _iter_gallery(sources, stride=stride, skipped=skipped)
    recorded = _recorded_detections(sources, detector.name)
    warm_up = getattr(embedder, "warm_up", None)
    if callable(warm_up) and total >= 2 * batch_size:
        warm_up()  # worker processes load their model while the first batches are read
    bar = tqdm(total=total or None, desc=f"faces ({detector.name} → {embedder.name})", unit="img", disable=not progress)
    try:
        faces, embeddings, chips, count = _process(
            images, detector=detector, embedder=embedder, cache=cache,
            batch_size=batch_size, return_chips=return_chips, progress=bar, recorded=recorded,
            in_flight=int(getattr(embedder, "max_in_flight", 1) or 1),
        )
    finally:
        bar.close()
    logger.debug("cache hits %s, misses %s", cache.hits, cache.misses)
    if recorded:
        logger.info("reused %d recorded detection(s) from face manifest(s) (detector %r); %d image(s) "
                    "detected or read from the cache", cache.reused, detector.name, count - cache.reused)
    if skipped:
        logger.warning("skipped %d unreadable file(s) of %d: %s", len(skipped), total, "; ".join(skipped))
    if count == 0:
        if skipped:
            raise EmptyGalleryError(
                f"none of the {len(skipped)} file(s) in the gallery {_describe(sources)} could be read as an "
                "image: " + "; ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
            )
        raise EmptyGalleryError(f"the gallery {_describe(sources)} yielded no images or frames to search")
    result = FaceSet(
        faces=faces,
        embeddings=np.stack(embeddings).astype(np.float32) if embeddings else _empty_embeddings(embedder),
        chips=(np.stack(chips) if chips else None) if return_chips else None,
        images=count,
        skipped=tuple(skipped),
    )
    if memo_key is not None and not skipped:
        result.embeddings.setflags(write=False)
        if len(_GALLERIES) >= _GALLERY_LIMIT:
            _GALLERIES.clear()
        _GALLERIES[memo_key] = result
    return result


# Whole galleries searched in this process, keyed by detector, embedder and every file's
# (path, size, mtime, inode): a warm search over an unchanged gallery does no per-file work.
_GALLERIES: dict[tuple[str, str, tuple], FaceSet] = {}
_GALLERY_LIMIT = 4


def _gallery_signature(sources: str | os.PathLike | Sequence[str | os.PathLike], stride: int) -> tuple | None:
    """Every gallery file's (path, size, mtime_ns, inode), or None where that cannot tell a change (video, errors)."""
    try:
        if isinstance(sources, (str, os.PathLike)):
            if Path(sources).is_dir():
                paths: Sequence[str | os.PathLike] = _list_images(Path(sources))
                listing: tuple = (os.fspath(sources),)
            elif is_video(sources):
                return None
            else:
                paths, listing = [sources], ()
        else:
            paths, listing = list(sources), ()
        rows = []
        for path in paths:
            stat = os.stat(path)
            rows.append((os.fspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino))
    except OSError:
        return None
    folders = {os.path.dirname(row[0]) for row in rows}
    manifests = []
    for folder in _manifest_folders(folders):
        try:
            stat = os.stat(os.path.join(folder, _manifest_name()))
            manifests.append((folder, stat.st_size, stat.st_mtime_ns, stat.st_ino))
        except OSError:
            continue
    return (listing, stride, tuple(rows), tuple(sorted(manifests)))


def _manifest_name() -> str:
    from crowdkit.engine.extract import MANIFEST_NAME

    return MANIFEST_NAME


def _manifest_folders(folders: Iterable[str], levels: int = 3) -> list[str]:
    """Each folder and up to ``levels`` of its parents: where a face manifest may describe these images."""
    found: set[str] = set()
    for folder in folders:
        path = os.path.abspath(folder)
        for _ in range(levels + 1):
            if path in found:
                break
            found.add(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return sorted(found)


def _recorded_detections(
    sources: str | os.PathLike | Sequence[str | os.PathLike], detector_name: str
) -> dict[str, list["Detection"]]:
    """Content sha256 → the detections a face manifest (:mod:`crowdkit.engine.extract`) recorded with this detector."""
    from crowdkit.engine.extract import manifest_index

    if isinstance(sources, (str, os.PathLike)):
        path = Path(sources)
        if path.is_dir():
            folders = _manifest_folders([str(path)])
        elif path.is_file() and not is_video(path):
            folders = _manifest_folders([str(path.parent)])
        else:
            return {}
    else:
        folders = _manifest_folders({os.path.dirname(os.fspath(p)) for p in sources})
    recorded: dict[str, list[Detection]] = {}
    for folder in folders:
        for digest, rows in manifest_index(folder).items():
            if digest in recorded:
                continue
            rows = [row for row in rows if row.detector == detector_name]
            if rows:
                first = rows[0].file
                recorded[digest] = [row.detection() for row in rows if row.file == first]
    return recorded


def embed_query(
    path: str | os.PathLike,
    *,
    detector: "str | Detector" = "mtcnn",
    embedder: "str | Embedder" = "dlib",
    on_many: str = "largest",
    return_chips: bool = False,
) -> FaceSet:
    """The one face of a query photo, embedded (a :class:`FaceSet` of length 1).

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
    if path.is_dir() or (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES):
        raise ImageReadError(f"query {path} must be a photo, not a {'folder' if path.is_dir() else 'video'}")
    image = _photo(path)  # an unreadable photo fails before any model loads
    detector = resolve_detector(detector)
    embedder = resolve_embedder(embedder)
    cache = _FaceCache(detector, embedder)
    faces, embeddings, chips, _ = _process(
        [image], detector=detector, embedder=embedder, cache=cache,
        batch_size=1, return_chips=return_chips, progress=None,
    )
    if not faces:
        raise NoFaceError(
            f"no face found in query photo {path} by detector {detector.name!r}. "
            "Try another detector (e.g. --detector mtcnn or dlib-hog), a lower min_face_size, "
            "or a photo where the face is larger and frontal."
        )
    index = 0
    if len(faces) > 1:
        index = int(np.argmax([face.area for face in faces]))
        box = ", ".join(f"{v:.0f}" for v in faces[index].detection.box)
        if on_many == "refuse":
            raise AmbiguousFaceError(
                f"query photo {path} shows {len(faces)} faces (detector {detector.name!r}); crop it to the "
                "person you are looking for, or allow the largest face to be used (on_many='largest')"
            )
        logger.warning(
            "query photo %s shows %d faces; using the largest (box x1,y1,x2,y2 = %s), ignoring %d other(s)",
            path, len(faces), box, len(faces) - 1,
        )
    return FaceSet(
        faces=[faces[index]],
        embeddings=np.asarray(embeddings[index], dtype=np.float32)[None, :],
        chips=np.asarray(chips[index])[None] if return_chips else None,
        images=1,
    )


def embed_queries(
    paths: Sequence[str | os.PathLike], *, detector: "str | Detector", embedder: "str | Embedder", on_many: str = "largest"
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


def find(
    queries: Sequence[str | os.PathLike] | str | os.PathLike,
    gallery: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    detector: "str | Detector" = "mtcnn",
    model: "str | Embedder" = "dlib",
    metric: str = "cosine",
    threshold: float | None = None,
    stride: int = 1,
    on_many: str = "largest",
    batch_size: int = 32,
    progress: bool = True,
) -> "pd.DataFrame":
    """Search a gallery for the person in the query photo(s).

    Parameters
    ----------
    queries : one or more photos of the same person
    gallery : folder of images, list of images, image file or video file
    detector, model : backend names or instances
    metric : one of :data:`crowdkit.engine.match.METRICS`
    threshold : decision threshold; None uses the model's default for ``metric``
    stride : for a video gallery, every ``stride``-th frame

    Returns
    -------
    pandas.DataFrame
        one row per detected gallery face with columns :data:`FIND_COLUMNS`:
        ``source, frame, x1, y1, x2, y2, score`` (the detection),
        ``distance`` (to the closest query photo), ``closest_query`` (its path),
        ``threshold`` and ``decision`` (``distance <= threshold``). ``table.attrs``
        records ``metric``, ``model``, ``detector``, ``threshold_source``
        (``"default"`` or ``"given"``), ``images`` and ``skipped``.
    """
    import pandas as pd

    if isinstance(queries, (str, os.PathLike)):
        queries = [queries]
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    gallery = check_gallery(gallery)  # fail before loading models or embedding the query
    for query in queries:
        _photo(query)
    embedder = resolve_embedder(model)
    if threshold is None:
        threshold, threshold_source = default_threshold(embedder, metric), "default"
    else:
        threshold, threshold_source = float(threshold), "given"
    warm_up = getattr(embedder, "warm_up", None)
    if callable(warm_up) and not isinstance(gallery, (str, os.PathLike)) and len(gallery) >= 2 * batch_size:
        warm_up()  # the embedder's worker processes load their model while the query is detected
    detector = resolve_detector(detector)
    query_set = embed_queries(list(queries), detector=detector, embedder=embedder, on_many=on_many)
    gallery_set = detect_and_embed(
        gallery, detector=detector, embedder=embedder, stride=stride, batch_size=batch_size, progress=progress
    )
    distances, closest = nearest(query_set.embeddings, gallery_set.embeddings, metric=metric)
    boxes = np.array([f.detection.box for f in gallery_set.faces], dtype=np.float64).reshape(-1, 4)
    query_names = np.array([str(q) for q in queries], dtype=object)
    table = pd.DataFrame({
        "source": pd.Series([f.source for f in gallery_set.faces], dtype=object),
        "frame": np.array([f.frame for f in gallery_set.faces], dtype=np.int64),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
        "score": np.array([f.detection.score for f in gallery_set.faces], dtype=np.float64),
        "distance": distances,
        "closest_query": pd.Series(query_names[closest] if len(closest) else [], dtype=object),
        "threshold": np.full(len(distances), threshold),
        "decision": distances <= threshold,
    }, columns=list(FIND_COLUMNS))
    table.attrs.update({
        "metric": metric, "model": embedder.name, "detector": detector.name,
        "threshold": threshold, "threshold_source": threshold_source,
        "images": gallery_set.images, "skipped": list(gallery_set.skipped),
    })
    return table


def verify(
    a: str | os.PathLike,
    b: str | os.PathLike,
    *,
    model: "str | Embedder" = "dlib",
    detector: "str | Detector" = "mtcnn",
    metric: str = "cosine",
    threshold: float | None = None,
    on_many: str = "largest",
) -> Verification:
    """Whether photos ``a`` and ``b`` show the same person (each must show a face)."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; known metrics: {', '.join(METRICS)}")
    _photo(a), _photo(b)  # unreadable photos fail before any model loads
    detector = resolve_detector(detector)
    embedder = resolve_embedder(model)
    limit = default_threshold(embedder, metric) if threshold is None else float(threshold)
    ea = embed_query(a, detector=detector, embedder=embedder, on_many=on_many).embeddings
    eb = embed_query(b, detector=detector, embedder=embedder, on_many=on_many).embeddings
    distance = float(pairwise_distances(ea, eb, metric=metric)[0, 0])
    return Verification(distance=distance, threshold=limit, verified=bool(distance <= limit), metric=metric, model=embedder.name)


def forget() -> None:
    """Drop what this process remembers (built models, cached entries, file hashes); disk caches stay."""
    _detector_by_name.cache_clear()
    _embedder_by_name.cache_clear()
    _FaceCache._memory.clear()
    _FILE_HASHES.clear()
    _GALLERIES.clear()
    from crowdkit.engine.extract import _MANIFESTS

    _MANIFESTS.clear()


# --------------------------------------------------------------------------- detectors side by side

@dataclass(frozen=True)
class DetectorRun:
    """One detector on one photo: what it found and how long it took, or why it could not run."""

    name: str
    detections: list["Detection"]
    seconds: float
    error: str | None = None


def compare_detectors(image: np.ndarray, names: Sequence[str], **options: Any) -> list[DetectorRun]:
    """Run each named detector on ``image`` (RGB uint8); a backend that cannot run is reported, not raised.

    The time is the detection alone (the model is built first; a fast detector
    runs twice and the second, warmed-up call is timed). A backend whose weights are missing offline, or whose
    package is not installed, comes back with ``error`` set to the message of
    the :class:`~crowdkit.common.exceptions.CrowdkitError` it raised.
    """
    import time

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
