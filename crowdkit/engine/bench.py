"""``crowdkit bench find``: crowdkit's find against ``DeepFace.find`` on ≥ 1,000 LFW face crops.

What is measured (all in one process, on this machine's cores):

cold
    DeepFace.find with its representations datastore deleted, against
    crowdkit's :func:`crowdkit.engine.faces.find` with an empty cache (its
    ``CROWDKIT_HOME`` without ``cache/``; the dlib weights converted for torch
    stay, as deepface's weight files do). Both build or load their models
    inside the timed call; both
    packages and the frameworks they run on (TensorFlow, torch) are imported before. Both search the same folder of extracted
    face crops: DeepFace.find detects a face in every crop again (as the
    study did); crowdkit reuses the detections recorded in the folder's
    manifest (:mod:`crowdkit.engine.manifest`) and embeds on all cores.
warm
    a *new* query photo against the gallery both have cached, same process;
    the median over ``warm_queries`` (3) such photos. Its floor is what both
    must pay for a photo never seen: the Haar cascade on it (the same detector
    in both) and one dlib forward pass on its chip, each timed once per photo
    in turn as a search runs them; the report prints it and the best speedup
    it allows (deepface warm / floor).
bare inference (the limit)
    crowdkit's dlib embedder (the torch network, every core through torch's
    intra-op threads) over the aligned chips of the same gallery faces, the
    model already loaded: no cold search that embeds every face can beat it.
    The report prints the GFLOP/s it reaches per core (the network's
    multiply-adds counted from its layers) beside the cores' FMA peak.
agreement
    on *identical* aligned inputs (the chips crowdkit produced), deepface's
    Dlib client (``DeepFace.represent(..., detector_backend="skip")``) and
    crowdkit's dlib embedder each embed the gallery chips and the query chip;
    we report the largest |Δ cosine distance| and the fraction of gallery faces
    on which both take the same decision at the threshold.

The gallery and the query photos are built by :mod:`crowdkit.engine.bench_gallery`.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from crowdkit.engine.backends import resolve_embedder
from crowdkit.engine.bench_compute import fma_peak_gflops_per_core
from crowdkit.engine.bench_gallery import BenchGallery, build_lfw_gallery, default_workdir
from crowdkit.engine.embed import get_embedder
from crowdkit.engine.faces import embed_query, find, forget
from crowdkit.engine.match import pairwise_distances
from crowdkit.engine.pipeline import FaceSet, detect_and_embed

logger = logging.getLogger(__name__)


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
    floor_detect_s: float = float("nan")
    gflop_per_face: float = float("nan")
    peak_gflops_per_core: float = float("nan")
    peak_note: str = ""

    @property
    def best_warm_speedup(self) -> float:
        """deepface's warm time over the floor (detecting the new query's face, one forward pass on its chip): the
        most any warm search can gain."""
        return self.deepface_warm_s / self.floor_s

    @property
    def best_cold_speedup(self) -> float:
        """deepface's cold time over bare inference: the most any cold run on these cores can gain.

        Both run the same dlib ResNet on every face, so no cold search can beat
        the bare forward passes over every face.
        """
        return self.deepface_cold_s / self.limit_s

    @property
    def gflops_per_core(self) -> float:
        """GFLOP/s per core the bare inference reached (2 FLOP per multiply-add)."""
        return self.faces_crowdkit * self.gflop_per_face / self.bare_inference_s / self.cores_used

    @property
    def speedup_cold(self) -> float:
        return self.deepface_cold_s / self.crowdkit_cold_s

    @property
    def speedup_warm(self) -> float:
        return self.deepface_warm_s / self.crowdkit_warm_s

    @property
    def limit_s(self) -> float:
        """Bare inference on every core: what a perfect cold run would take."""
        return self.bare_inference_s

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
            f"crowdkit find cold  {self.crowdkit_cold_s:8.2f} s   speedup {self.speedup_cold:5.2f}x (target >= 8: "
            f"{ok(self.speedup_cold >= 8)})",
            f"DeepFace.find warm  {self.deepface_warm_s:8.3f} s   (median over new query photos)",
            f"crowdkit find warm  {self.crowdkit_warm_s:8.3f} s   speedup {self.speedup_warm:5.2f}x (target >= 10: "
            f"{ok(self.speedup_warm >= 10)})",
            f"warm floor: the new query photo's detection {self.floor_detect_s:.3f} s and one dlib forward pass on "
            f"its chip {self.floor_s - self.floor_detect_s:.3f} s, {self.floor_s:.3f} s in all (both must pay it; "
            f"medians, each step once per photo in turn, as a search runs them); "
            f"best possible warm speedup = deepface warm / floor = {self.best_warm_speedup:.2f}x; crowdkit warm = "
            f"{self.crowdkit_warm_s / self.floor_s:.2f}x the floor",
            f"bare inference (torch dlib ResNet, {self.cores_used} threads) {self.bare_inference_s:8.2f} s over "
            f"{self.faces_crowdkit} chips; crowdkit cold = {self.cold_over_limit:.2f}x that (target <= 1.5: "
            f"{ok(self.cold_over_limit <= 1.5)})",
            f"compute: {self.gflop_per_face:.3f} GFLOP per face; bare inference reaches {self.gflops_per_core:.1f} "
            f"GFLOP/s per core, {self.gflops_per_core / self.peak_gflops_per_core:.0%} of the FMA peak "
            f"{self.peak_gflops_per_core:.1f} GFLOP/s per core ({self.peak_note})",
            f"cold bound: best possible cold speedup = deepface cold / bare = {self.best_cold_speedup:.2f}x; "
            f"crowdkit reaches {self.speedup_cold / self.best_cold_speedup:.0%} of it",
            f"identical chips: max |d_deepface - d_crowdkit| = {self.max_abs_delta_distance:.2e}; same decision at "
            f"cosine {self.threshold:g} for {self.agreement:.4f} of faces (target >= 0.999: "
            f"{ok(self.agreement >= 0.999)})",
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


# --------------------------------------------------------------------------- helpers

class Stopwatch:
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


def load_average() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


@contextmanager
def crowdkit_home_at(path: Path) -> Iterator[None]:
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


def prepare_deepface() -> None:
    """Environment deepface needs before it is imported: legacy Keras, crowdkit's DEEPFACE_HOME, dlib files."""
    from crowdkit.common.weights import install_dlib_for_deepface, prepare_tensorflow

    prepare_tensorflow()
    install_dlib_for_deepface()


def _deepface_find(query: Path, gallery: Path, detector: str) -> tuple[float, float]:
    """(wall s, CPU s) of one DeepFace.find call."""
    from deepface import DeepFace

    watch = Stopwatch()
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


@dataclass(frozen=True)
class _Timing:
    """Wall and CPU seconds of one measured step (a median where it was repeated)."""

    wall_s: float
    cpu_s: float

    @classmethod
    def median(cls, runs: list[tuple[float, float]]) -> "_Timing":
        wall, cpu = (float(np.median(v)) for v in zip(*runs))
        return cls(wall, cpu)


@dataclass(frozen=True)
class _CrowdkitRun:
    """crowdkit's cold and warm find, and the chips it aligned (for bare inference and agreement)."""

    cold: _Timing
    warm: _Timing
    threshold: float
    gallery: FaceSet
    query: FaceSet
    cores: int


def _time_deepface(bench: BenchGallery, detector: str) -> tuple[_Timing, _Timing, int]:
    """DeepFace.find cold (no representations datastore), then warm; and the faces in its datastore."""
    for stale in bench.folder.glob("ds_model_*"):
        stale.unlink()
    for stale in bench.folder.glob("representations_*.pkl"):
        stale.unlink()
    logger.info("DeepFace.find cold over %d images (this takes a few minutes)", bench.images)
    cold = _Timing(*_deepface_find(bench.query_cold, bench.folder, detector))
    warm = _Timing.median([_deepface_find(q, bench.folder, detector) for q in bench.queries_warm])
    return cold, warm, _deepface_rows(bench.folder)


def _install_weights() -> None:
    """Convert dlib's ResNet for torch into this home's weights folder, as a first use anywhere would.

    deepface's cold run keeps its weight files too; only its representations are deleted.
    """
    from crowdkit.common import weights
    from crowdkit.engine.dlib_resnet import load_dlib_resnet

    load_dlib_resnet(weights.require("dlib-resnet"), cache_dir=weights.crowdkit_weights_dir())


def _time_crowdkit(bench: BenchGallery, detector: str, home: Path, progress: bool) -> _CrowdkitRun:
    """crowdkit cold: empty caches (the home's converted weights kept), models not yet built or loaded, nothing
    remembered in memory; then warm."""
    shutil.rmtree(home / "cache", ignore_errors=True)
    with crowdkit_home_at(home):
        _install_weights()
        forget()
        watch = Stopwatch()
        cold_result = find([bench.query_cold], bench.folder, detector=detector, model="dlib", metric="cosine",
                           progress=progress)
        resolve_embedder("dlib").close()  # reap the workers so their CPU time is counted
        cold = _Timing(*watch.stop())
        warm = []
        for query_photo in bench.queries_warm:
            watch = Stopwatch()
            find([query_photo], bench.folder, detector=detector, model="dlib", metric="cosine", progress=False)
            warm.append(watch.stop())
        # The aligned chips crowdkit produced (from its cache: detections are not recomputed).
        embedder = resolve_embedder("dlib")
        gallery = detect_and_embed(bench.folder, detector=detector, embedder=embedder, return_chips=True,
                                   progress=False)
        query = embed_query(bench.queries_warm[0], detector=detector, embedder=embedder, return_chips=True)
    import torch

    # the dlib embedder runs on torch's default threads (one per core) unless told otherwise
    return _CrowdkitRun(cold, _Timing.median(warm), cold_result.threshold, gallery, query, torch.get_num_threads())


def _time_bare_inference(gallery: FaceSet) -> _Timing:
    """The gallery's chips through crowdkit's dlib embedder alone, the model already loaded."""
    logger.info("bare inference: dlib (torch) on %d chips", len(gallery))
    single = get_embedder("dlib")
    single.embed(gallery.chips[:1])  # load the model outside the timing
    watch = Stopwatch()
    bare = single.embed(gallery.chips)
    timing = _Timing(*watch.stop())
    if not np.allclose(bare, gallery.embeddings, atol=1e-4):
        logger.warning("the bare embeddings differ from the cached ones (max %.2e)",
                       float(np.max(np.abs(bare - gallery.embeddings))))
    return timing


def _time_warm_floor(photos: list[Path], detector: str, rounds: int = 5) -> tuple[float, float]:
    """Median seconds (detection, forward pass) for a query photo, each step once per photo as a search runs it.

    The photos are taken in turn, ``rounds`` times: each detection runs after
    another photo's forward pass and each forward pass after a detection, as
    in a search. Back to back on warm caches each step is faster, which would
    put the floor below what any search of a new photo can reach.
    The detector is the Haar cascade deepface runs on them too.
    """
    from crowdkit.common.io import read_image
    from crowdkit.engine.align import align_face
    from crowdkit.engine.backends import resolve_detector

    found, single = resolve_detector(detector), get_embedder("dlib")
    images = [read_image(photo) for photo in photos]
    detect, forward = [], []
    for _ in range(rounds):
        for image in images:
            watch = Stopwatch()
            faces = found.detect(image)
            detect.append(watch.stop()[0])
            if faces:
                largest = max(faces, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))  # as a query
                chip = align_face(image, largest.landmarks, single.template)
                watch = Stopwatch()
                single.embed(chip[None])
                forward.append(watch.stop()[0])
    return float(np.median(detect)), float(np.median(forward))


def _dlib_gflop_per_face() -> float:
    from crowdkit.common import weights
    from crowdkit.engine.bench_compute import forward_gflop
    from crowdkit.engine.dlib_resnet import load_dlib_resnet

    network = load_dlib_resnet(weights.require("dlib-resnet"), cache_dir=weights.crowdkit_weights_dir())
    return forward_gflop(network, (1, 3, 150, 150))


def _agreement(gallery: FaceSet, query: FaceSet, threshold: float) -> tuple[float, float]:
    """(max |Δ cosine distance|, fraction of same decisions) of deepface's Dlib client and crowdkit's on the same chips."""
    logger.info("agreement: deepface's Dlib client on the same %d chips", len(gallery))
    theirs_gallery = _deepface_embed(gallery.chips)
    theirs_query = _deepface_embed(query.chips)
    ours = pairwise_distances(query.embeddings, gallery.embeddings, metric="cosine")[0]
    theirs = pairwise_distances(theirs_query, theirs_gallery, metric="cosine")[0]
    delta = float(np.max(np.abs(ours - theirs))) if len(ours) else float("nan")
    agreement = float(np.mean((ours <= threshold) == (theirs <= threshold))) if len(ours) else float("nan")
    return delta, agreement


# --------------------------------------------------------------------------- the benchmark

def run_find_benchmark(
    *,
    faces: int = 1000,
    detector: str = "opencv",
    workdir: str | os.PathLike | None = None,
    progress: bool = True,
) -> FindBenchmark:
    """Build the gallery (or reuse it) and time both implementations; see the module docstring."""
    if detector != "opencv":
        logger.warning("deepface's %r and crowdkit's %r may not be the same detector; 'opencv' (Haar) is in both",
                       detector, detector)
    workdir = Path(workdir) if workdir is not None else default_workdir()
    workdir.mkdir(parents=True, exist_ok=True)
    bench = build_lfw_gallery(workdir, faces=faces, detector=detector, progress=progress)
    logger.info("gallery %s: %d crops of %d people from %d photos (extracted in %.1f s); query %s", bench.folder,
                bench.images, bench.identities, bench.photos, bench.extract_s, bench.identity)

    prepare_deepface()
    from deepface import DeepFace  # noqa: F401 - imported before any timing (TensorFlow start-up)
    import pandas  # noqa: F401
    import torch  # noqa: F401 - crowdkit's framework, imported before any timing as TensorFlow is (about 1.5 s)

    load_before = load_average()
    deepface_cold, deepface_warm, faces_deepface = _time_deepface(bench, detector)
    ours = _time_crowdkit(bench, detector, workdir / "crowdkit-home", progress)
    bare = _time_bare_inference(ours.gallery)
    detect, forward = _time_warm_floor(bench.queries_warm, detector)
    delta, agreement = _agreement(ours.gallery, ours.query, ours.threshold)
    peak, peak_note = fma_peak_gflops_per_core()
    return FindBenchmark(
        images=bench.images, faces_crowdkit=len(ours.gallery), faces_deepface=faces_deepface, detector=detector,
        deepface_cold_s=deepface_cold.wall_s, deepface_warm_s=deepface_warm.wall_s,
        crowdkit_cold_s=ours.cold.wall_s, crowdkit_warm_s=ours.warm.wall_s,
        bare_inference_s=bare.wall_s, cores_used=ours.cores,
        max_abs_delta_distance=delta, agreement=agreement, threshold=ours.threshold,
        cpu_s={"deepface_cold": deepface_cold.cpu_s, "deepface_warm": deepface_warm.cpu_s,
               "crowdkit_cold": ours.cold.cpu_s, "crowdkit_warm": ours.warm.cpu_s, "bare_inference": bare.cpu_s},
        load_average=f"{load_before} before, {load_average()} after",
        photos=bench.photos, extract_s=bench.extract_s, floor_s=detect + forward, floor_detect_s=detect,
        gflop_per_face=_dlib_gflop_per_face(),
        peak_gflops_per_core=peak, peak_note=peak_note,
    )
