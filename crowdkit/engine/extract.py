"""Face extraction that records its detections: JPEG crops plus one manifest.

The crowd study first cut every face out of its photos and video frames, then
searched the folder of crops. :func:`extract_faces` does the same, and writes
beside the crops one manifest, ``crowdkit-faces.json`` (see
:mod:`crowdkit.engine.manifest`), that says for each crop what was found in it::

    from crowdkit.engine.extract import extract_faces
    extract_faces("frames/", "crops/", detector="opencv")
    find(["suspect.jpg"], "crops/", detector="opencv")   # reuses the recorded detections
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from crowdkit.common.exceptions import ConfigError
from crowdkit.common.geometry import crop_bounds
from crowdkit.common.io import atomic_path, sha256_bytes, show_progress
from crowdkit.engine.backends import resolve_detector
from crowdkit.engine.detection import Detection, Detector
from crowdkit.engine.face_cache import FaceCache
from crowdkit.engine.gallery import GalleryImage, GallerySource, chunks, is_video_source, iter_gallery
from crowdkit.engine.manifest import MANIFEST_NAME, ExtractedFace, write_manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extraction:
    """What :func:`extract_faces` did: the rows written and how many images it looked at."""

    folder: Path
    faces: list[ExtractedFace]
    images: int
    skipped: tuple[str, ...] = ()

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST_NAME


def _crop_name(source: str, frame: int, index: int, root: Path | None, is_frame: bool) -> str:
    """A relative posix path for the crop: the source's folder layout under ``root`` is kept."""
    path = Path(source)
    parent = PurePosixPath()
    if root is not None:
        try:
            parent = PurePosixPath(*Path(os.path.abspath(path)).parent.relative_to(os.path.abspath(root)).parts)
        except ValueError:
            parent = PurePosixPath()
    stem = path.stem + (f"_frame{frame:06d}" if is_frame else "")
    return str(parent / f"{stem}_{index}.jpg")


def _layout_root(sources: GallerySource) -> Path | None:
    """The folder whose sub-folder layout the crops keep: a folder source, or a list's common folder."""
    if isinstance(sources, (str, os.PathLike)):
        return Path(sources) if Path(sources).is_dir() else None
    parents = {os.path.dirname(os.path.abspath(os.fspath(p))) for p in sources}
    if len(parents) < 2:
        return None
    try:
        return Path(os.path.commonpath(sorted(parents)))
    except ValueError:  # pragma: no cover - different drives on Windows
        return None


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _encode_jpeg(pixels: np.ndarray, quality: int, source: str) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise ConfigError(f"could not encode a crop of {source} as JPEG")
    return encoded.tobytes()


class _CropWriter:
    """Writes each detected face of an image as a JPEG crop under ``out_dir`` and collects the manifest rows."""

    def __init__(self, out_dir: Path, *, detector: str, margin: float, quality: int, root: Path | None,
                 video: bool) -> None:
        self.out_dir, self.detector, self.margin, self.quality = out_dir, detector, margin, quality
        self.root, self.video = root, video
        self.rows: list[ExtractedFace] = []
        self._names: set[str] = set()

    def write(self, item: GalleryImage, image: np.ndarray, detections: list[Detection]) -> None:
        for k, det in enumerate(detections):
            x0, y0, x1, y1 = crop_bounds(det.box, image.shape, margin=self.margin)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            data = _encode_jpeg(image[y0:y1, x0:x1], self.quality, item.source)
            name = _crop_name(item.source, item.frame, k, self.root, self.video)
            while name in self._names:  # two sources with one stem in one folder
                name = name[:-4] + "_.jpg"
            self._names.add(name)
            _write_if_changed(self.out_dir / name, data)
            box = det.box
            self.rows.append(ExtractedFace(
                file=name, sha256=sha256_bytes(data), source=item.source, frame=item.frame,
                detector=self.detector, score=det.score,
                box=(box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0),
                landmarks=np.asarray(det.landmarks, dtype=np.float32) - np.array([x0, y0], dtype=np.float32),
            ))


def _detect_chunk(chunk: list[GalleryImage], detector: Detector, cache: FaceCache) -> tuple[list, list]:
    """(pixels, detections) of each image of ``chunk``: cached detections, the others detected and cached."""
    found: list[list[Detection] | None] = [cache.get_detections(item.key) for item in chunk]
    pixels = [item.load() for item in chunk]
    todo = [i for i, dets in enumerate(found) if dets is None]
    for i, dets in zip(todo, detector.detect_batch([pixels[i] for i in todo]) if todo else []):
        found[i] = list(dets)
        cache.put_detections(chunk[i].key, found[i])
    return pixels, found


def _check_options(stride: int, margin: float) -> None:
    if stride < 1:
        raise ConfigError(f"stride must be ≥ 1, got {stride}")
    if not (0 <= margin <= 2):
        raise ConfigError(f"margin must be between 0 and 2 (a fraction of the box), got {margin}")


def extract_faces(
    sources: GallerySource,
    out_dir: str | os.PathLike,
    *,
    detector: str | Detector = "opencv",
    margin: float = 0.2,
    stride: int = 1,
    batch_size: int = 32,
    quality: int = 95,
    progress: bool = True,
) -> Extraction:
    """Detect the faces in photos or video frames; write each as a JPEG crop plus one manifest.

    Parameters
    ----------
    sources : a folder of images (recursive), a list of image files, an image file or a video file
    out_dir : where the crops and ``crowdkit-faces.json`` go; the crops keep the sub-folders of a source
        folder (of a list of photos: below their common folder)
    detector : backend name or instance
    margin : grow each box by this fraction of its width/height on every side (clipped to the image)
    stride : for a video, every ``stride``-th frame
    quality : JPEG quality of the crops

    Returns
    -------
    Extraction
        the manifest rows, in source order.

    A rerun over the same sources reuses the per-image detection cache
    (:mod:`crowdkit.engine.face_cache`), rewrites only crops whose bytes changed, and
    replaces the manifest atomically; an interrupted run leaves the previous
    manifest in place.
    """
    from tqdm.auto import tqdm

    _check_options(stride, margin)
    out_dir = Path(out_dir)
    detector = resolve_detector(detector)
    cache = FaceCache(detector, None)
    writer = _CropWriter(out_dir, detector=detector.name, margin=margin, quality=quality,
                         root=_layout_root(sources), video=is_video_source(sources))
    skipped: list[str] = []
    total, images = iter_gallery(sources, stride=stride, skipped=skipped)
    count = 0
    bar = tqdm(total=total or None, desc=f"extract ({detector.name})", unit="img", disable=not show_progress(progress))
    try:
        for chunk in chunks(images, batch_size):
            count += len(chunk)
            pixels, found = _detect_chunk(chunk, detector, cache)
            for item, image, dets in zip(chunk, pixels, found):
                writer.write(item, image, dets or [])
            bar.update(len(chunk))
            bar.set_postfix(faces=len(writer.rows), refresh=False)
    finally:
        bar.close()
    write_manifest(out_dir, writer.rows, detector=detector.name, detector_id=detector.cache_id, margin=margin)
    logger.info("extracted %d face(s) from %d image(s) into %s", len(writer.rows), count, out_dir)
    return Extraction(out_dir, writer.rows, count, tuple(skipped))
