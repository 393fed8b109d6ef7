"""Small file helpers every stage shares: atomic writes, hashing, image reading and format checks."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from crowdkit.common.exceptions import ImageReadError, InvalidImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"}


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it replaces ``target`` only if the block succeeds.

    A crash or an exception leaves ``target`` as it was (absent or the old
    version), never half-written::

        with atomic_path("results.parquet") as tmp:
            table.to_parquet(tmp)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files: give the result the usual umask permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically, with as few system calls as that takes.

    For the many small files of a cache (one per image): :func:`atomic_path`
    costs a ``mkstemp``, a ``chmod`` and two existence checks per file; here
    the temporary name is unique to this process and thread, the folder is
    created only when missing, and the file gets the umask's permissions as
    any new file does. A crash leaves ``target`` as it was and at most a
    ``.part`` file beside it.
    """
    target = os.fspath(target)
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{threading.get_ident()}.part")
    try:
        handle = open(tmp, "wb")
    except FileNotFoundError:
        os.makedirs(folder or ".", exist_ok=True)
        handle = open(tmp, "wb")
    try:
        with handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode image bytes to an RGB ``uint8`` array of shape (H, W, 3)."""
    import cv2

    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if array is None:
        raise ImageReadError(f"{source} is not a readable image (JPEG, PNG, BMP, PGM, TIFF or WebP expected)")
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB ``uint8`` (H, W, 3); a clear error if it is missing or not an image."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path} does not exist or is not a file")
    return decode_image(path.read_bytes(), source=str(path))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted, by suffix."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def ensure_rgb(image: Any) -> np.ndarray:
    """Return ``image`` as a C-contiguous RGB ``uint8`` array of shape (H, W, 3).

    Greyscale (H, W) or (H, W, 1) is repeated over three channels and RGBA
    (H, W, 4) loses its alpha channel. Anything else raises
    :class:`~crowdkit.common.exceptions.InvalidImageError` saying what was expected.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(
            f"expected an RGB uint8 numpy array of shape (H, W, 3), got {type(image).__name__}; "
            "read files with crowdkit.common.io.read_image(path)"
        )
    if image.dtype != np.uint8:
        raise InvalidImageError(
            f"expected an image of dtype uint8, got {image.dtype}; convert with "
            "np.clip(image * 255, 0, 255).astype(np.uint8) for floats in [0, 1]"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InvalidImageError(
            f"expected an image of shape (H, W, 3) (RGB), (H, W) (grey) or (H, W, 4) (RGBA), got {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidImageError(f"the image is empty (shape {image.shape})")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def show_progress(progress: bool) -> bool:
    """Whether a progress bar should be drawn: asked for, and not switched off by ``TQDM_DISABLE``.

    ``tqdm(disable=False)`` overrides ``TQDM_DISABLE``; a book build sets that
    variable (:func:`crowdkit.book.notebook.setup_notebook`), so a library call
    that asks for a bar still draws none in a built page.
    """
    return bool(progress) and not os.environ.get("TQDM_DISABLE")
