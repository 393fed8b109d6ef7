"""Gallery sources: the photos and video frames a search or an extraction looks at, each with a content key.

A gallery is a folder of images (searched recursively), a list of image files,
one image file, or a video file (every ``stride``-th frame). Each photo or
frame becomes a :class:`GalleryImage`: where it comes from, its content key
(the sha256 of a photo's bytes; for a video frame the video's sha256, the
frame index and the stride) and a function that returns its RGB pixels.

An unreadable file *inside a gallery* is skipped, logged and reported (one bad
file should not sink a search over thousands); a folder with no image, or a
video that cannot be decoded, is an error. :func:`read_photo` on its own
(a query photo) raises for an unreadable file.

Within one process the file → sha256 map is remembered, keyed by the file's
path, size, modification time and inode, so an unchanged gallery is not read
twice (:func:`forget_file_hashes` drops it).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Callable, Iterable, Iterator, Sequence, Union

import numpy as np

from crowdkit.common.exceptions import DataNotFoundError, EmptyGalleryError, ImageReadError
from crowdkit.common.io import IMAGE_SUFFIXES, decode_image, sha256_bytes, sha256_file
from crowdkit.engine.listing import list_folder
from crowdkit.engine.video import iter_frames, video_info

logger = logging.getLogger(__name__)

#: What a gallery may be: a folder, an image or video file, or a list of image files.
GallerySource = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]

#: File suffixes read as videos when given as a gallery.
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}

# (path, size, mtime_ns, inode) → sha256 of the bytes, so a second search in the same
# process does not re-read an unchanged gallery.
_FILE_HASHES: dict[tuple[str, int, int, int], str] = {}


@dataclass
class GalleryImage:
    """One photo or video frame waiting to be processed.

    ``frame`` is the video frame index (0 for a photo); ``key`` its content key;
    ``load()`` returns its RGB uint8 pixels.
    """

    source: str
    frame: int
    key: str
    load: Callable[[], np.ndarray] = field(repr=False)


def forget_file_hashes() -> None:
    """Drop the remembered file → sha256 map (files are hashed again on their next use)."""
    _FILE_HASHES.clear()


def file_signature(path: str | os.PathLike) -> tuple[str, int, int, int]:
    """``(path, size, mtime_ns, inode)``: what tells, without reading it, that a file changed."""
    stat = os.stat(path)
    return (os.fspath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def read_photo(path: str | os.PathLike) -> GalleryImage:
    """A photo as a :class:`GalleryImage`; raises :class:`ImageReadError` if it cannot be read.

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
        return GalleryImage(path, 0, key, lambda: decode_image(_read_bytes(path), source=path))
    image = decode_image(data, source=path)  # check decodability now, so a bad file is reported where it is
    key = sha256_bytes(data)
    _FILE_HASHES[memo] = key  # remembered only once known to decode: a broken file stays skipped next time
    return GalleryImage(path, 0, key, lambda: image)


def is_video(path: str | os.PathLike) -> bool:
    """True for an existing file that is not an image (by suffix): a gallery reads it as a video."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES


def is_video_source(sources: GallerySource) -> bool:
    """True when a gallery is one video file."""
    return isinstance(sources, (str, os.PathLike)) and is_video(sources)


def gallery_paths(gallery: GallerySource) -> list[str | os.PathLike]:
    """The image paths of a folder (sorted), a file or a list; raises for a missing or empty gallery."""
    if isinstance(gallery, (str, os.PathLike)):
        path = Path(gallery)
        if path.is_dir():
            paths = list(list_folder(path))  # remembered while its folders are unchanged
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


def check_gallery(gallery: GallerySource) -> str | os.PathLike | list[str | os.PathLike]:
    """Fail early, without loading a model, for a missing or empty gallery or an undecodable video.

    Returns the gallery in the form :func:`crowdkit.engine.pipeline.detect_and_embed`
    reads fastest: the folder or video path as given (a folder's listing is
    remembered), the list of paths for a list.
    """
    if is_video_source(gallery):
        video_info(gallery)
        return gallery
    paths = gallery_paths(gallery)
    return gallery if isinstance(gallery, (str, os.PathLike)) else paths


def _video_images(path: Path, *, stride: int) -> tuple[int, Iterator[GalleryImage]]:
    info = video_info(path)
    memo = file_signature(path)
    video_hash = _FILE_HASHES.get(memo) or sha256_file(path)
    _FILE_HASHES[memo] = video_hash
    total = max(0, -(-int(info.frame_count) // stride)) if info.frame_count else 0

    def frames() -> Iterator[GalleryImage]:
        for frame in iter_frames(path, stride=stride):
            key = hashlib.sha256(f"{video_hash}:frame={frame.index}:stride={stride}".encode()).hexdigest()
            image = frame.image
            yield GalleryImage(str(path), int(frame.index), key, lambda image=image: image)

    return total, frames()


def iter_gallery(gallery: GallerySource, *, stride: int, skipped: list[str]) -> tuple[int, Iterator[GalleryImage]]:
    """(expected count, images) of a gallery; unreadable photos are appended to ``skipped`` and left out."""
    if is_video_source(gallery):
        return _video_images(Path(gallery), stride=stride)
    paths = gallery_paths(gallery)

    def photos() -> Iterator[GalleryImage]:
        for path in paths:
            try:
                yield read_photo(path)
            except ImageReadError as error:
                skipped.append(f"{path}: {error}")
                logger.warning("skipping %s", error)

    return len(paths), photos()


def chunks(items: Iterable[GalleryImage], size: int) -> Iterator[list[GalleryImage]]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily."""
    chunk: list[GalleryImage] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def describe_gallery(sources: GallerySource) -> str:
    """A short name for a gallery in messages (a list of photos is named by its common folder)."""
    if isinstance(sources, (str, os.PathLike)):
        return str(sources)
    paths = [str(p) for p in sources]
    try:
        folder = os.path.commonpath(paths) if paths else ""
    except ValueError:
        folder = ""
    return f"of {len(paths)} photo(s)" + (f" under {folder}" if folder else "")
