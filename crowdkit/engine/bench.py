"""``crowdkit bench find``: crowdkit's find against ``DeepFace.find`` on ≥ 1,000 LFW face crops.

What is measured (all in one process, on this machine's cores):

cold
    DeepFace.find with its representations datastore deleted, against
    crowdkit's :func:`crowdkit.engine.faces.find` with an empty cache (a fresh
    ``CROWDKIT_HOME``). Both build their models inside the timed call; both
    packages are imported before. Both search the same folder of extracted
    face crops: DeepFace.find detects a face in every crop again (as the
    study did); crowdkit reuses the detections recorded in the folder's
    manifest (:mod:`crowdkit.engine.extract`) and embeds on all cores.
warm
    a *new* query photo against the gallery both have cached, same process;
    the median over ``warm_queries`` (3) such photos. Its floor is one dlib
    forward pass on the new query's chip, which both must pay; the report
    prints it and the best speedup it allows (deepface warm / floor).
bare inference (the limit)
    crowdkit's dlib embedder with one worker over the aligned chips of the
    same gallery faces; divided by the cores crowdkit's embedder uses, it is
    the best a cold run could do.
agreement
    on *identical* aligned inputs (the chips crowdkit produced), deepface's
    Dlib client (``DeepFace.represent(..., detector_backend="skip")``) and
    crowdkit's dlib embedder each embed the gallery chips and the query chip;
    we report the largest |Δ cosine distance| and the fraction of gallery faces
    on which both take the same decision at the threshold.

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
import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import atomic_path, write_json_atomic

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class FindBenchmark:
    """Seconds and ratios of one ``crowdkit bench find`` run."""

    images: int
    faces_crowdkit: int
    faces_deepface: int
    detector: str
    deepface_cold_s: float
    deepface_warm_s: float
    crowdkit_cold_s: float
    crowdkit_warm_s: float
    bare_inference_s: float
    cores_used: int
    max_abs_delta_distance: float
    agreement: float
    threshold: float
    cpu_s: dict[str, float] = field(default_factory=dict)
    load_average: str = ""
    photos: int = 0
    extract_s: float = float("nan")
    floor_s: float = float("nan")

    @property
    def best_warm_speedup(self) -> float:
        """deepface's warm time over the floor (one dlib forward pass on the query chip): the most any warm can gain."""
        return self.deepface_warm_s / self.floor_s

    @property
    def best_cold_speedup(self) -> float:
        """deepface's cold time over bare inference / cores: the most any cold run on these cores can gain.

        Both run the same dlib ResNet on every face, so no cold search can beat
        the inference time spread perfectly over the cores.
        """
        return self.deepface_cold_s / self.limit_s

    @property
    def speedup_cold(self) -> float:
        return self.deepface_cold_s / self.crowdkit_cold_s

    @property
    def speedup_warm(self) -> float:
        return self.deepface_warm_s / self.crowdkit_warm_s

    @property
    def limit_s(self) -> float:
        """Bare inference divided by the cores used: what a perfect cold run would take."""
        return self.bare_inference_s / self.cores_used

    @property
    def cold_over_limit(self) -> float:
        return self.crowdkit_cold_s / self.limit_s

    def summary_line(self) -> str:
        return f"speedup_cold={self.speedup_cold:.2f} speedup_warm={self.speedup_warm:.2f} agreement={self.agreement:.4f}"

    def report(self) -> str:
        """The lines ``crowdkit bench find`` prints; the last one is :meth:`summary_line`."""
        ok = lambda cond: "ok" if cond else "MISSED"  # noqa: E731
        return "\n".join([
            f"gallery: {self.images} face crops extracted from {self.photos or self.images} LFW photos; faces found: "
            f"crowdkit {self.faces_crowdkit} (recorded detections), deepface {self.faces_deepface} (re-detected); "
            f"detector {self.detector} (Haar) in both; model Dlib; cosine",
            f"extraction (crops + manifest, not timed in either cold run) {self.extract_s:8.2f} s",
            f"DeepFace.find cold  {self.deepface_cold_s:8.2f} s",
            f"crowdkit find cold  {self.crowdkit_cold_s:8.2f} s   speedup {self.speedup_cold:5.2f}x (target >= 2.5: "
            f"{ok(self.speedup_cold >= 2.5)})",
            f"DeepFace.find warm  {self.deepface_warm_s:8.3f} s   (median over new query photos)",
            f"crowdkit find warm  {self.crowdkit_warm_s:8.3f} s   speedup {self.speedup_warm:5.2f}x (target >= 10: "
            f"{ok(self.speedup_warm >= 10)})",
            f"warm floor: one dlib forward pass on the new query chip {self.floor_s:.3f} s (both must pay it); "
            f"best possible warm speedup = deepface warm / floor = {self.best_warm_speedup:.2f}x; crowdkit warm = "
            f"{self.crowdkit_warm_s / self.floor_s:.2f}x the floor",
            f"bare dlib inference {self.bare_inference_s:8.2f} s on 1 worker over {self.faces_crowdkit} chips; "
            f"/ {self.cores_used} cores = {self.limit_s:.2f} s; crowdkit cold = {self.cold_over_limit:.2f}x that "
            f"(target <= 1.25: {ok(self.cold_over_limit <= 1.25)})",
            f"cold bound: best possible cold speedup on {self.cores_used} cores = deepface cold / (bare / cores) = "
            f"{self.best_cold_speedup:.2f}x; crowdkit reaches {self.speedup_cold / self.best_cold_speedup:.0%} of it",
            f"identical chips: max |d_deepface - d_crowdkit| = {self.max_abs_delta_distance:.2e}; same decision at "
            f"cosine {self.threshold:g} for {self.agreement:.4f} of faces (target >= 0.99: {ok(self.agreement >= 0.99)})",
            *self._cpu_lines(),
            self.summary_line(),
        ])

    def _cpu_lines(self) -> list[str]:
        if not self.cpu_s:
            return []
        cpu = self.cpu_s
        line = "CPU seconds (this process + its workers): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        lines = [line]
        if cpu.get("crowdkit_cold") and cpu.get("deepface_cold"):
            lines.append(f"CPU-time ratio cold {cpu['deepface_cold'] / cpu['crowdkit_cold']:.2f}x, warm "
                         f"{cpu['deepface_warm'] / max(cpu['crowdkit_warm'], 1e-9):.2f}x; load average (1/5/15 min) "
                         f"{self.load_average}")
        return lines


# --------------------------------------------------------------------------- the gallery

def default_workdir() -> Path:
    return config.cache_dir("bench")


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
    import cv2

    from crowdkit.engine.extract import MANIFEST_NAME, extract_faces

    if faces < 10:
        raise ConfigError(f"the benchmark gallery needs at least 10 faces, got {faces}")
    lfw = config.data_path("lfw", "images_deepfunneled")
    workdir = Path(workdir)
    folder = workdir / f"gallery-{faces}-{detector}-extracted-q{1 + warm_queries}"
    queries = workdir / "queries"
    manifest = folder.parent / (folder.name + ".json")
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        if (folder / MANIFEST_NAME).is_file() and all((folder / name).is_file() for name in info["files"]):
            return BenchGallery(folder, Path(info["query_cold"]), tuple(Path(q) for q in info["queries_warm"]),
                                info["identity"], len(info["files"]), info["identities"], tuple(crop),
                                info["photos"], info["extract_s"])

    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    photos = {p.name: sorted(p.glob("*.jpg")) for p in people}
    identity = next(name for name in sorted(photos) if len(photos[name]) >= 5 + warm_queries)
    query_photos = photos[identity][:1 + warm_queries]
    chosen = [(identity, p) for p in photos[identity][1 + warm_queries:9 + warm_queries]]
    for name in sorted(photos):
        if len(chosen) >= faces:
            break
        if name != identity:
            chosen.extend((name, p) for p in photos[name][:per_identity])
    chosen = chosen[:faces]
    if len(chosen) < faces:
        raise ConfigError(f"LFW at {lfw} has only {len(chosen)} photos; asked for {faces}")

    if folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    extraction = extract_faces([p for _, p in chosen], folder, detector=detector, progress=progress)
    extract_s = time.perf_counter() - start
    files = [row.file for row in extraction.faces]
    identities = len({Path(name).parent.name for name in files})

    query_paths = [queries / q.name for q in query_photos]
    for src, dst in zip(query_photos, query_paths):
        image = cv2.imread(str(src), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"could not read {src}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dst) as tmp:
            ok, data = cv2.imencode(".jpg", image[crop[0]:crop[1], crop[0]:crop[1]], [cv2.IMWRITE_JPEG_QUALITY, 95])
            tmp.write_bytes(data.tobytes())
    write_json_atomic(manifest, {
        "files": files, "identity": identity, "identities": identities, "photos": len(chosen),
        "extract_s": extract_s, "detector": detector,
        "query_cold": str(query_paths[0]), "queries_warm": [str(q) for q in query_paths[1:]], "crop": list(crop),
    })
    return BenchGallery(folder, query_paths[0], tuple(query_paths[1:]), identity, len(files), identities,
                        tuple(crop), len(chosen), extract_s)


# --------------------------------------------------------------------------- helpers

class _Stopwatch:
    """Wall seconds and CPU seconds (this process's threads plus reaped child processes).

    On a shared machine wall time depends on what else runs; CPU seconds show
    the work each implementation did. Worker processes count once they have
    exited (close their pool before :meth:`stop`).
    """

    def __init__(self) -> None:
        import resource

        self._resource = resource
        self._wall = time.perf_counter()
        self._cpu = self._cpu_now()

    def _cpu_now(self) -> float:
        children = self._resource.getrusage(self._resource.RUSAGE_CHILDREN)
        return time.process_time() + children.ru_utime + children.ru_stime

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self._wall, self._cpu_now() - self._cpu


def _load_average() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


@contextmanager
def _crowdkit_home(path: Path) -> Iterator[None]:
    """Run with ``CROWDKIT_HOME`` pointing at ``path`` (so crowdkit's caches start empty there)."""
    old = os.environ.get("CROWDKIT_HOME")
    os.environ["CROWDKIT_HOME"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CROWDKIT_HOME", None)
        else:
            os.environ["CROWDKIT_HOME"] = old


def _prepare_deepface() -> None:
    """Environment deepface needs before it is imported: legacy Keras, crowdkit's DEEPFACE_HOME, dlib files."""
    from crowdkit.common.weights import install_dlib_for_deepface, prepare_tensorflow

    prepare_tensorflow()
    install_dlib_for_deepface()


def _deepface_find(query: Path, gallery: Path, detector: str) -> tuple[float, float]:
    """(wall s, CPU s) of one DeepFace.find call."""
    from deepface import DeepFace

    watch = _Stopwatch()
    DeepFace.find(
        img_path=str(query), db_path=str(gallery), model_name="Dlib", detector_backend=detector,
        distance_metric="cosine", enforce_detection=False, silent=True, refresh_database=True,
        return_type="pandas",  # its default today; explicit silences the FutureWarning
    )
    return watch.stop()


def _deepface_rows(gallery: Path) -> int:
    """Faces in deepface's datastore (with enforce_detection=False a photo without a detection counts whole)."""
    store = next(gallery.glob("ds_model_dlib_*.npz"), None)
    if store is None:
        return -1
    with np.load(store, allow_pickle=False) as npz:
        return int(npz["has_embedding"].sum()) if "has_embedding" in npz.files else -1


def _deepface_embed(chips_rgb: np.ndarray, batch: int = 64) -> np.ndarray:
    """deepface's Dlib client on aligned RGB chips (N, 150, 150, 3), through DeepFace.represent."""
    from deepface import DeepFace

    out = []
    for start in range(0, len(chips_rgb), batch):
        bgr = [np.ascontiguousarray(c[:, :, ::-1]) for c in chips_rgb[start:start + batch]]
        reps = DeepFace.represent(img_path=bgr, model_name="Dlib", detector_backend="skip", enforce_detection=False)
        # a list input gives one list of faces per image
        for rep in reps:
            first = rep[0] if isinstance(rep, list) else rep
            out.append(np.asarray(first["embedding"], dtype=np.float32))
    return np.stack(out)


def _single_worker_embedder():
    """crowdkit's dlib embedder restricted to one worker (the bare-inference measurement)."""
    from crowdkit.engine.embed import get_embedder

    for option in ("workers", "n_workers", "num_workers", "processes"):
        try:
            return get_embedder("dlib", **{option: 1})
        except (TypeError, ConfigError):
            continue
    return get_embedder("dlib")


def _cores_used(embedder: object) -> int:
    for option in ("workers", "n_workers", "num_workers", "processes"):
        value = getattr(embedder, option, None)
        if isinstance(value, int) and value > 0:
            return value
    return os.cpu_count() or 1


# --------------------------------------------------------------------------- the benchmark

def run_find_benchmark(
    *,
    faces: int = 1000,
    detector: str = "opencv",
    workdir: str | os.PathLike | None = None,
    progress: bool = True,
) -> FindBenchmark:
    """Build the gallery (or reuse it) and time both implementations; see the module docstring."""
    from crowdkit.engine import faces as faces_mod
    from crowdkit.engine.match import pairwise_distances

    if detector != "opencv":
        logger.warning("deepface's %r and crowdkit's %r may not be the same detector; 'opencv' (Haar) is in both",
                       detector, detector)
    workdir = Path(workdir) if workdir is not None else default_workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    bench = build_lfw_gallery(workdir, faces=faces, detector=detector, progress=progress)
    logger.info("gallery %s: %d crops of %d people from %d photos (extracted in %.1f s); query %s", bench.folder,
                bench.images, bench.identities, bench.photos, bench.extract_s, bench.identity)

    _prepare_deepface()
    from deepface import DeepFace  # noqa: F401 - imported before any timing (TensorFlow start-up)
    import pandas  # noqa: F401

    # DeepFace cold: no representations datastore in the gallery folder.
    for stale in bench.folder.glob("ds_model_*"):
        stale.unlink()
    for stale in bench.folder.glob("representations_*.pkl"):
        stale.unlink()
    logger.info("DeepFace.find cold over %d images (this takes a few minutes)", bench.images)
    load_before = _load_average()
    deepface_cold, deepface_cold_cpu = _deepface_find(bench.query_cold, bench.folder, detector)
    warm = [_deepface_find(q, bench.folder, detector) for q in bench.queries_warm]
    deepface_warm, deepface_warm_cpu = (float(np.median(v)) for v in zip(*warm))
    faces_deepface = _deepface_rows(bench.folder)

    # crowdkit cold: a fresh home (empty caches), models not yet built, nothing remembered in memory.
    home = workdir / "crowdkit-home"
    if home.exists():
        shutil.rmtree(home)
    with _crowdkit_home(home):
        faces_mod.forget()
        watch = _Stopwatch()
        cold_table = faces_mod.find([bench.query_cold], bench.folder, detector=detector, model="dlib",
                                    metric="cosine", progress=progress)
        faces_mod.resolve_embedder("dlib").close()  # reap the workers so their CPU time is counted
        crowdkit_cold, crowdkit_cold_cpu = watch.stop()
        warm = []
        for query_photo in bench.queries_warm:
            watch = _Stopwatch()
            faces_mod.find([query_photo], bench.folder, detector=detector, model="dlib", metric="cosine",
                           progress=False)
            warm.append(watch.stop())
        crowdkit_warm, crowdkit_warm_cpu = (float(np.median(v)) for v in zip(*warm))

        # The aligned chips crowdkit produced (from its cache: detections are not recomputed).
        embedder = faces_mod.resolve_embedder("dlib")
        gallery = faces_mod.detect_and_embed(bench.folder, detector=detector, embedder=embedder,
                                             return_chips=True, progress=False)
        query = faces_mod.embed_query(bench.queries_warm[0], detector=detector, embedder=embedder, return_chips=True)
    threshold = float(cold_table["threshold"].iloc[0])
    cores = _cores_used(embedder)

    logger.info("bare inference: dlib on %d chips, one worker", len(gallery))
    single = _single_worker_embedder()
    single.embed(gallery.chips[:1])  # load the model outside the timing
    floors = []
    for _ in range(5):
        watch = _Stopwatch()
        single.embed(query.chips)
        floors.append(watch.stop()[0])
    floor = float(np.median(floors))
    watch = _Stopwatch()
    bare = single.embed(gallery.chips)
    bare_inference, bare_cpu = watch.stop()

    logger.info("agreement: deepface's Dlib client on the same %d chips", len(gallery))
    theirs_gallery = _deepface_embed(gallery.chips)
    theirs_query = _deepface_embed(query.chips)
    ours = pairwise_distances(query.embeddings, gallery.embeddings, metric="cosine")[0]
    theirs = pairwise_distances(theirs_query, theirs_gallery, metric="cosine")[0]
    delta = float(np.max(np.abs(ours - theirs))) if len(ours) else float("nan")
    agreement = float(np.mean((ours <= threshold) == (theirs <= threshold))) if len(ours) else float("nan")
    if not np.allclose(bare, gallery.embeddings, atol=1e-4):
        logger.warning("the single-worker embeddings differ from the cached ones (max %.2e)",
                       float(np.max(np.abs(bare - gallery.embeddings))))

    return FindBenchmark(
        images=bench.images, faces_crowdkit=len(gallery), faces_deepface=faces_deepface, detector=detector,
        deepface_cold_s=deepface_cold, deepface_warm_s=deepface_warm,
        crowdkit_cold_s=crowdkit_cold, crowdkit_warm_s=crowdkit_warm,
        bare_inference_s=bare_inference, cores_used=cores,
        max_abs_delta_distance=delta, agreement=agreement, threshold=threshold,
        cpu_s={"deepface_cold": deepface_cold_cpu, "deepface_warm": deepface_warm_cpu,
               "crowdkit_cold": crowdkit_cold_cpu, "crowdkit_warm": crowdkit_warm_cpu, "bare_inference": bare_cpu},
        load_average=f"{load_before} before, {_load_average()} after",
        photos=bench.photos, extract_s=bench.extract_s, floor_s=floor,
    )
