"""The face manifest: ``crowdkit-faces.json``, the record of what :func:`crowdkit.engine.extract.extract_faces` found.

The manifest lies beside the crops and says for each crop what was found in
it: the detector, its score, the box and the five landmarks *in crop
coordinates*, and the sha256 of the crop's bytes. A search
(:func:`crowdkit.engine.pipeline.detect_and_embed`) reads it through
:func:`recorded_detections`: a crop whose bytes still hash to the recorded
sha256, searched with a detector of the recorded name, is aligned with the
recorded landmarks and embedded without running any detector. Manifests are
looked up in each image's folder and up to three folders above it. A manifest
that is not valid is ignored by the search with a warning (the search falls
back to detection), and reported as
:class:`~crowdkit.common.exceptions.DatasetFormatError` by :func:`read_manifest`.

Format (JSON, written atomically)::

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
from typing import Any, Iterable, Sequence

import numpy as np

from crowdkit.common.exceptions import DatasetFormatError
from crowdkit.common.io import atomic_path
from crowdkit.engine.detection import Detection
from crowdkit.engine.gallery import GallerySource, is_video

logger = logging.getLogger(__name__)

#: The manifest's file name inside the output folder.
MANIFEST_NAME = "crowdkit-faces.json"
MANIFEST_FORMAT = "crowdkit-faces"
MANIFEST_VERSION = 1
#: A manifest larger than this is not read (a hostile or mistaken file).
MAX_MANIFEST_BYTES = 512 * 1024 * 1024
#: How many folders above an image a manifest describing it may lie.
MANIFEST_LEVELS = 3


@dataclass(frozen=True)
class ExtractedFace:
    """One crop written by :func:`crowdkit.engine.extract.extract_faces` (a manifest row).

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

    def detection(self) -> Detection:
        return Detection(self.box, self.score, self.landmarks)


# --------------------------------------------------------------------------- writing and reading

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


def _load_document(path: Path) -> list[Any]:
    """The ``faces`` list of a manifest file, after checking its size, JSON, format and version."""
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
    return faces


def _parse_row(row: Any) -> ExtractedFace:
    """One manifest row; ValueError, TypeError or KeyError says what is wrong with it."""
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
    return ExtractedFace(name, digest, row["source"], frame, row["detector"], _number(row["score"]), box, landmarks)


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
    rows = []
    for n, row in enumerate(_load_document(path)):
        try:
            rows.append(_parse_row(row))
        except KeyError as error:
            raise _bad(path, f"face {n} has no {error.args[0]!r}") from None
        except (ValueError, TypeError) as error:
            raise _bad(path, f"face {n}: {error}") from None
    return rows


# --------------------------------------------------------------------------- lookup for the search

_MANIFESTS: dict[tuple[str, int, int, int], dict[str, list[ExtractedFace]]] = {}


def forget_manifests() -> None:
    """Drop the manifests remembered in this process (they are read again on their next use)."""
    _MANIFESTS.clear()


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


def manifest_folders(folders: Iterable[str], levels: int = MANIFEST_LEVELS) -> list[str]:
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


def manifest_signatures(folders: Iterable[str]) -> tuple[tuple[str, int, int, int], ...]:
    """``(folder, size, mtime_ns, inode)`` of each manifest that may describe images in ``folders``, sorted."""
    found = []
    for folder in manifest_folders(folders):
        try:
            stat = os.stat(os.path.join(folder, MANIFEST_NAME))
            found.append((folder, stat.st_size, stat.st_mtime_ns, stat.st_ino))
        except OSError:
            continue
    return tuple(sorted(found))


def _source_folders(sources: GallerySource) -> list[str]:
    """The folders whose manifests may describe a gallery's images (none for a video)."""
    if isinstance(sources, (str, os.PathLike)):
        path = Path(sources)
        if path.is_dir():
            return manifest_folders([str(path)])
        if path.is_file() and not is_video(path):
            return manifest_folders([str(path.parent)])
        return []
    return manifest_folders({os.path.dirname(os.fspath(p)) for p in sources})


def recorded_detections(sources: GallerySource, detector_name: str) -> dict[str, list[Detection]]:
    """Content sha256 → the detections a face manifest recorded with this detector, for a gallery's images."""
    recorded: dict[str, list[Detection]] = {}
    for folder in _source_folders(sources):
        for digest, rows in manifest_index(folder).items():
            if digest in recorded:
                continue
            rows = [row for row in rows if row.detector == detector_name]
            if rows:
                first = rows[0].file
                recorded[digest] = [row.detection() for row in rows if row.file == first]
    return recorded
