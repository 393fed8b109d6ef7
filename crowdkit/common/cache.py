"""A small content-addressed cache of numpy arrays, one ``.npz`` file per key.

Keys are sha256 digests of whatever decides the content (image bytes,
detector name and options, embedder name and version)::

    >>> from crowdkit.common.cache import ArrayCache
    >>> cache = ArrayCache("embeddings", namespace="dlib@20.0.1/150")  # doctest: +SKIP
    >>> key = cache.key(image_bytes, "mtcnn")                            # doctest: +SKIP
    >>> cache.get(key) is None                                           # doctest: +SKIP
    True
    >>> cache.put(key, {"embeddings": vectors})                          # doctest: +SKIP

Entries are written atomically (a crash leaves the old entry or none) and read
with ``allow_pickle=False``. A missing, truncated or otherwise unreadable
entry is a miss, logged at debug (missing) or warning (corrupt) level; the
next :meth:`ArrayCache.put` replaces it. Everything under the cache folder is
safe to delete.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from crowdkit.common import config
from crowdkit.common.io import atomic_path, write_bytes_atomic

logger = logging.getLogger(__name__)

_SAFE_KEY = re.compile(r"^[0-9a-f]{16,128}$")


def digest(*parts: bytes | str) -> str:
    """sha256 hex digest of ``parts``, each length-prefixed so ``("ab", "c") != ("a", "bc")``."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else bytes(part)
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


class ArrayCache:
    """Arrays stored under content keys, as ``.npz`` files.

    Parameters
    ----------
    location : str or path-like
        A cache name (``"embeddings"``: the folder ``config.cache_dir("embeddings")``,
        under ``$CROWDKIT_HOME/cache``) or an explicit folder (a ``Path``, or a
        string holding a path separator).
    namespace : str, keyword-only
        Keeps caches that share a folder apart (e.g. one per detector and
        embedder version); each namespace is a sub-folder, so :meth:`clear`
        empties only its own.
    """

    def __init__(self, location: str | os.PathLike, *, namespace: str = "") -> None:
        self._location = location
        self.namespace = namespace
        self._subfolder = digest(namespace)[:16] if namespace else "default"
        named = isinstance(location, str) and os.sep not in location and "/" not in location
        self._fixed = None if named else os.path.join(os.path.expanduser(os.fspath(location)), self._subfolder)

    @property
    def folder(self) -> Path:
        """This namespace's folder (a cache *name* is resolved when used, so ``CROWDKIT_HOME`` is read late)."""
        return Path(self._folder_name())

    def _folder_name(self) -> str:
        if self._fixed is not None:
            return self._fixed
        return os.path.join(config.cache_dir(self._location), self._subfolder)

    @staticmethod
    def key(*parts: bytes | str) -> str:
        """A key for content described by ``parts``: their sha256 (see :func:`digest`)."""
        return digest(*parts)

    def path(self, key: str) -> Path:
        """The file an entry lives in (two-level fan-out, like git's objects)."""
        return Path(self._path_name(key))

    def _path_name(self, key: str) -> str:
        name = key if _SAFE_KEY.match(key) else digest(key)
        return os.path.join(self._folder_name(), name[:2], f"{name}.npz")

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None when missing or unreadable."""
        path = self._path_name(key)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except FileNotFoundError:
            logger.debug("cache miss %s", path)
            return None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
            logger.warning("cache entry %s is unreadable (%s); treating it as a miss", path, error)
            return None

    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """Store ``arrays`` (name → array, no object arrays) under ``key``, atomically."""
        arrays = {name: np.asarray(value) for name, value in arrays.items()}
        for name, value in arrays.items():
            if value.dtype == object:
                raise TypeError(f"cache array {name!r} has dtype object; only numeric/string arrays are stored")
        path = self._path_name(key)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes_atomic(path, buffer.getvalue())
        return Path(path)

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def clear(self) -> None:
        """Delete every entry of this namespace."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __repr__(self) -> str:
        return f"ArrayCache({str(self._location)!r}, namespace={self.namespace!r})"


# --------------------------------------------------------------------------- one npz of keyed embeddings

def read_embedding_table(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, int]]:
    """key → (embedding, status) from an npz written by :func:`merge_embedding_table` ({} when absent)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return {str(k): (e, int(s)) for k, e, s in zip(data["keys"], data["embeddings"], data["status"])}


def merge_embedding_table(path: str | os.PathLike, new: Mapping[str, tuple[np.ndarray, int]]) -> None:
    """Add ``new`` rows to the npz at ``path`` (keys, embeddings float32, status int8), atomically.

    The file is re-read first, so rows another process added meanwhile are kept.
    """
    if not new:
        return
    merged = read_embedding_table(path)
    merged.update(new)
    keys = sorted(merged)
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=np.array(keys),
                     embeddings=np.stack([merged[k][0] for k in keys]).astype(np.float32),
                     status=np.array([merged[k][1] for k in keys], dtype=np.int8))
