"""Face extraction that records its detections: crops plus one sidecar manifest.

The crowd study first cut every face out of its photos and video frames, then
searched the folder of crops. :func:`extract_faces` does the same, and writes
beside the crops one manifest, ``crowdkit-faces.json``, that says for each
crop what was found in it: the detector, its score, the box and the five
landmarks *in crop coordinates*, and the sha256 of the crop's bytes::

    from crowdkit.engine.extract import extract_faces
    extract_faces("frames/", "crops/", detector="opencv")
    find(["suspect.jpg"], "crops/", detector="opencv")   # reuses the recorded detections

:func:`crowdkit.engine.faces.detect_and_embed` (and so ``find``) reads that manifest:
a crop whose bytes still hash to the recorded sha256, searched with a detector
of the recorded name, is aligned with the recorded landmarks and embedded
without running any detector or landmark model. A crop that was edited (other
bytes) is detected again like any other image. A manifest that is not valid is
ignored by the search with a warning (the search falls back to detection),
and reported as :class:`~crowdkit.common.exceptions.DatasetFormatError` by
:func:`read_manifest`.

Manifest format (JSON, written atomically)::

    {"format": "crowdkit-faces", "version": 1, "detector": "opencv",
     "detector_id": "opencv(min_neighbors=5,...)", "margin": 0.2,
     "faces": [{"file": "person/photo_0.jpg", "sha256": "…", "source": "/…/photo.jpg",
                "frame": 0, "detector": "opencv", "score": 12.3,
                "box": [x1, y1, x2, y2], "landmarks": [[x, y], … 5 points]}, …]}
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from crowdkit.common.exceptions import ConfigError, DatasetFormatError
from crowdkit.common.io import atomic_path, sha256_bytes

if TYPE_CHECKING:  # pragma: no cover
    from crowdkit.engine.detect import Detection, Detector

logger = logging.getLogger(__name__)

#: The manifest's file name inside the output folder.
MANIFEST_NAME = "crowdkit-faces.json"
MANIFEST_FORMAT = "crowdkit-faces"
MANIFEST_VERSION = 1
#: A manifest larger than this is not read (a hostile or mistaken file).
MAX_MANIFEST_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class ExtractedFace:
    """One crop written by :func:`extract_faces` (a manifest row).

    ``box`` and ``landmarks`` (5, 2) are in the crop's pixel coordinates.
    """

    file: str
    sha256: str
    source: str
    frame: int
    detector: str
    score: float
    box: tuple[float, float, float, float]
    landmarks: np.ndarray

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "sha256": self.sha256, "source": self.source, "frame": self.frame,
            "detector": self.detector, "score": self.score, "box": [float(v) for v in self.box],
            "landmarks": np.asarray(self.landmarks, dtype=np.float64).round(3).tolist(),
        }

    def detection(self) -> "Detection":
        from crowdkit.engine.detect import Detection

        return Detection(self.box, self.score, self.landmarks)


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


def crop_box(box: Sequence[float], shape: Sequence[int], margin: float) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` × its width/height on each side, rounded out and clipped to ``shape``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    height, width = int(shape[0]), int(shape[1])
    return (max(0, math.floor(x1 - dx)), max(0, math.floor(y1 - dy)),
            min(width, math.ceil(x2 + dx)), min(height, math.ceil(y2 + dy)))


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


def _layout_root(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> Path | None:
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


def extract_faces(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    detector: "str | Detector" = "opencv",
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
    (:mod:`crowdkit.engine.faces`), rewrites only crops whose bytes changed, and
    replaces the manifest atomically; an interrupted run leaves the previous
    manifest in place.
    """
    import cv2
    from tqdm.auto import tqdm

    from crowdkit.engine.faces import _chunks, _FaceCache, _iter_gallery, is_video, resolve_detector

    if stride < 1:
        raise ConfigError(f"stride must be ≥ 1, got {stride}")
    if not (0 <= margin <= 2):
        raise ConfigError(f"margin must be between 0 and 2 (a fraction of the box), got {margin}")
    out_dir = Path(out_dir)
    detector = resolve_detector(detector)
    cache = _FaceCache(detector, None)
    root = _layout_root(sources)
    video = isinstance(sources, (str, os.PathLike)) and is_video(sources)
    skipped: list[str] = []
    total, images = _iter_gallery(sources, stride=stride, skipped=skipped)
    rows: list[ExtractedFace] = []
    names: set[str] = set()
    count = 0
    bar = tqdm(total=total or None, desc=f"extract ({detector.name})", unit="img", disable=not progress)
    try:
        for chunk in _chunks(images, batch_size):
            count += len(chunk)
            found: list[list[Detection] | None] = [cache.get_detections(item.key) for item in chunk]
            pixels = [item.load() for item in chunk]
            todo = [i for i, dets in enumerate(found) if dets is None]
            for i, dets in zip(todo, detector.detect_batch([pixels[i] for i in todo]) if todo else []):
                found[i] = list(dets)
                cache.put_detections(chunk[i].key, found[i])
            for item, image, dets in zip(chunk, pixels, found):
                for k, det in enumerate(dets or []):
                    x0, y0, x1, y1 = crop_box(det.box, image.shape, margin)
                    if x1 - x0 < 2 or y1 - y0 < 2:
                        continue
                    ok, encoded = cv2.imencode(
                        ".jpg", cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
                    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
                        raise ConfigError(f"could not encode a crop of {item.source} as JPEG")
                    data = encoded.tobytes()
                    name = _crop_name(item.source, item.frame, k, root, video)
                    while name in names:  # two sources with one stem in one folder
                        name = name[:-4] + "_.jpg"
                    names.add(name)
                    _write_if_changed(out_dir / name, data)
                    box = det.box
                    rows.append(ExtractedFace(
                        file=name, sha256=sha256_bytes(data), source=item.source, frame=item.frame,
                        detector=detector.name, score=det.score,
                        box=(box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0),
                        landmarks=np.asarray(det.landmarks, dtype=np.float32) - np.array([x0, y0], dtype=np.float32),
                    ))
            bar.update(len(chunk))
            bar.set_postfix(faces=len(rows), refresh=False)
    finally:
        bar.close()
    from crowdkit.engine.faces import _detector_id

    write_manifest(out_dir, rows, detector=detector.name, detector_id=_detector_id(detector), margin=margin)
    logger.info("extracted %d face(s) from %d image(s) into %s", len(rows), count, out_dir)
    return Extraction(out_dir, rows, count, tuple(skipped))


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_manifest(folder: str | os.PathLike, rows: Sequence[ExtractedFace], *, detector: str, detector_id: str,
                   margin: float) -> Path:
    """Write ``folder/crowdkit-faces.json`` atomically."""
    target = Path(folder) / MANIFEST_NAME
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps({
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "detector": detector,
            "detector_id": detector_id, "margin": margin, "faces": [row.to_json() for row in rows],
        }, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    return target


def _bad(path: Path, what: str) -> DatasetFormatError:
    return DatasetFormatError(
        f"{path} is not a valid crowdkit face manifest ({what}); delete it or rerun `crowdkit extract` "
        "to rewrite it")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def read_manifest(path: str | os.PathLike) -> list[ExtractedFace]:
    """The rows of a manifest (a file, or a folder holding ``crowdkit-faces.json``).

    Raises
    ------
    DatasetFormatError
        not JSON, not this format, too large, or a row with missing or non-finite values,
        a file name that leaves the folder, or landmarks that are not 5 points.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise _bad(path, f"{size} bytes, more than the {MAX_MANIFEST_BYTES} accepted")
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetFormatError(f"{path} does not exist; run `crowdkit extract` to write it") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _bad(path, f"not JSON: {error}") from None
    except RecursionError:
        raise _bad(path, "nested too deeply") from None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise _bad(path, f"no \"format\": \"{MANIFEST_FORMAT}\" field")
    if document.get("version") != MANIFEST_VERSION:
        raise _bad(path, f"version {document.get('version')!r}, this crowdkit reads {MANIFEST_VERSION}")
    faces = document.get("faces")
    if not isinstance(faces, list):
        raise _bad(path, "\"faces\" is not a list")
    rows = []
    for n, row in enumerate(faces):
        try:
            if not isinstance(row, dict):
                raise ValueError("not an object")
            name = row["file"]
            if not isinstance(name, str) or not name or PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
                raise ValueError(f"file {name!r} is not a relative path inside the folder")
            digest = row["sha256"]
            if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"sha256 {digest!r} is not 64 lowercase hex digits")
            if not isinstance(row["detector"], str) or not isinstance(row["source"], str):
                raise ValueError("detector and source must be strings")
            frame = row["frame"]
            if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
                raise ValueError(f"frame {frame!r} is not a non-negative integer")
            box = row["box"]
            if not isinstance(box, list) or len(box) != 4:
                raise ValueError("box is not 4 numbers")
            box = tuple(_number(v) for v in box)
            points = row["landmarks"]
            if (not isinstance(points, list) or len(points) != 5
                    or not all(isinstance(p, list) and len(p) == 2 for p in points)):
                raise ValueError("landmarks are not 5 [x, y] points")
            landmarks = np.array([[_number(v) for v in p] for p in points], dtype=np.float32)
            rows.append(ExtractedFace(name, digest, row["source"], frame, row["detector"], _number(row["score"]),
                                      box, landmarks))
        except KeyError as error:
            raise _bad(path, f"face {n} has no {error.args[0]!r}") from None
        except (ValueError, TypeError) as error:
            raise _bad(path, f"face {n}: {error}") from None
    return rows


# --------------------------------------------------------------------------- lookup for the search

_MANIFESTS: dict[tuple[str, int, int, int], dict[str, list[ExtractedFace]]] = {}


def manifest_index(folder: str | os.PathLike) -> dict[str, list[ExtractedFace]]:
    """sha256 of a crop's bytes → its manifest rows, for the manifest in ``folder`` (empty if none).

    Remembered per manifest file (path, size, mtime, inode) in this process. A
    manifest that cannot be read is ignored with a warning: the search then
    detects those crops itself.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        stat = path.stat()
    except OSError:
        return {}
    memo = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    index = _MANIFESTS.get(memo)
    if index is None:
        try:
            rows = read_manifest(path)
        except DatasetFormatError as error:
            logger.warning("ignoring the face manifest: %s; its crops are detected again", error)
            rows = []
        index = {}
        for row in rows:
            index.setdefault(row.sha256, []).append(row)
        _MANIFESTS[memo] = index
    return index
