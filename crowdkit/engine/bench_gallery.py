"""The benchmark's gallery: faces extracted from LFW photos the study's way, and held-out query photos.

The gallery is built the study's way from LFW's deep-funneled images
(250 × 250, face centred): :func:`crowdkit.engine.extract.extract_faces` with the
benchmark's detector writes each detected face as a JPEG crop, plus the
manifest, into a work folder under ``config.cache_dir("bench")`` (never into
the repository); its time is printed on its own line and timed in neither
cold run. The query photos are the central ``crop`` square of held-out photos.
The query person is the first LFW identity (sorted) with at least 8
photos; four of their photos are kept out of the gallery (the cold query and
three warm ones); up to 8 others are in the gallery.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import atomic_path, write_json_atomic
from crowdkit.engine.extract import extract_faces
from crowdkit.engine.manifest import MANIFEST_NAME


@dataclass(frozen=True)
class BenchGallery:
    """The benchmark's files: a gallery folder and two query photos of a person also in it."""

    folder: Path
    query_cold: Path
    queries_warm: tuple[Path, ...]
    identity: str
    images: int
    identities: int
    crop: tuple[int, int]
    photos: int = 0
    extract_s: float = float("nan")



# --------------------------------------------------------------------------- the gallery

def default_workdir() -> Path:
    return config.cache_dir("bench")


def _gallery_folder(workdir: Path, faces: int, detector: str, warm_queries: int) -> Path:
    return workdir / f"gallery-{faces}-{detector}-extracted-q{1 + warm_queries}"


def _reuse_gallery(folder: Path, crop: tuple[int, int]) -> BenchGallery | None:
    """The gallery a previous run left in ``folder``, if its record and every crop are still there."""
    record = folder.parent / (folder.name + ".json")
    if not record.is_file():
        return None
    info = json.loads(record.read_text())
    if not (folder / MANIFEST_NAME).is_file() or not all((folder / name).is_file() for name in info["files"]):
        return None
    return BenchGallery(folder, Path(info["query_cold"]), tuple(Path(q) for q in info["queries_warm"]),
                        info["identity"], len(info["files"]), info["identities"], tuple(crop),
                        info["photos"], info["extract_s"])


def _choose_photos(lfw: Path, *, faces: int, per_identity: int,
                   warm_queries: int) -> tuple[str, list[Path], list[Path]]:
    """(query identity, its held-out query photos, the gallery photos): the query person first, then others."""
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    photos = {p.name: sorted(p.glob("*.jpg")) for p in people}
    identity = next(name for name in sorted(photos) if len(photos[name]) >= 5 + warm_queries)
    query_photos = photos[identity][:1 + warm_queries]
    chosen = list(photos[identity][1 + warm_queries:9 + warm_queries])
    for name in sorted(photos):
        if len(chosen) >= faces:
            break
        if name != identity:
            chosen.extend(photos[name][:per_identity])
    chosen = chosen[:faces]
    if len(chosen) < faces:
        raise ConfigError(f"LFW at {lfw} has only {len(chosen)} photos; asked for {faces}")
    return identity, query_photos, chosen


def _write_query_crops(query_photos: list[Path], folder: Path, crop: tuple[int, int]) -> list[Path]:
    """The central ``crop`` square of each query photo, as a JPEG in ``folder``."""
    import cv2

    paths = [folder / q.name for q in query_photos]
    for src, dst in zip(query_photos, paths):
        image = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"could not read {src}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dst) as tmp:
            ok, data = cv2.imencode(".jpg", image[crop[0]:crop[1], crop[0]:crop[1]], [cv2.IMWRITE_JPEG_QUALITY, 95])
            tmp.write_bytes(data.tobytes())
    return paths


def build_lfw_gallery(
    workdir: str | os.PathLike,
    *,
    faces: int = 1000,
    detector: str = "opencv",
    crop: tuple[int, int] = (50, 200),
    per_identity: int = 4,
    warm_queries: int = 3,
    progress: bool = False,
) -> BenchGallery:
    """Extract the faces of ``faces`` LFW photos into ``workdir/gallery-…/`` the study's way (reused when complete).

    The gallery is what :func:`crowdkit.engine.extract.extract_faces` writes with
    ``detector`` over the chosen LFW deep-funneled photos: one JPEG crop per
    detected face (person sub-folders kept) plus the manifest of the
    detections. The query photos are the central ``crop`` square of the query
    person's held-out photos, written to ``workdir/queries``.

    Parameters
    ----------
    faces : LFW photos to extract faces from (the gallery holds about as many crops)
    crop : (start, stop) of the central square cut from each 250 × 250 query photo
    per_identity : most photos per identity, so the gallery has many people
    warm_queries : photos of the query person kept out of the gallery for the warm runs (besides the cold query)
    """
    if faces < 10:
        raise ConfigError(f"the benchmark gallery needs at least 10 faces, got {faces}")
    lfw = config.data_path("lfw", "images_deepfunneled")
    workdir = Path(workdir)
    folder = _gallery_folder(workdir, faces, detector, warm_queries)
    reused = _reuse_gallery(folder, crop)
    if reused is not None:
        return reused
    identity, query_photos, chosen = _choose_photos(lfw, faces=faces, per_identity=per_identity,
                                                    warm_queries=warm_queries)
    if folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    extraction = extract_faces(chosen, folder, detector=detector, progress=progress)
    extract_s = time.perf_counter() - start
    files = [row.file for row in extraction.faces]
    identities = len({Path(name).parent.name for name in files})
    query_paths = _write_query_crops(query_photos, workdir / "queries", crop)
    write_json_atomic(folder.parent / (folder.name + ".json"), {
        "files": files, "identity": identity, "identities": identities, "photos": len(chosen),
        "extract_s": extract_s, "detector": detector,
        "query_cold": str(query_paths[0]), "queries_warm": [str(q) for q in query_paths[1:]], "crop": list(crop),
    })
    return BenchGallery(folder, query_paths[0], tuple(query_paths[1:]), identity, len(files), identities,
                        tuple(crop), len(chosen), extract_s)
