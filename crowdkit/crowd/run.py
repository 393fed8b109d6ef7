"""One run of the crowd study: find one person in a video of a uniform-appearance crowd, and validate it.

A run is one member × challenge: a video (by default a simulated scene, see
:mod:`crowdkit.crowd.simulate`), its CVAT annotations and photos of the person to
find. :func:`run_crowd` does everything the study did, and what the corrected
protocol adds, and returns one :class:`~crowdkit.crowd.results.CrowdRunResult`;
the notebook ``notebooks/crowd/crowd_run.ipynb`` only shows it::

    params = CrowdRunParams(member="Colin_Powell", challenge="normal", seed=0)
    result = run_crowd(params, run_dir="book/runs/crowd/colin_powell-normal")
    result.main_performance()            # the study's table: one row per rule and level
    plot_examples(result, "study")        # two thumbnails per outcome with their distances

The steps
---------
1. **Inputs** (:func:`crowdkit.crowd.inputs.prepare_inputs`): a real video, its
   CVAT export and query photos, or a simulated scene rendered once into the cache.
2. **Faces.** Every ``frame_stride``-th frame is searched (detect, align,
   embed) through :func:`crowdkit.engine.faces.detect_and_embed`; results are cached
   per frame, content-addressed and written as each small batch finishes, so a
   run interrupted halfway resumes where it stopped.
3. **Distances and decisions.** Each face's distance to every query photo;
   the run's query is ``query_photos`` (default: the scene's frontal photo,
   the masked one for ``mask2``), a face is declared the subject when its
   distance to the closest query photo is ≤ the threshold
   (:func:`crowdkit.crowd.params.resolve_threshold`).
4. **Validation** under the study's 20-px corner rule and the corrected IoU
   rule (:mod:`crowdkit.crowd.validate`); annotated subject faces no detection
   matched are kept apart as ``missed``.
5. **Tracks.** Faces are linked across frames (:mod:`crowdkit.crowd.track`) and
   each track decides once (``track_rule``); reported beside the per-frame
   decisions.
6. **Thresholds.** True- vs false-positive distances (KDE), the study's
   mean + 2σ re-tuned threshold and what it would flip, a sweep with ROC,
   precision–recall and the equal-error point.
7. **Queries.** Each query photo alone and all of them together (closest
   photo) on the same faces.

Nothing here draws: see :mod:`crowdkit.crowd.figures`.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdkit.common import config
from crowdkit.common.exceptions import NoFaceError
from crowdkit.common.metrics import UndefinedMetricWarning
from crowdkit.crowd.inputs import RunInputs, exclusive_lock, prepare_inputs
from crowdkit.crowd.params import (ALL_PHOTOS, CrowdRunParams, calibrate_for_run, resolve_threshold,
                                   study_rule_threshold)
from crowdkit.crowd.results import CrowdRunResult, PerformanceRow, ThresholdAnalysis

if TYPE_CHECKING:  # pragma: no cover
    from crowdkit.crowd.annotations import Annotations
    from crowdkit.crowd.validate import ValidationResult

log = logging.getLogger(__name__)

#: Images per detection batch: also how much work an interruption can lose.
BATCH_SIZE = 8


class _Stopwatch:
    """Wall-clock and CPU seconds per stage, each lap measured from the previous one."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._clock, self._cpu_clock = time.perf_counter(), time.process_time()

    def lap(self, stage: str) -> None:
        now, cpu_now = time.perf_counter(), time.process_time()
        self.wall[stage] = round(now - self._clock, 3)
        self.cpu[stage] = round(cpu_now - self._cpu_clock, 3)
        self._clock, self._cpu_clock = now, cpu_now


@dataclass(frozen=True)
class _Video:
    """The run's inputs with the annotations read and checked against the video."""

    inputs: RunInputs
    annotations: "Annotations"
    frame_count: int
    searched: tuple[int, ...]


# --------------------------------------------------------------------------- steps


def _read_video(params: CrowdRunParams, *, scene_dir: str | Path | None, progress: bool) -> _Video:
    """Inputs, annotations checked against the video, and the frames to search."""
    from crowdkit.crowd.annotations import validate_against_video
    from crowdkit.crowd.cvat import read_cvat
    from crowdkit.engine.video import video_info

    inputs = prepare_inputs(params, scene_dir=scene_dir, progress=progress)
    annotations = read_cvat(inputs.annotations)
    info = video_info(inputs.video)
    validate_against_video(annotations, info.frame_count)
    frame_count = min(info.frame_count, params.max_frames or info.frame_count)
    if not params.simulated and params.max_frames and params.max_frames < info.frame_count:
        log.warning("max_frames=%d: faces are searched in the whole video (%d frames) but only the first %d "
                    "are reported", params.max_frames, info.frame_count, params.max_frames)
    return _Video(inputs, annotations, frame_count, tuple(range(0, frame_count, params.frame_stride)))


def _scene_faces(video: _Video, params: CrowdRunParams, detector: Any, embedder: Any, progress: bool) -> Any:
    """The video's faces, detected and embedded once: a parallel run of the same scene waits, then reads the cache."""
    from crowdkit.engine.pipeline import detect_and_embed

    what = f"-faces-{detector.name}-{embedder.name}-s{params.frame_stride}"
    with exclusive_lock(video.inputs.video.parent, what):
        return detect_and_embed(video.inputs.video, detector=detector, embedder=embedder, stride=params.frame_stride,
                                batch_size=BATCH_SIZE, progress=progress)


def _count_cache_entries() -> int:
    root = config.cache_dir("faces")
    return sum(1 for _ in root.rglob("*.npz"))


def _embed_queries(photos: Mapping[str, Path], primary: Sequence[str], *, detector: Any, embedder: Any,
                   user_given: bool) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Embed each query photo; a photo without a face is an error if it is the run's query or the user's."""
    from crowdkit.engine.faces import embed_query

    embeddings: dict[str, np.ndarray] = {}
    rows = []
    for name, path in photos.items():
        try:
            face_set = embed_query(path, detector=detector, embedder=embedder)
        except NoFaceError as error:
            if user_given or name in primary:
                raise NoFaceError(f"{error} (query photo {name!r} of this run)") from None
            log.warning("query photo %s: no face found by %s; left out of the multi-photo query", path, detector.name)
            rows.append({"name": name, "path": str(path), "primary": name in primary, "face_found": False,
                         "x1": math.nan, "y1": math.nan, "x2": math.nan, "y2": math.nan, "score": math.nan})
            continue
        embeddings[name] = face_set.embeddings[0]
        box = face_set.faces[0].detection.box
        rows.append({"name": name, "path": str(path), "primary": name in primary, "face_found": True,
                     "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3],
                     "score": float(face_set.faces[0].detection.score)})
    return embeddings, pd.DataFrame(rows)


def _query_distances(face_set: Any, query_embeddings: Mapping[str, np.ndarray], metric: str) -> np.ndarray:
    """(queries, faces) distances of every face to every query photo."""
    from crowdkit.engine.match import pairwise_distances

    if not face_set.faces:
        return np.zeros((len(query_embeddings), 0))
    return pairwise_distances(np.stack(list(query_embeddings.values())), face_set.embeddings, metric=metric)


def _detection_table(face_set: Any, query_embeddings: Mapping[str, np.ndarray], primary: Sequence[str], *,
                     metric: str, threshold: float, max_frames: int | None) -> pd.DataFrame:
    """One row per face: box, score, distance to the run's query and decision, distance to each photo."""
    from crowdkit.engine.faces import FIND_COLUMNS

    names = list(query_embeddings)
    n = len(face_set.faces)
    boxes = np.array([f.detection.box for f in face_set.faces], dtype=np.float64).reshape(-1, 4)
    distances = _query_distances(face_set, query_embeddings, metric)  # (Q, N)
    table = pd.DataFrame({
        "source": pd.Series([f.source for f in face_set.faces], dtype=object),
        "frame": np.array([f.frame for f in face_set.faces], dtype=np.int64),
        "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
        "score": np.array([f.detection.score for f in face_set.faces], dtype=np.float64),
    })
    main = [names.index(q) for q in primary]
    closest = np.array(main)[distances[main].argmin(axis=0)] if n else np.zeros(0, dtype=int)
    table["distance"] = distances[main].min(axis=0) if n else np.zeros(0)
    table["closest_query"] = pd.Series(np.array(names, dtype=object)[closest] if n else [], dtype=object)
    table["threshold"] = threshold
    table["decision"] = table["distance"] <= threshold
    table = table[list(FIND_COLUMNS)].copy()
    table["face_height"] = table["y2"] - table["y1"]
    for i, name in enumerate(names):
        table[f"distance_{name}"] = distances[i]
    table[f"distance_{ALL_PHOTOS}"] = distances.min(axis=0) if n else np.zeros(0)
    if max_frames is not None:
        table = table[table["frame"] < int(max_frames)].reset_index(drop=True)
    return table


def _track(table: pd.DataFrame, params: CrowdRunParams, threshold: float, distance_column: str) -> pd.DataFrame:
    """Per-track decision from ``distance_column`` (columns track_distance, track_size, track_decision)."""
    from crowdkit.crowd.track import decide_per_track

    if table.empty:
        return table.assign(track_distance=pd.Series(dtype=float), track_size=pd.Series(dtype="int64"),
                            track_decision=pd.Series(dtype=bool))
    return decide_per_track(table.assign(distance=table[distance_column]), rule=params.track_rule,
                            k=params.track_k, threshold=threshold, track_column="face_track")


def _face_counts(outcomes: pd.DataFrame, annotations: "Annotations", searched: Sequence[int]) -> dict[str, int]:
    """How many annotated faces were in view in the searched frames, and how many a detection matched."""
    from crowdkit.crowd.annotations import visible_boxes

    annotated = sum(len(boxes) for boxes in visible_boxes(annotations, frames=searched).values())
    matched = int(outcomes[["frame", "track"]].dropna().drop_duplicates().shape[0])
    return {"faces_annotated": annotated, "faces_matched": matched}


def _performance(params: CrowdRunParams, table: pd.DataFrame, validations: Mapping[str, "ValidationResult"],
                 video: _Video, threshold: float, query_sets: Sequence[str]) -> list[PerformanceRow]:
    """One row per rule × query set × level (per frame, then per track), each rate with its 95 % interval."""
    from crowdkit.crowd.intervals import face_clusters, missed_tracks, people_clusters, rate_intervals

    main_query = video.inputs.primary[0] if len(video.inputs.primary) == 1 else ALL_PHOTOS
    tracks = table["face_track"].to_numpy(dtype=np.int64)
    rows = []
    for rule, validation in validations.items():
        subject = validation.outcomes["subject"].to_numpy(dtype=bool)
        faces = _face_counts(validation.outcomes, video.annotations, video.searched)
        people = people_clusters(validation.outcomes, video.annotations, video.searched)
        missed = missed_tracks(validation.missed, max_gap=2 * params.frame_stride)
        for query in query_sets:
            column = f"distance_{query}"
            tracked = _track(table, params, threshold, column)
            for level, decision in (("frame", table[column].to_numpy() <= threshold),
                                    ("track", tracked["track_decision"].to_numpy(dtype=bool))):
                rows.append(PerformanceRow.from_decisions(
                    subject=subject, decision=decision, member=params.member, challenge=params.challenge,
                    rule=rule, level=level, query=query, main=query == main_query, threshold=threshold,
                    missed=len(validation.missed), **faces, intervals=rate_intervals(
                        face_clusters(subject, decision, tracks, missed), people, seed=params.seed)))
    return rows


def _threshold_analysis(rule: str, outcomes: pd.DataFrame, threshold: float, seed: int) -> ThresholdAnalysis:
    from crowdkit.common.metrics import equal_error_rate, pr_points, roc_points
    from crowdkit.crowd.intervals import sweep_band
    from crowdkit.crowd.threshold import (mean_plus_k_sigma, study_retuning, subject_labels, threshold_sweep,
                                          what_changes)

    labels = subject_labels(outcomes)
    distances = outcomes["distance"].to_numpy(dtype=float)
    tp = outcomes.loc[outcomes["outcome"] == "TP", "distance"].to_numpy(dtype=float)
    fp = outcomes.loc[outcomes["outcome"] == "FP", "distance"].to_numpy(dtype=float)
    new = mean_plus_k_sigma(tp, k=2)
    change = what_changes(outcomes, old=threshold, new=new) if math.isfinite(new) else None
    return ThresholdAnalysis(
        rule=rule, threshold=threshold, tp_distances=tp, fp_distances=fp, mean_plus_2sigma=new, change=change,
        sweep=threshold_sweep(labels, distances), roc=roc_points(labels, distances=distances),
        pr=pr_points(labels, distances=distances), eer=equal_error_rate(labels, distances),
        study=study_retuning(tp, fp), band=sweep_band(labels, distances, outcomes["face_track"], seed=seed))


def _validate(params: CrowdRunParams, table: pd.DataFrame, video: _Video
              ) -> tuple[dict[str, "ValidationResult"], dict[str, "ValidationResult"]]:
    """Per-frame and per-track decisions validated under each rule."""
    from crowdkit.crowd.validate import validate

    subject, searched = video.inputs.subject, video.searched
    validations = {rule: validate(table, video.annotations, subject, rule=rule, frames=searched)
                   for rule in params.rules}
    track_validations = {rule: validate(table.assign(decision=table["track_decision"]), video.annotations,
                                        subject, rule=rule, frames=searched)
                         for rule in params.rules}
    return validations, track_validations


def _read_frames(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    from crowdkit.engine.video import iter_frames

    if not wanted:
        return {}
    frames = {}
    for frame in iter_frames(video, stop=max(wanted) + 1):
        if frame.index in wanted:
            frames[frame.index] = frame.image
    return frames


def _overview_frames(table: pd.DataFrame, validation: "ValidationResult", searched: Sequence[int]) -> list[int]:
    """A far and a near frame: the first and last searched frames showing a detection or a missed subject."""
    candidates = sorted(set(table["frame"].tolist()) | set(validation.missed["frame"].tolist()))
    if not candidates:
        candidates = list(searched)
    if not candidates:
        return []
    return sorted({candidates[min(len(candidates) - 1, len(candidates) // 10)], candidates[-1]})


def _pictures(params: CrowdRunParams, table: pd.DataFrame, validations: Mapping[str, "ValidationResult"],
              video: _Video) -> tuple[dict[str, pd.DataFrame], dict[str, list[np.ndarray]], dict[int, np.ndarray]]:
    """Example detections per rule with their face crops, and the far and near overview frames."""
    from crowdkit.crowd.validate import examples as pick_examples
    from crowdkit.common.geometry import crop_box

    examples = {rule: pick_examples(v.outcomes, per_outcome=params.examples_per_outcome, seed=params.seed)
                for rule, v in validations.items()}
    overview_frames = _overview_frames(table, validations[params.main_rule], video.searched)
    frames = _read_frames(video.inputs.video,
                          {int(f) for e in examples.values() for f in e["frame"]} | set(overview_frames))
    thumbnails = {rule: [crop_box(frames[int(r.frame)], (r.x1, r.y1, r.x2, r.y2)) for r in e.itertuples()]
                  for rule, e in examples.items()}
    return examples, thumbnails, {f: frames[f] for f in overview_frames}


# --------------------------------------------------------------------------- the run


def run_crowd(params: CrowdRunParams, *, run_dir: str | Path | None = None, scene_dir: str | Path | None = None,
              progress: bool = True) -> CrowdRunResult:
    """Run one member × challenge end to end (see the module docstring) and save its tables.

    Parameters
    ----------
    params : the run's parameters
    run_dir : folder for the run's tables (``performance``, ``thresholds``, ``detections``,
        ``queries`` as parquet, ``provenance.json``), written atomically; None: nothing is saved
    scene_dir : where to render a simulated scene (default: the scene cache)
    progress : show progress bars

    Raises
    ------
    DataNotFoundError, VideoReadError, AnnotationError, NoFaceError, ConfigError
        with a message that says which input and what to do.
    """
    from crowdkit.crowd.track import link_detections
    from crowdkit.engine.backends import resolve_detector, resolve_embedder

    watch = _Stopwatch()
    video = _read_video(params, scene_dir=scene_dir, progress=progress)
    inputs = video.inputs
    watch.lap("inputs")
    detector, embedder = resolve_detector(params.detector, **params.detector_settings), resolve_embedder(params.model)
    calibration = calibrate_for_run(params, detector, embedder, progress=progress)
    threshold, threshold_source = resolve_threshold(params, embedder, calibration)
    watch.lap("models")  # and the threshold's calibration (cached after the first run)
    before = _count_cache_entries()
    query_embeddings, queries = _embed_queries(inputs.query_photos, inputs.primary, detector=detector,
                                               embedder=embedder, user_given=not inputs.simulated)
    watch.lap("queries")
    face_set = _scene_faces(video, params, detector, embedder, progress)
    written = _count_cache_entries() - before
    table = _detection_table(face_set, query_embeddings, inputs.primary, metric=params.metric,
                             threshold=threshold, max_frames=params.max_frames)
    watch.lap("faces")
    table["face_track"] = link_detections(table, max_gap=2 * params.frame_stride)
    table = _track(table, params, threshold, "distance")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        validations, track_validations = _validate(params, table, video)
        query_sets = list(query_embeddings) + ([ALL_PHOTOS] if len(query_embeddings) > 1 else [])
        performance = PerformanceRow.to_frame(_performance(params, table, validations, video, threshold, query_sets))
        thresholds = {r: _threshold_analysis(r, v.outcomes, threshold, params.seed) for r, v in validations.items()}
    watch.lap("analysis")
    examples, thumbnails, overview = _pictures(params, table, validations, video)
    watch.lap("thumbnails")
    result = CrowdRunResult(
        params=params, inputs=inputs, threshold=threshold, threshold_source=threshold_source, queries=queries,
        detections=table, validations=validations, track_validations=track_validations, performance=performance,
        thresholds=thresholds, examples=examples, thumbnails=thumbnails, overview=overview,
        frames_searched=video.searched, frame_count=video.frame_count, timings=watch.wall, cpu_seconds=watch.cpu,
        cache_entries_written=written, study_threshold=study_rule_threshold(params, embedder),
        calibration=calibration)
    if run_dir is not None:
        save_tables(result, run_dir)
    log.info("crowd run %s/%s: %d faces in %d frames, %d new cache entries, %s", params.member, params.challenge,
             len(table), len(video.searched), written, watch.wall)
    return result


# --------------------------------------------------------------------------- saving and provenance


def run_provenance(result: CrowdRunResult) -> dict[str, Any]:
    """Parameters, inputs with sha256, package versions, timings: what a chapter records about its run."""
    from crowdkit.common.provenance import file_checksums, package_versions

    inputs = result.inputs
    files = [inputs.video, inputs.annotations, *inputs.query_photos.values()]
    provenance = {
        "parameters": result.params.to_dict(),
        "subject": inputs.subject,
        "simulated": inputs.simulated,
        "query_photos": {k: str(v) for k, v in inputs.query_photos.items()},
        "primary_query": list(inputs.primary),
        "threshold": result.threshold,
        "threshold_source": result.threshold_source,
        "study_rule_threshold": result.study_threshold,
        "calibration": result.calibration.to_dict() if result.calibration is not None else None,
        "frames": result.frame_count,
        "frames_searched": len(result.frames_searched),
        "checksums": file_checksums(files),
        "versions": package_versions(),
        "timings_s": result.timings,
        "cpu_s": result.cpu_seconds,
        "cache_entries_written": result.cache_entries_written,
    }
    if inputs.scene is not None:
        provenance["scene"] = {"folder": str(inputs.scene.folder), "spec": inputs.scene.spec.to_dict()}
    return provenance


def provenance_tables(result: CrowdRunResult) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """:func:`run_provenance` as three tables: its plain values, the input checksums, the package versions."""
    provenance = run_provenance(result)
    values = pd.Series({k: v for k, v in provenance.items() if not isinstance(v, dict)}, dtype=object)
    home = str(config.home())
    checksums = {path.replace(home, "$CROWDKIT_HOME", 1): digest for path, digest in provenance["checksums"].items()}
    return (values.to_frame("value"), pd.Series(checksums, name="sha256").to_frame(),
            pd.Series(provenance["versions"], name="version").to_frame().T)


def save_tables(result: CrowdRunResult, run_dir: str | Path) -> list[Path]:
    """Write the run's tables as parquet (atomically) into ``run_dir`` for the summary page."""
    from crowdkit.common.io import write_json_atomic
    from crowdkit.common.run_tables import save_run_table
    from crowdkit.crowd.study_table import example_distances, study_intervals, study_table_long

    member, challenge = result.params.member, result.params.challenge
    thresholds = result.threshold_table().reset_index()
    thresholds.insert(0, "challenge", challenge)
    thresholds.insert(0, "member", member)
    detections = result.validations[result.params.main_rule].outcomes.copy()
    detections.insert(0, "challenge", challenge)
    detections.insert(0, "member", member)
    queries = result.queries.assign(member=member, challenge=challenge)
    examples = example_distances(result).reset_index()
    examples.insert(0, "challenge", challenge)
    examples.insert(0, "member", member)
    paths = [save_run_table(name, table, run_dir=run_dir) for name, table in (
        ("performance", result.performance), ("thresholds", thresholds),
        ("detections", detections), ("queries", queries), ("study_table", study_table_long(result)),
        ("examples", examples), ("study_intervals", study_intervals(result)))]
    target = Path(run_dir) / "provenance.json"
    write_json_atomic(target, run_provenance(result))
    return [*paths, target]
