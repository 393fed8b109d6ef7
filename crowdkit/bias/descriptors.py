"""dlib descriptors of dataset photos: one face per photo, batched through torch, cached by content.

The bias study's three steps read the same 128-d descriptors: the ethnicity
probe (UTKFace, and the CelebA identities it labels), the triplet-trained
projection head (CelebA) and the LFW evaluation. They all come from this one
pipeline, built from the engine's parts:

YuNet (:mod:`crowdkit.engine.detect_yunet`; again at 2× if it finds nothing,
for small faces) → the face nearest the image centre (dataset photos are
face-centred) → the box dlib's HOG would have drawn
(:func:`crowdkit.engine.detect_dlib.hog_style_box`) → dlib's 5-point shape and
its 150-px chip (:class:`crowdkit.engine.detect_dlib.DlibChips`) → dlib's ResNet
run in torch (the ``"dlib"`` embedder, both cores, batched). A photo where no
detector finds a face is embedded from a fixed central box and flagged, so
callers can count or skip it.

On LFW's 6,000 View-2 pairs this pipeline scores 0.9887 (10-fold, euclidean),
dlib's HOG at two scales then MTCNN scored 0.9882 in the previous version.

Descriptors are cached in one npz file keyed by the sha256 of each file's
bytes (byte-identical duplicates, common in UTKFace, are embedded once), so
whichever notebook embeds a photo first, the others read it. The cache is
flushed every few hundred photos, so an interrupted run resumes where it stopped.

Example::

    >>> from crowdkit.bias.descriptors import describe_photos
    >>> found = describe_photos(paths)                # doctest: +SKIP
    >>> found.embeddings.shape, found.has_face.mean()  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from crowdkit.common import config
from crowdkit.common.cache import merge_embedding_table, read_embedding_table
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import read_image, sha256_file, show_progress

logger = logging.getLogger(__name__)

#: Pipeline version: bump when anything above changes, it names the cache file.
VERSION = "yunet-dlib-photo-2"

#: Status code of each photo: face found by the first pass; no face anywhere (central box embedded);
#: no face and skipped (NaN row); face found only by the second pass (YuNet at 2×).
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
        """bool (N,): a detector found a face (first or second pass)."""
        return np.isin(self.status, (FACE_FOUND, SECOND_DETECTOR))

    def __len__(self) -> int:
        return len(self.status)


def centre_box(shape: Sequence[int]) -> tuple[float, float, float, float]:
    """:data:`CENTRE_BOX` in pixels of an image of ``shape`` (H, W, ...)."""
    height, width = shape[:2]
    x1, y1, x2, y2 = CENTRE_BOX
    return x1 * width, y1 * height, x2 * width, y2 * height


def nearest_centre(boxes: Sequence[Sequence[float]], shape: Sequence[int]) -> int:
    """Index of the box whose centre lies nearest the centre of an image of ``shape``."""
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(range(len(boxes)), key=lambda i: ((boxes[i][0] + boxes[i][2]) / 2 - cx) ** 2
               + ((boxes[i][1] + boxes[i][3]) / 2 - cy) ** 2)


class PhotoEmbedder:
    """The pipeline of the module docstring, in this process; the embedder spreads each batch over every core.

    ``fallback="centre"`` embeds :data:`CENTRE_BOX` when no face is found;
    ``"skip"`` returns a NaN row with status :data:`NO_FACE`.
    """

    dim = 128

    def __init__(self, *, fallback: str = "centre", batch_size: int = 64) -> None:
        from crowdkit.engine.detect import get_detector
        from crowdkit.engine.detect_dlib import DlibChips
        from crowdkit.engine.embed import get_embedder

        if fallback not in ("centre", "skip"):
            raise ConfigError(f"fallback must be 'centre' or 'skip', got {fallback!r}")
        self.fallback = fallback
        self.batch_size = int(batch_size)
        self._detectors = (get_detector("yunet"), get_detector("yunet", upscale=2.0))
        self._chips = DlibChips()
        self._embedder = get_embedder("dlib", batch_size=self.batch_size)

    def chip(self, image: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The 150-px chip of the photo's face and its status code (None, NO_FACE when skipped)."""
        from crowdkit.engine.detect_dlib import hog_style_box

        for status, detector in zip((FACE_FOUND, SECOND_DETECTOR), self._detectors):
            boxes = [face.box for face in detector.detect(image)]
            if boxes:
                return self._chips(image, hog_style_box(boxes[nearest_centre(boxes, image.shape)])), status
        if self.fallback == "skip":
            return None, NO_FACE
        return self._chips(image, centre_box(image.shape)), CENTRE_FALLBACK

    def embed_images(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (N, 128) and statuses (N,) of RGB uint8 images; NaN rows where skipped."""
        out = np.full((len(images), self.dim), np.nan, dtype=np.float32)
        found = [self.chip(image) for image in images]
        rows = [i for i, (chip, _) in enumerate(found) if chip is not None]
        if rows:
            out[rows] = self._embedder.embed(np.stack([found[i][0] for i in rows]))
        return out, np.array([code for _, code in found], dtype=np.int8)

    def embed_paths(self, paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (N, 128) and statuses (N,) of image files."""
        return self.embed_images([read_image(path) for path in paths])


# --------------------------------------------------------------------------- the cache

def cache_file(fallback: str = "centre") -> Path:
    """The npz cache of this pipeline (keys = sha256 of the file bytes, embeddings, status)."""
    return config.cache_dir("descriptors") / f"{VERSION}-{fallback}.npz"

# --------------------------------------------------------------------------- the entry point

def describe_photos(
    paths: Sequence[str | os.PathLike],
    *,
    fallback: str = "centre",
    batch_size: int = 64,
    save_every: int = 512,
    progress: bool = True,
) -> PhotoDescriptors:
    """Descriptors of image files (one face each), computing only those not cached yet.

    Parameters
    ----------
    paths : image files; an unreadable one raises :class:`~crowdkit.common.exceptions.ImageReadError`
    fallback : ``"centre"`` or ``"skip"``, see :class:`PhotoEmbedder`
    batch_size : photos read, detected and embedded together (≥ 1)
    save_every : flush the cache after this many new photos (what an interrupted run keeps)
    progress : show a tqdm bar
    """
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size!r}")
    paths = [os.fspath(p) for p in paths]
    if not paths:
        return PhotoDescriptors(np.zeros((0, PhotoEmbedder.dim), np.float32), np.zeros(0, np.int8))
    store = cache_file(fallback)
    keys = [sha256_file(p) for p in paths]
    known = read_embedding_table(store)
    todo = sorted({k: p for k, p in zip(keys, paths) if k not in known}.items())
    if todo:
        logger.info("embedding %d of %d photos with YuNet + dlib", len(todo), len(paths))
        known.update(_embed_missing(todo, store, PhotoEmbedder(fallback=fallback, batch_size=int(batch_size)),
                                    save_every=save_every, progress=progress))
    return PhotoDescriptors(
        np.stack([known[k][0] for k in keys]).astype(np.float32),
        np.array([known[k][1] for k in keys], dtype=np.int8),
    )


def _embed_missing(todo: list[tuple[str, str]], store: Path, embedder: PhotoEmbedder, *, save_every: int,
                   progress: bool) -> dict[str, tuple[np.ndarray, int]]:
    """Embed the (content key, path) pairs of ``todo``, flushing to ``store`` every ``save_every``; returns them all."""
    from tqdm.auto import tqdm

    computed: dict[str, tuple[np.ndarray, int]] = {}
    new: dict[str, tuple[np.ndarray, int]] = {}
    bar = tqdm(total=len(todo), desc="dlib descriptors", unit="photo", disable=not show_progress(progress))
    try:
        for start in range(0, len(todo), embedder.batch_size):
            batch = todo[start:start + embedder.batch_size]
            embeddings, status = embedder.embed_paths([path for _, path in batch])
            for (key, _), vector, code in zip(batch, embeddings, status):
                new[key] = (vector, int(code))
            bar.update(len(batch))
            if len(new) >= save_every:
                merge_embedding_table(store, new)
                computed.update(new)
                new = {}
    finally:
        bar.close()
        merge_embedding_table(store, new)  # keep what was computed, also when interrupted
        computed.update(new)
    return computed
