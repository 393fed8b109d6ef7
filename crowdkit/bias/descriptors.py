"""dlib descriptors of dataset photos: one face per photo, on every core, cached by content.

The bias study's three steps read the same 128-d descriptors: the ethnicity
probe (UTKFace, and the CelebA identities it labels), the triplet-trained
projection head (CelebA) and the LFW evaluation. They all come from this one
pipeline — dlib's own, as dlib measured its 99.38 % on LFW:

HOG (no upsampling, then 1× upsampling if nothing was found) → facenet-pytorch's
MTCNN if HOG still finds nothing (it finds turned and tilted faces HOG misses)
→ the face nearest the image centre (dataset photos are face-centred) → dlib's
5-point shape → its 150-px chip (padding 0.25) → ResNet descriptor. A photo
where no detector finds a face is embedded from a fixed central box and
flagged, so callers can count or skip it.

Descriptors are cached in one npz file keyed by the sha256 of each file's
bytes (byte-identical duplicates, common in UTKFace, are embedded once), so
whichever notebook embeds a photo first, the others read it. Missing photos
are embedded by worker processes, one per core; the cache is flushed every
few hundred photos, so an interrupted run resumes where it stopped.

Example::

    >>> from crowdkit.bias.descriptors import describe_photos
    >>> found = describe_photos(paths)                # doctest: +SKIP
    >>> found.embeddings.shape, found.has_face.mean()  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from crowdkit.common import config
from crowdkit.common.cache import merge_embedding_table, read_embedding_table
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import read_image, sha256_file, show_progress

logger = logging.getLogger(__name__)

#: Pipeline version: bump when anything above changes, it names the cache file.
VERSION = "dlib-photo-1"

#: Status code of each photo: face found by HOG; no face anywhere (central box embedded);
#: no face and skipped (NaN row); face found only by the second detector (MTCNN).
FACE_FOUND, CENTRE_FALLBACK, NO_FACE, SECOND_DETECTOR = 0, 1, 2, 3

#: Where the face sits in an LFW deep-funneled 250 × 250 image (dlib HOG's usual box), as fractions.
CENTRE_BOX = (0.308, 0.356, 0.724, 0.768)

#: dlib's distance and decision threshold for these descriptors.
METRIC, THRESHOLD = "euclidean", 0.6


@dataclass(frozen=True, eq=False)
class PhotoDescriptors:
    """Descriptors float32 (N, 128) and a status code per photo, int8 (N,), in the order asked for."""

    embeddings: np.ndarray
    status: np.ndarray

    @property
    def has_face(self) -> np.ndarray:
        """bool (N,): a detector found a face (HOG or MTCNN)."""
        return np.isin(self.status, (FACE_FOUND, SECOND_DETECTOR))

    def __len__(self) -> int:
        return len(self.status)


class DlibPhotoEmbedder:
    """The pipeline of the module docstring, for one photo at a time, in this process.

    ``fallback="centre"`` embeds :data:`CENTRE_BOX` when no face is found;
    ``"skip"`` returns a NaN row with status :data:`NO_FACE`.
    """

    dim = 128

    def __init__(self, *, fallback: str = "centre") -> None:
        import dlib

        from crowdkit.common import weights

        if fallback not in ("centre", "skip"):
            raise ConfigError(f"fallback must be 'centre' or 'skip', got {fallback!r}")
        self.fallback = fallback
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._mtcnn = None  # built on first need: most photos never need it
        self._shape = dlib.shape_predictor(str(weights.require("dlib-shape5")))
        self._net = dlib.face_recognition_model_v1(str(weights.require("dlib-resnet")))

    def _faces(self, image: np.ndarray) -> tuple[list, int]:
        rects = list(self._hog(image, 0)) or list(self._hog(image, 1))
        if rects:
            return rects, FACE_FOUND
        if self._mtcnn is None:
            from crowdkit.engine.detect import get_detector

            self._mtcnn = get_detector("mtcnn")
        rects = [self._dlib.rectangle(*(int(round(v)) for v in d.box)) for d in self._mtcnn.detect(image)]
        return rects, SECOND_DETECTOR

    def embed_image(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """(128,) float32 descriptor and a status code for one RGB uint8 image."""
        rects, status = self._faces(image)
        h, w = image.shape[:2]
        if rects:
            cy, cx = h / 2, w / 2
            rect = min(rects, key=lambda r: (r.center().x - cx) ** 2 + (r.center().y - cy) ** 2)
        elif self.fallback == "centre":
            x1, y1, x2, y2 = CENTRE_BOX
            rect = self._dlib.rectangle(int(x1 * w), int(y1 * h), int(x2 * w), int(y2 * h))
            status = CENTRE_FALLBACK
        else:
            return np.full(self.dim, np.nan, dtype=np.float32), NO_FACE
        chip = self._dlib.get_face_chip(image, self._shape(image, rect), size=150, padding=0.25)
        return np.asarray(self._net.compute_face_descriptor(chip), dtype=np.float32), status

    def embed_paths(self, paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (N, 128) and statuses (N,) of image files."""
        out = np.empty((len(paths), self.dim), dtype=np.float32)
        status = np.empty(len(paths), dtype=np.int8)
        for i, path in enumerate(paths):
            out[i], status[i] = self.embed_image(read_image(path))
        return out, status


# --------------------------------------------------------------------------- worker processes

_WORKER: DlibPhotoEmbedder | None = None


def _init_worker(fallback: str) -> None:
    global _WORKER
    import threading

    from crowdkit.engine.embed_dlib import exit_with_parent

    _WORKER = DlibPhotoEmbedder(fallback=fallback)
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="crowdkit-descriptors-watchdog").start()


def _embed_chunk(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.embed_paths(paths)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --------------------------------------------------------------------------- the cache

def cache_file(fallback: str = "centre") -> Path:
    """The npz cache of this pipeline (keys = sha256 of the file bytes, embeddings, status)."""
    return config.cache_dir("descriptors") / f"{VERSION}-{fallback}.npz"



# --------------------------------------------------------------------------- the entry point

def describe_photos(
    paths: Sequence[str | os.PathLike],
    *,
    fallback: str = "centre",
    workers: int | None = None,
    chunk_size: int = 16,
    save_every: int = 512,
    progress: bool = True,
) -> PhotoDescriptors:
    """Descriptors of image files (one face each), computing only those not cached yet.

    Parameters
    ----------
    paths : image files; an unreadable one raises :class:`~crowdkit.common.exceptions.ImageReadError`
    fallback : ``"centre"`` or ``"skip"``, see :class:`DlibPhotoEmbedder`
    workers : processes to embed with; None: one per core; 1: in this process
    chunk_size : photos per task sent to a worker
    save_every : flush the cache after this many new photos (what an interrupted run keeps)
    progress : show a tqdm bar
    """
    workers = int(workers) if workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise ConfigError(f"workers must be ≥ 1 or None, got {workers!r}")
    paths = [os.fspath(p) for p in paths]
    if not paths:
        return PhotoDescriptors(np.zeros((0, DlibPhotoEmbedder.dim), np.float32), np.zeros(0, np.int8))
    store = cache_file(fallback)
    keys = [sha256_file(p) for p in paths]
    known = read_embedding_table(store)
    todo = sorted({k: p for k, p in zip(keys, paths) if k not in known}.items())
    if todo:
        logger.info("embedding %d of %d photos with dlib on %d process(es)", len(todo), len(paths), workers)
        known.update(_embed_missing(todo, store, fallback=fallback, workers=workers, chunk_size=chunk_size,
                                    save_every=save_every, progress=progress))
    return PhotoDescriptors(
        np.stack([known[k][0] for k in keys]).astype(np.float32),
        np.array([known[k][1] for k in keys], dtype=np.int8),
    )


def _start_embedding(paths: list[str], *, fallback: str, workers: int,
                     chunk_size: int) -> tuple[ProcessPoolExecutor | None, Iterator[tuple[np.ndarray, np.ndarray]]]:
    """(pool or None, an iterator of (embeddings, status) per chunk of ``paths``, in order)."""
    if workers == 1 or len(paths) < 2 * chunk_size:
        embedder = DlibPhotoEmbedder(fallback=fallback)
        return None, (embedder.embed_paths(chunk) for chunk in _chunks(paths, chunk_size))
    import multiprocessing

    # spawn, not fork: the caller may have torch (and its OpenMP threads) running,
    # which a forked child must not inherit; the workers only import dlib.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(fallback,))
    return pool, pool.map(_embed_chunk, _chunks(paths, chunk_size))


def _embed_missing(todo: list[tuple[str, str]], store: Path, *, fallback: str, workers: int, chunk_size: int,
                   save_every: int, progress: bool) -> dict[str, tuple[np.ndarray, int]]:
    """Embed the (content key, path) pairs of ``todo``, flushing to ``store`` every ``save_every``; returns them all."""
    from tqdm.auto import tqdm

    computed: dict[str, tuple[np.ndarray, int]] = {}
    new: dict[str, tuple[np.ndarray, int]] = {}
    todo_keys = [k for k, _ in todo]
    bar = tqdm(total=len(todo), desc="dlib descriptors", unit="photo", disable=not show_progress(progress))
    pool = None
    try:
        pool, results = _start_embedding([p for _, p in todo], fallback=fallback, workers=workers,
                                         chunk_size=chunk_size)
        done = 0
        for embeddings, status in results:
            for key, vector, code in zip(todo_keys[done:done + len(status)], embeddings, status):
                new[key] = (vector, int(code))
            done += len(status)
            bar.update(len(status))
            if len(new) >= save_every:
                merge_embedding_table(store, new)
                computed.update(new)
                new = {}
    finally:
        bar.close()
        merge_embedding_table(store, new)  # keep what was computed, also when interrupted
        computed.update(new)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return computed
