"""The embedder contract: :class:`Embedder`, the base class of every face recognition model.

The registry of backends and :func:`crowdkit.engine.embed.get_embedder` are in
:mod:`crowdkit.engine.embed`.
"""
from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from importlib import metadata
from pathlib import Path
from typing import Sequence

import numpy as np

from crowdkit.common.exceptions import InvalidImageError

logger = logging.getLogger(__name__)

def package_version(*names: str) -> str:
    """The installed version of the first of ``names`` that is installed ("unknown" if none)."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike, length: int = 12) -> str:
    """The start of a file's sha256 (memoised by path, size and mtime): weights identity for cache keys."""
    stat = Path(path).stat()
    memo = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_DIGESTS:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        _FILE_DIGESTS[memo] = hasher.hexdigest()
    return _FILE_DIGESTS[memo][:length]


class Embedder(ABC):
    """One face recognition model behind one call.

    Attributes
    ----------
    name : str
        Registry name (``"dlib"``, ``"arcface"``, ``"facenet"``).
    template : str
        The :data:`crowdkit.engine.align.TEMPLATES` entry chips must be aligned with.
    dim : int
        Length of an embedding.
    default_metric : str
        The metric the default threshold refers to.
    thresholds : dict[str, float]
        Default decision threshold per metric (distance ≤ threshold: same person).
    version : str
        Package version and weights identity; part of every cache key.
    workers : int
        Processes one :meth:`embed` call spreads its chips over (1: this process).
    max_in_flight : int
        Batches :func:`crowdkit.engine.pipeline.detect_and_embed` may hand over at once
        from separate threads (more than 1 only where :meth:`embed` is thread-safe).
    """

    name: str = ""
    template: str = ""
    dim: int = 0
    default_metric: str = "cosine"
    thresholds: dict[str, float] = {}
    version: str = ""
    workers: int = 1
    max_in_flight: int = 1

    @property
    def cache_id(self) -> str:
        """``name@version/template``: part of every cache key of this embedder's embeddings."""
        return f"{self.name}@{self.version}/{self.template}"

    def warm_up(self) -> None:
        """Get ready for a long run in the background and return at once (nothing to do for most backends)."""

    @property
    def chip_size(self) -> int:
        from crowdkit.engine.align import TEMPLATES

        return TEMPLATES[self.template].size

    @property
    def threshold(self) -> float:
        """The default threshold for :attr:`default_metric`."""
        return self.thresholds[self.default_metric]

    def embed(self, chips: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embed aligned face chips.

        Parameters
        ----------
        chips : uint8 array (N, S, S, 3) or a sequence of (S, S, 3) arrays
            RGB chips aligned with :attr:`template`, ``S`` = its size.

        Returns
        -------
        ndarray, float32, shape (N, dim)
        """
        batch = self._check(chips)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._embed(batch), dtype=np.float32).reshape(len(batch), self.dim)
        return vectors

    @abstractmethod
    def _embed(self, chips: np.ndarray) -> np.ndarray:
        """Embed a validated, non-empty uint8 batch (N, S, S, 3)."""

    def _check(self, chips: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        size = self.chip_size
        if isinstance(chips, np.ndarray):
            batch = chips
        else:
            chips = [np.asarray(chip) for chip in chips]
            if len({chip.shape for chip in chips}) > 1:
                raise InvalidImageError(
                    f"{self.name} needs chips of one shape ({size}, {size}, 3); got {sorted({c.shape for c in chips})}")
            batch = np.stack(chips) if chips else np.zeros((0, size, size, 3), dtype=np.uint8)
        if batch.ndim == 3 and batch.shape == (size, size, 3):
            raise InvalidImageError(
                f"{self.name} embeds a batch of chips (N, {size}, {size}, 3); got one chip {batch.shape} — "
                "wrap it: embed(chip[None])"
            )
        if batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise InvalidImageError(
                f"{self.name} needs RGB chips of shape (N, {size}, {size}, 3) aligned with the "
                f"{self.template!r} template (crowdkit.engine.align.align_face(image, landmarks, {self.template!r})); "
                f"got {batch.shape}"
            )
        if batch.dtype != np.uint8:
            raise InvalidImageError(f"{self.name} needs uint8 chips (0-255); got dtype {batch.dtype}")
        return np.ascontiguousarray(batch)

    def close(self) -> None:
        """Release worker processes or models (the embedder can still be used; they restart)."""

    def __enter__(self) -> "Embedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, version={self.version!r})"



