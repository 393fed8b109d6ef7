"""One run of the crowd study: find one person in a video of a uniform-appearance crowd, and validate it.

A run is one member × challenge: a video (by default a simulated scene, see
:mod:`crowdkit.crowd.simulate`), its CVAT annotations and photos of the person to
find. :func:`run_crowd` does everything the study did, and what the corrected
protocol adds, and returns one :class:`CrowdRunResult`; the notebook
``notebooks/crowd/crowd_run.ipynb`` only shows it::

    params = CrowdRunParams(member="Colin_Powell", challenge="normal", seed=0)
    result = run_crowd(params, run_dir="book/runs/crowd/colin_powell-normal")
    result.main_performance()            # the study's table: one row per rule and level
    plot_examples(result, "study")        # two thumbnails per outcome with their distances

The steps
---------
1. **Inputs.** A real video needs ``video``, ``annotations`` (CVAT for video
   1.1) and ``query_photos``; with ``video=None`` the scene for member,
   challenge and seed is rendered once into ``$CROWDKIT_HOME/cache/scenes``
   (``mask1`` and ``mask2`` share one scene: the same video, different query
   photos). The subject is the annotated identity ``subject`` (default: the
   member; for a simulated scene the member itself when it names an LFW
   identity, otherwise the simulator's choice).
2. **Faces.** Every ``frame_stride``-th frame is searched (detect, align,
   embed) through :func:`crowdkit.engine.faces.detect_and_embed`; results are cached
   per frame, content-addressed and written as each small batch finishes, so a
   run interrupted halfway resumes where it stopped.
3. **Distances and decisions.** Each face's distance to every query photo;
   the run's query is ``query_photos`` (default: the scene's frontal photo,
   the masked one for ``mask2``), a face is declared the subject when its
   distance to the closest query photo is ≤ the threshold (default: the
   study's 0.65 for ArcFace with cosine, else the model's own default).
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

Nothing here draws unless a ``plot_*`` function is called.
"""
from __future__ import annotations

import logging
import math
import re
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError, DataNotFoundError, NoFaceError
from crowdkit.common.metrics import OUTCOMES, Confusion, EqualErrorRate, UndefinedMetricWarning

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from crowdkit.crowd.annotations import Annotations
    from crowdkit.crowd.simulate import SceneResult
    from crowdkit.crowd.threshold import ThresholdChange
    from crowdkit.crowd.validate import ValidationResult

log = logging.getLogger(__name__)

#: The study's decision threshold: cosine distance, tuned for ArcFace.
STUDY_THRESHOLD = 0.65
#: ``matching_rule`` values: one rule, or both.
MATCHING_RULES = ("study", "iou", "both")
#: Defaults sized for the book's budget (24 runs + the bias study in < 45 min on 2 cores): 150 frames, 30
#: searched. Measured cold (render + models + 30 frames, 224 faces, one thread): about 20 s of CPU.
DEFAULT_FRAME_STRIDE = 5
DEFAULT_MAX_FRAMES = 150
#: Frames a simulated scene has when ``max_frames`` is None.
FULL_SCENE_FRAMES = 300
#: Decision levels reported side by side.
LEVELS = ("frame", "track")
#: Name of the query set holding every available photo.
ALL_PHOTOS = "all"
#: Images per detection batch: also how much work an interruption can lose.
BATCH_SIZE = 8


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class CrowdRunParams:
    """The parameters of one run; the notebook's ``parameters`` cell mirrors them.

    Parameters
    ----------
    member : str
        Whose run it is. For a simulated scene: the person to find when it names an
        LFW identity with 3+ photos (e.g. ``"Colin_Powell"``), else the seed for the
        simulator's choice. For a real video: the default ``subject``.
    challenge : str
        ``normal``, ``compact``, ``intruder``, ``random``, ``mask1`` or ``mask2`` (any
        label for a real video).
    seed : int
        Scene seed (simulated scenes only).
    video, annotations : path or None
        A real video and its CVAT for video 1.1 export; both None: simulate the scene.
    query_photos : sequence of paths, or None
        Photos of the subject. None: the scene's frontal photo (the masked one for
        ``mask2``). Every photo given (or, for a scene, every photo it has) also
        forms the multi-photo query ``"all"``.
    subject : str or None
        The annotated ``identity`` of the person to find (real videos; default ``member``).
    frame_stride : int
        Search every n-th frame.
    max_frames : int or None
        Frames of the video used (a simulated scene is rendered this long); None: all.
    detector, model, metric
        Backend names (:func:`crowdkit.engine.detect.get_detector`,
        :func:`crowdkit.engine.embed.get_embedder`) and distance (:data:`crowdkit.engine.match.METRICS`).
    threshold : float or None
        Decision threshold; None: 0.65 for ArcFace with cosine (the study's value),
        otherwise the model's own default for the metric.
    matching_rule : str
        ``"study"``, ``"iou"`` or ``"both"``.
    track_rule, track_k
        How a track decides (:data:`crowdkit.crowd.track.TRACK_RULES`; ``k`` for ``mean_of_k_best``).
    examples_per_outcome : int
        Thumbnails per outcome (the study showed two).
    """

    member: str
    challenge: str
    seed: int = 0
    video: str | None = None
    annotations: str | None = None
    query_photos: tuple[str, ...] | None = None
    subject: str | None = None
    frame_stride: int = DEFAULT_FRAME_STRIDE
    max_frames: int | None = DEFAULT_MAX_FRAMES
    detector: str = "mtcnn"
    model: str = "dlib"
    metric: str = "cosine"
    threshold: float | None = None
    matching_rule: str = "both"
    track_rule: str = "mean_of_k_best"
    track_k: int = 3
    examples_per_outcome: int = 2

    def __post_init__(self) -> None:
        from crowdkit.engine.match import METRICS
        from crowdkit.crowd.simulate import CHALLENGES
        from crowdkit.crowd.track import TRACK_RULES

        def bad(what: str) -> ConfigError:
            return ConfigError(f"crowd run parameters: {what}")

        if not str(self.member).strip():
            raise bad("member must be a non-empty name")
        if (self.video is None) != (self.annotations is None):
            raise bad("give both video and annotations (a real video and its CVAT export), or neither "
                      "(a simulated scene)")
        if self.video is None and self.challenge not in CHALLENGES:
            raise bad(f"unknown challenge {self.challenge!r} for a simulated scene; choose one of "
                      f"{', '.join(CHALLENGES)}")
        if self.video is not None and not self.query_photos:
            raise bad("a real video needs query_photos: one or more photos of the person to find")
        if isinstance(self.query_photos, (str, Path)):
            object.__setattr__(self, "query_photos", (str(self.query_photos),))
        elif self.query_photos is not None:
            object.__setattr__(self, "query_photos", tuple(str(p) for p in self.query_photos))
            if not self.query_photos:
                raise bad("query_photos is an empty list; give photos or None")
        for name in ("frame_stride", "track_k", "examples_per_outcome"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise bad(f"{name} must be an integer ≥ 1, got {value!r}")
        if self.max_frames is not None and (isinstance(self.max_frames, bool) or int(self.max_frames) < 1):
            raise bad(f"max_frames must be None or an integer ≥ 1, got {self.max_frames!r}")
        if self.metric not in METRICS:
            raise bad(f"unknown metric {self.metric!r}; known metrics: {', '.join(METRICS)}")
        if self.matching_rule not in MATCHING_RULES:
            raise bad(f"unknown matching_rule {self.matching_rule!r}; choose one of {', '.join(MATCHING_RULES)}")
        if self.track_rule not in TRACK_RULES:
            raise bad(f"unknown track_rule {self.track_rule!r}; choose one of {', '.join(TRACK_RULES)}")
        if self.threshold is not None and not math.isfinite(float(self.threshold)):
            raise bad(f"threshold must be a finite number or None, got {self.threshold!r}")

    @property
    def rules(self) -> tuple[str, ...]:
        """The validation rules this run reports."""
        return ("study", "iou") if self.matching_rule == "both" else (self.matching_rule,)

    @property
    def simulated(self) -> bool:
        return self.video is None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "CrowdRunParams":
        """From notebook or plan parameters; unknown keys (``run_dir``) are ignored."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["query_photos"] = list(self.query_photos) if self.query_photos is not None else None
        return values


def resolve_threshold(params: CrowdRunParams, embedder: Any) -> tuple[float, str]:
    """(threshold, where it comes from) for ``params`` and the built embedder."""
    from crowdkit.engine.faces import default_threshold

    if params.threshold is not None:
        return float(params.threshold), "given"
    if embedder.name == "arcface" and params.metric == "cosine":
        return STUDY_THRESHOLD, "the study's 0.65 (cosine; tuned for ArcFace)"
    value = default_threshold(embedder, params.metric)
    return value, f"{embedder.name}'s own default for {params.metric}"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RunInputs:
    """What one run reads: the video, its annotations, the subject and the query photos.

    ``query_photos`` maps a short name (``front``, ``side``, ``masked`` or the
    file's stem) to its path; ``primary`` names the photos of the run's query.
    """

    video: Path
    annotations: Path
    subject: str
    query_photos: dict[str, Path]
    primary: tuple[str, ...]
    simulated: bool
    scene: "SceneResult | None" = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "run"


def scene_spec(params: CrowdRunParams, *, lfw_root: str | Path | None = None):
    """The :class:`~crowdkit.crowd.simulate.SceneSpec` a simulated run renders.

    ``mask2`` renders the ``mask1`` scene: the two differ only in the query
    photo (the simulator writes the masked photo for both), so they share the
    video, its cached faces and one render.
    """
    from crowdkit.crowd.simulate import SceneSpec

    lfw = Path(lfw_root) if lfw_root is not None else config.data_root() / "lfw" / "images_deepfunneled"
    folder = lfw / params.member
    subject = params.member if folder.is_dir() and sum(1 for _ in folder.glob("*.jpg")) >= 3 else None
    challenge = "mask1" if params.challenge == "mask2" else params.challenge
    return SceneSpec(member=params.member, challenge=challenge, seed=int(params.seed),
                     n_frames=int(params.max_frames or FULL_SCENE_FRAMES), subject=subject)


def scene_folder(spec) -> Path:
    """Where a spec's scene is cached: ``$CROWDKIT_HOME/cache/scenes/<member>-<family>-s<seed>-<frames>f-<hash>``."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    name = f"{_slug(spec.member)}-{spec.family}-s{spec.seed}-{spec.n_frames}f-{digest}"
    return config.cache_dir("scenes") / name


def prepare_inputs(params: CrowdRunParams, *, scene_dir: str | Path | None = None, progress: bool = True
                   ) -> RunInputs:
    """Resolve the run's files, rendering the simulated scene first when there is no video.

    Raises
    ------
    DataNotFoundError
        a named video, annotation file or query photo does not exist.
    """
    if not params.simulated:
        video, annotations = Path(params.video), Path(params.annotations)
        for what, path in (("video", video), ("annotations", annotations)):
            if not path.is_file():
                raise DataNotFoundError(f"{what} file {path} does not exist (paths are relative to the working "
                                        "directory, the project root in a plan run)")
        photos = _named_photos(params.query_photos)
        return RunInputs(video, annotations, params.subject or params.member, photos, tuple(photos), False)

    from crowdkit.crowd.simulate import generate_scene

    spec = scene_spec(params)
    with _scene_lock(Path(scene_dir or scene_folder(spec))) as folder:
        scene = generate_scene(spec, folder, progress=progress)
    if params.query_photos is not None:
        given = _named_photos(params.query_photos)
        photos = {**{k: v for k, v in scene.query_photos.items() if v not in given.values()}, **given}
        primary = tuple(given)
    else:
        photos = dict(scene.query_photos)
        primary = ("masked",) if params.challenge == "mask2" else ("front",)
    return RunInputs(scene.video, scene.annotations_xml, params.subject or scene.subject, photos, primary, True, scene)


@contextmanager
def _scene_lock(folder: Path) -> Iterator[Path]:
    """Hold an exclusive lock beside ``folder`` while its scene is rendered or checked.

    Parallel runs of ``mask1`` and ``mask2`` share one scene: the second waits
    for the first's render and then finds it complete, instead of rendering it
    again and swapping the folder under the first. (No lock where ``fcntl`` is
    missing, e.g. on Windows.)
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield folder
        return
    with open(folder.parent / f".{folder.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _named_photos(paths: Sequence[str | Path]) -> dict[str, Path]:
    named: dict[str, Path] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise DataNotFoundError(f"query photo {path} does not exist")
        name = _slug(path.stem.removeprefix("query_"))
        while name in named or name == ALL_PHOTOS:
            name += "_"
        named[name] = path
    return named


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ThresholdAnalysis:
    """The threshold study of one rule (per-frame decisions of the run's query).

    ``sweep``: :func:`crowdkit.crowd.threshold.threshold_sweep`; ``roc``/``pr``:
    :func:`crowdkit.common.metrics.roc_points`/``pr_points`` (empty when one class is
    missing); ``change``: what the mean + 2σ threshold would flip (None when it
    is undefined: no true positive to tune from).
    """

    rule: str
    threshold: float
    tp_distances: np.ndarray
    fp_distances: np.ndarray
    mean_plus_2sigma: float
    change: "ThresholdChange | None"
    sweep: pd.DataFrame
    roc: pd.DataFrame
    pr: pd.DataFrame
    eer: EqualErrorRate

    def as_row(self) -> dict[str, Any]:
        after = self.change.after.as_row() if self.change is not None else {}
        return {
            "rule": self.rule, "threshold": self.threshold, "n_tp": int(self.tp_distances.size),
            "n_fp": int(self.fp_distances.size),
            "tp_mean": float(np.mean(self.tp_distances)) if self.tp_distances.size else math.nan,
            "tp_std": float(np.std(self.tp_distances)) if self.tp_distances.size else math.nan,
            "mean_plus_2sigma": self.mean_plus_2sigma,
            "flipped_to_positive": self.change.to_positive if self.change else 0,
            "flipped_to_negative": self.change.to_negative if self.change else 0,
            "f1_at_mean_plus_2sigma": after.get("f1", math.nan),
            "precision_at_mean_plus_2sigma": after.get("precision", math.nan),
            "recall_at_mean_plus_2sigma": after.get("recall", math.nan),
            "auc": self.roc.attrs.get("auc", math.nan),
            "average_precision": self.pr.attrs.get("average_precision", math.nan),
            "eer": self.eer.rate, "eer_threshold": self.eer.threshold,
        }


@dataclass(frozen=True)
class CrowdRunResult:
    """Everything one run produced.

    Attributes
    ----------
    params, inputs : what was run on
    threshold, threshold_source : the decision threshold and where it came from
    queries : one row per query photo: ``name, path, primary, face_found, box, score``
    detections : one row per detected face: :data:`crowdkit.engine.faces.FIND_COLUMNS` plus
        ``face_height``, ``distance_<photo>`` per query photo, ``distance_all``,
        ``face_track`` (linked track id), ``track_distance``, ``track_size``,
        ``track_decision``; ``distance``/``decision`` are the run's query's
    validations : rule → :class:`~crowdkit.crowd.validate.ValidationResult` of the per-frame decisions
    track_validations : rule → the same for the per-track decisions
    performance : one row per rule × level × query set (counts, rates NaN where
        undefined, ``missed``, ``strict_recall``; ``main`` marks the run's query;
        ``faces_annotated``/``faces_matched``/``detection_rate``: annotated faces of anyone
        in view in the searched frames, and how many a detection matched under the rule)
    thresholds : rule → :class:`ThresholdAnalysis`
    examples : rule → the example detections (:func:`crowdkit.crowd.validate.examples`)
    thumbnails : rule → one face crop (RGB uint8) per row of ``examples[rule]``
    overview : frame index → the full frame (RGB), for a far and a near frame
    frames_searched : the frame indices searched
    timings : stage → wall-clock seconds
    cpu_seconds : stage → CPU seconds of this process (all threads)
    cache_entries_written : new per-frame cache entries this run wrote (0 on a rerun)
    """

    params: CrowdRunParams
    inputs: RunInputs
    threshold: float
    threshold_source: str
    queries: pd.DataFrame
    detections: pd.DataFrame
    validations: dict[str, "ValidationResult"]
    track_validations: dict[str, "ValidationResult"]
    performance: pd.DataFrame
    thresholds: dict[str, ThresholdAnalysis]
    examples: dict[str, pd.DataFrame]
    thumbnails: dict[str, list[np.ndarray]]
    overview: dict[int, np.ndarray]
    frames_searched: tuple[int, ...]
    frame_count: int
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    cache_entries_written: int = 0

    @property
    def main_query(self) -> str:
        return self.inputs.primary[0] if len(self.inputs.primary) == 1 else ALL_PHOTOS

    def main_performance(self, *, display: bool = False) -> pd.DataFrame:
        """The run's query: one row per rule × level, in the study's layout."""
        table = self.performance[self.performance["main"]].drop(columns=["main"])
        table = table.set_index(["rule", "level"])
        return _display(table) if display else table

    def query_comparison(self, *, rule: str | None = None, display: bool = False) -> pd.DataFrame:
        """Each query photo alone and all together: one row per query set × level for ``rule``."""
        rule = rule or self.params.rules[-1]
        table = self.performance[self.performance["rule"] == rule].set_index(["query", "level"])
        table = table[["main", "positives", "negatives", "TP", "FP", "TN", "FN", "precision", "recall", "f1",
                       "accuracy", "missed", "strict_recall"]]
        return _display(table) if display else table

    def threshold_table(self) -> pd.DataFrame:
        """One row per rule: used threshold, mean + 2σ and what it flips, AUC, AP, EER."""
        rows = [analysis.as_row() for analysis in self.thresholds.values()]
        return pd.DataFrame(rows).set_index("rule") if rows else pd.DataFrame()

    def missed(self, rule: str = "iou") -> pd.DataFrame:
        """Annotated subject faces no detection matched under ``rule`` (with their heights)."""
        missed = self.validations[rule].missed.copy()
        missed["face_height"] = missed["y2"] - missed["y1"]
        return missed


def _display(table: pd.DataFrame) -> pd.DataFrame:
    from crowdkit.common.metrics import format_rate

    table = table.copy()
    for column in ("precision", "recall", "f1", "accuracy", "specificity", "strict_recall"):
        if column in table:
            table[column] = table[column].map(format_rate)
    return table


# --------------------------------------------------------------------------- the run


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


def _detection_table(face_set: Any, query_embeddings: Mapping[str, np.ndarray], primary: Sequence[str], *,
                     metric: str, threshold: float, max_frames: int | None) -> pd.DataFrame:
    from crowdkit.engine.faces import FIND_COLUMNS
    from crowdkit.engine.match import pairwise_distances

    names = list(query_embeddings)
    n = len(face_set.faces)
    boxes = np.array([f.detection.box for f in face_set.faces], dtype=np.float64).reshape(-1, 4)
    if n:
        distances = pairwise_distances(np.stack([query_embeddings[q] for q in names]), face_set.embeddings,
                                       metric=metric)  # (Q, N)
    else:
        distances = np.zeros((len(names), 0))
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


def _performance_rows(params: CrowdRunParams, rule: str, level: str, query: str, main: bool, subject: np.ndarray,
                      decision: np.ndarray, missed: int, threshold: float, faces: Mapping[str, float]
                      ) -> dict[str, Any]:
    counts = Confusion.from_labels(subject, decision)
    strict = counts + Confusion(fn=missed)
    return {"member": params.member, "challenge": params.challenge, "rule": rule, "level": level, "query": query,
            "main": main, "threshold": threshold, **counts.as_row(), "missed": missed,
            "strict_recall": strict.as_row()["recall"], **faces}


def _face_counts(outcomes: pd.DataFrame, annotations: "Annotations", searched: Sequence[int]) -> dict[str, float]:
    """How many annotated faces were in view in the searched frames, and how many a detection matched."""
    from crowdkit.crowd.annotations import visible_boxes

    annotated = sum(len(boxes) for boxes in visible_boxes(annotations, frames=searched).values())
    matched = int(outcomes[["frame", "track"]].dropna().drop_duplicates().shape[0])
    return {"faces_annotated": annotated, "faces_matched": matched,
            "detection_rate": matched / annotated if annotated else math.nan}


def _threshold_analysis(rule: str, outcomes: pd.DataFrame, threshold: float) -> ThresholdAnalysis:
    from crowdkit.common.metrics import equal_error_rate, pr_points, roc_points
    from crowdkit.crowd.threshold import mean_plus_k_sigma, subject_labels, threshold_sweep, what_changes

    labels = subject_labels(outcomes)
    distances = outcomes["distance"].to_numpy(dtype=float)
    tp = outcomes.loc[outcomes["outcome"] == "TP", "distance"].to_numpy(dtype=float)
    fp = outcomes.loc[outcomes["outcome"] == "FP", "distance"].to_numpy(dtype=float)
    new = mean_plus_k_sigma(tp, k=2)
    change = what_changes(outcomes, old=threshold, new=new) if math.isfinite(new) else None
    return ThresholdAnalysis(
        rule=rule, threshold=threshold, tp_distances=tp, fp_distances=fp, mean_plus_2sigma=new, change=change,
        sweep=threshold_sweep(labels, distances), roc=roc_points(labels, distances=distances),
        pr=pr_points(labels, distances=distances), eer=equal_error_rate(labels, distances))


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
    from crowdkit.crowd.annotations import read_cvat, validate_against_video
    from crowdkit.engine.faces import detect_and_embed, resolve_detector, resolve_embedder
    from crowdkit.crowd.track import link_detections
    from crowdkit.crowd.validate import examples as pick_examples
    from crowdkit.crowd.validate import validate
    from crowdkit.engine.video import video_info

    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    clock, cpu_clock = time.perf_counter(), time.process_time()

    def lap(stage: str) -> None:
        nonlocal clock, cpu_clock
        now, cpu_now = time.perf_counter(), time.process_time()
        timings[stage] = round(now - clock, 3)
        cpu[stage] = round(cpu_now - cpu_clock, 3)
        clock, cpu_clock = now, cpu_now

    inputs = prepare_inputs(params, scene_dir=scene_dir, progress=progress)
    annotations = read_cvat(inputs.annotations)
    info = video_info(inputs.video)
    validate_against_video(annotations, info.frame_count)
    frame_count = min(info.frame_count, params.max_frames or info.frame_count)
    if not params.simulated and params.max_frames and params.max_frames < info.frame_count:
        log.warning("max_frames=%d: faces are searched in the whole video (%d frames) but only the first %d "
                    "are reported", params.max_frames, info.frame_count, params.max_frames)
    searched = tuple(range(0, frame_count, params.frame_stride))
    lap("inputs")

    detector = resolve_detector(params.detector)
    embedder = resolve_embedder(params.model)
    threshold, threshold_source = resolve_threshold(params, embedder)
    lap("models")

    before = _count_cache_entries()
    query_embeddings, queries = _embed_queries(inputs.query_photos, inputs.primary, detector=detector,
                                               embedder=embedder, user_given=not inputs.simulated)
    lap("queries")

    face_set = detect_and_embed(inputs.video, detector=detector, embedder=embedder, stride=params.frame_stride,
                                batch_size=BATCH_SIZE, progress=progress)
    written = _count_cache_entries() - before
    table = _detection_table(face_set, query_embeddings, inputs.primary, metric=params.metric,
                             threshold=threshold, max_frames=params.max_frames)
    lap("faces")

    table["face_track"] = link_detections(table, max_gap=2 * params.frame_stride)
    main_column = "distance"
    table = _track(table, params, threshold, main_column)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        validations = {rule: validate(table, annotations, inputs.subject, rule=rule, frames=searched)
                       for rule in params.rules}
        track_validations = {rule: validate(table.assign(decision=table["track_decision"]), annotations,
                                            inputs.subject, rule=rule, frames=searched)
                             for rule in params.rules}
        query_sets = list(query_embeddings) + ([ALL_PHOTOS] if len(query_embeddings) > 1 else [])
        main_query = inputs.primary[0] if len(inputs.primary) == 1 else ALL_PHOTOS
        rows = []
        for rule, validation in validations.items():
            subject = validation.outcomes["subject"].to_numpy(dtype=bool)
            missed = len(validation.missed)
            faces = _face_counts(validation.outcomes, annotations, searched)
            for query in query_sets:
                column = f"distance_{query}"
                tracked = _track(table, params, threshold, column)
                for level, decision in (("frame", table[column].to_numpy() <= threshold),
                                        ("track", tracked["track_decision"].to_numpy(dtype=bool))):
                    rows.append(_performance_rows(params, rule, level, query, query == main_query, subject,
                                                  decision, missed, threshold, faces))
        performance = pd.DataFrame(rows)
        thresholds = {rule: _threshold_analysis(rule, validation.outcomes, threshold)
                      for rule, validation in validations.items()}
    lap("analysis")

    examples = {rule: pick_examples(v.outcomes, per_outcome=params.examples_per_outcome, seed=params.seed)
                for rule, v in validations.items()}
    overview_frames = _overview_frames(table, validations[params.rules[-1]], searched)
    frames = _read_frames(inputs.video, {int(f) for e in examples.values() for f in e["frame"]} | set(overview_frames))
    from crowdkit.engine.plots import crop_box

    thumbnails = {rule: [crop_box(frames[int(r.frame)], (r.x1, r.y1, r.x2, r.y2)) for r in e.itertuples()]
                  for rule, e in examples.items()}
    lap("thumbnails")

    result = CrowdRunResult(
        params=params, inputs=inputs, threshold=threshold, threshold_source=threshold_source, queries=queries,
        detections=table, validations=validations, track_validations=track_validations, performance=performance,
        thresholds=thresholds, examples=examples, thumbnails=thumbnails,
        overview={f: frames[f] for f in overview_frames}, frames_searched=searched, frame_count=frame_count,
        timings=timings, cpu_seconds=cpu, cache_entries_written=written)
    if run_dir is not None:
        save_tables(result, run_dir)
    log.info("crowd run %s/%s: %d faces in %d frames, %d new cache entries, %s", params.member, params.challenge,
             len(table), len(searched), written, timings)
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


def save_tables(result: CrowdRunResult, run_dir: str | Path) -> list[Path]:
    """Write the run's tables as parquet (atomically) into ``run_dir`` for the summary page."""
    from crowdkit.common.io import write_json_atomic
    from crowdkit.book.runs import save_run_table

    member, challenge = result.params.member, result.params.challenge
    thresholds = result.threshold_table().reset_index()
    thresholds.insert(0, "challenge", challenge)
    thresholds.insert(0, "member", member)
    detections = result.validations[result.params.rules[-1]].outcomes.copy()
    detections.insert(0, "challenge", challenge)
    detections.insert(0, "member", member)
    queries = result.queries.assign(member=member, challenge=challenge)
    paths = [save_run_table(name, table, run_dir=run_dir) for name, table in (
        ("performance", result.performance), ("thresholds", thresholds),
        ("detections", detections), ("queries", queries))]
    target = Path(run_dir) / "provenance.json"
    write_json_atomic(target, run_provenance(result))
    return [*paths, target]


# --------------------------------------------------------------------------- figures


def plot_queries(result: CrowdRunResult) -> "Figure":
    """The query photos, the run's own framed in green; a photo without a face says so."""
    from crowdkit.common.io import read_image
    from crowdkit.engine.plots import thumbnail_grid

    rows = list(result.queries.itertuples())
    images = [read_image(r.path) for r in rows]
    captions = [f"{r.name}{' (run query)' if r.primary else ''}" + ("" if r.face_found else "\nno face found")
                for r in rows]
    return thumbnail_grid(images, captions, ncols=len(images), size=2.0, highlight=[bool(r.primary) for r in rows],
                          title=f"query photos of {result.inputs.subject}")


def plot_examples(result: CrowdRunResult, rule: str = "study") -> "Figure":
    """The study's table layout: one row per outcome (TP, FP, TN, FN), two face thumbnails each with distance."""
    import matplotlib.pyplot as plt

    examples, thumbs = result.examples[rule], result.thumbnails[rule]
    per = result.params.examples_per_outcome
    fig, axes = plt.subplots(len(OUTCOMES), per, figsize=(1.9 * per + 0.8, 1.9 * len(OUTCOMES)), squeeze=False)
    for row, outcome in enumerate(OUTCOMES):
        chosen = [i for i, o in enumerate(examples["outcome"]) if o == outcome]
        for col in range(per):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(chosen):
                i = chosen[col]
                record = examples.iloc[i]
                ax.imshow(thumbs[i])
                ax.set_title(f"d = {record['distance']:.3f}\nframe {int(record['frame'])}, "
                             f"{record['face_height']:.0f} px", fontsize=7)
            else:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes, color="grey")
                for spine in ax.spines.values():
                    spine.set_visible(False)
            if col == 0:
                ax.set_ylabel(outcome, fontsize=11, rotation=0, labelpad=18, va="center")
    fig.suptitle(f"{rule} rule: examples per outcome (threshold {result.threshold:g})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_overview(result: CrowdRunResult, rule: str = "iou") -> "Figure":
    """The far and the near overview frames with each detection coloured by outcome and missed subject faces."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    colours = {"TP": "#2ca02c", "FP": "#d62728", "TN": "#1f77b4", "FN": "#ff7f0e"}
    frames = sorted(result.overview)
    fig, axes = plt.subplots(1, max(1, len(frames)), figsize=(6.5 * max(1, len(frames)), 4), squeeze=False)
    outcomes = result.validations[rule].outcomes
    missed = result.validations[rule].missed
    for ax, frame in zip(axes.flat, frames):
        ax.imshow(result.overview[frame])
        for r in outcomes[outcomes["frame"] == frame].itertuples():
            ax.add_patch(Rectangle((r.x1, r.y1), r.x2 - r.x1, r.y2 - r.y1, fill=False, lw=1.2,
                                   edgecolor=colours[r.outcome]))
        for r in missed[missed["frame"] == frame].itertuples():
            ax.add_patch(Rectangle((r.x1, r.y1), r.x2 - r.x1, r.y2 - r.y1, fill=False, lw=1.2, ls="--",
                                   edgecolor="magenta"))
        ax.set_title(f"frame {frame}", fontsize=9)
        ax.set_axis_off()
    handles = [Rectangle((0, 0), 1, 1, fill=False, edgecolor=c, label=o) for o, c in colours.items()]
    handles.append(Rectangle((0, 0), 1, 1, fill=False, edgecolor="magenta", ls="--", label="subject missed"))
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_kde(result: CrowdRunResult, rule: str = "study", *, ax=None):
    """KDE of true- vs false-positive distances with the used, mean + 2σ and equal-error thresholds."""
    from crowdkit.crowd.threshold import plot_distance_kde

    analysis = result.thresholds[rule]
    ax = plot_distance_kde(analysis.tp_distances, analysis.fp_distances, ax=ax, thresholds={
        "used": analysis.threshold, "mean + 2σ": analysis.mean_plus_2sigma, "equal error": analysis.eer.threshold})
    ax.set_title(f"{rule} rule: distances of the faces declared the subject", fontsize=9)
    return ax


def plot_curves(result: CrowdRunResult, rule: str = "iou") -> "Figure":
    """Three panels: rates against the threshold, ROC with the equal-error point, precision–recall."""
    import matplotlib.pyplot as plt

    analysis = result.thresholds[rule]
    fig, (sweep_ax, roc_ax, pr_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    sweep = analysis.sweep
    for column in ("precision", "recall", "f1"):
        sweep_ax.plot(sweep["threshold"], sweep[column], label=column)
    for name, value, style in (("used", analysis.threshold, "--"), ("mean + 2σ", analysis.mean_plus_2sigma, ":"),
                               ("equal error", analysis.eer.threshold, "-.")):
        if value is not None and math.isfinite(value):
            sweep_ax.axvline(value, color="black", linestyle=style, linewidth=1, label=f"{name} {value:.3f}")
    sweep_ax.set_xlabel(f"threshold ({result.params.metric} distance)")
    sweep_ax.set_ylabel("rate")
    sweep_ax.legend(fontsize=7)
    sweep_ax.set_title("threshold sweep", fontsize=9)
    if analysis.roc.empty:
        for ax in (roc_ax, pr_ax):
            ax.text(0.5, 0.5, "undefined: the faces hold\nonly one class (subject or not)", ha="center",
                    va="center", transform=ax.transAxes)
    else:
        roc_ax.plot(analysis.roc["fpr"], analysis.roc["tpr"], label=f"AUC {analysis.roc.attrs['auc']:.3f}")
        roc_ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        if math.isfinite(analysis.eer.rate):
            roc_ax.scatter([analysis.eer.rate], [1 - analysis.eer.rate], color="black", zorder=3,
                           label=f"EER {analysis.eer.rate:.3f}")
        pr_ax.plot(analysis.pr["recall"], analysis.pr["precision"],
                   label=f"AP {analysis.pr.attrs['average_precision']:.3f}")
        roc_ax.legend(fontsize=8, loc="lower right")
        pr_ax.legend(fontsize=8, loc="lower left")
    roc_ax.set(xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.02))
    roc_ax.set_title("ROC", fontsize=9)
    pr_ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    pr_ax.set_title("precision–recall", fontsize=9)
    fig.suptitle(f"{rule} rule, per-frame decisions", fontsize=9)
    fig.tight_layout()
    return fig


def plot_distance_vs_size(result: CrowdRunResult, rule: str = "iou", *, ax=None):
    """Each face's distance against its height in pixels, subject vs others, with the threshold."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.6))
    outcomes = result.validations[rule].outcomes
    for subject, colour, label in ((False, "tab:grey", "someone else"), (True, "tab:green", result.inputs.subject)):
        chosen = outcomes[outcomes["subject"] == subject]
        ax.scatter(chosen["face_height"], chosen["distance"], s=10 if not subject else 18, color=colour,
                   alpha=0.6 if not subject else 0.9, label=f"{label} (n={len(chosen)})")
    ax.axhline(result.threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {result.threshold:g}")
    ax.set_xscale("log")
    ax.set_xlabel("detected face height (px)")
    ax.set_ylabel(f"{result.params.metric} distance to the query")
    ax.legend(fontsize=8)
    ax.set_title(f"{rule} rule: distance against face size", fontsize=9)
    return ax


def plot_levels(result: CrowdRunResult) -> "Figure":
    """Precision, recall and F1 of per-frame vs per-track decisions under each rule (run's query)."""
    import matplotlib.pyplot as plt

    table = result.main_performance().reset_index()
    metrics = ["precision", "recall", "strict_recall", "f1"]
    fig, axes = plt.subplots(1, len(result.params.rules), figsize=(5.2 * len(result.params.rules), 3.2),
                             squeeze=False)
    for ax, rule in zip(axes.flat, result.params.rules):
        part = table[table["rule"] == rule].set_index("level")[metrics]
        part.T.plot.bar(ax=ax, rot=0)
        for container, level in zip(ax.containers, part.index):
            for bar, value in zip(container, part.loc[level]):
                if not math.isfinite(value):
                    ax.text(bar.get_x() + bar.get_width() / 2, 0.02, "undef.", rotation=90, fontsize=7,
                            ha="center", va="bottom")
        ax.set_ylim(0, 1.3)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_title(f"{rule} rule", fontsize=9)
        ax.legend(title="decided per", fontsize=8, title_fontsize=8, loc="upper center", ncol=2)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- summary across runs


def collect_runs(runs_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Every finished run's tables under ``runs_dir`` (see :func:`crowdkit.book.runs.collect_run_tables`)."""
    from crowdkit.book.runs import collect_run_tables

    return {name: collect_run_tables(runs_dir, name) for name in ("performance", "thresholds", "queries")}


def summary_table(performance: pd.DataFrame, *, value: str = "f1", main_only: bool = True) -> pd.DataFrame:
    """member × challenge table of ``value`` with one column block per rule and level."""
    if performance.empty:
        return pd.DataFrame()
    table = performance[performance["main"]] if main_only else performance
    order = [c for c in ("normal", "compact", "intruder", "random", "mask1", "mask2") if c in set(table["challenge"])]
    order += sorted(set(table["challenge"]) - set(order))
    pivot = table.pivot_table(index=["member", "challenge"], columns=["rule", "level"], values=value,
                              aggfunc="first", dropna=False)
    return pivot.reindex(order, level="challenge")


def plot_summary(performance: pd.DataFrame, *, value: str = "f1") -> "Figure":
    """Heat maps of ``value`` (member × challenge), one per rule × level; undefined cells are marked."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    table = performance[performance["main"]]
    combos = [(r, l) for r in ("study", "iou") for l in LEVELS if ((table["rule"] == r) & (table["level"] == l)).any()]
    ncols = min(2, max(1, len(combos)))
    nrows = max(1, -(-len(combos) // ncols))
    height = 0.9 + 0.45 * max(1, table["member"].nunique())
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, height * nrows), squeeze=False)
    order = [c for c in ("normal", "compact", "intruder", "random", "mask1", "mask2") if c in set(table["challenge"])]
    for ax, (rule, level) in zip(axes.flat, combos):
        part = table[(table["rule"] == rule) & (table["level"] == level)]
        grid = part.pivot_table(index="member", columns="challenge", values=value, aggfunc="first", dropna=False)
        grid = grid.reindex(columns=order)
        sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", cbar=False,
                    annot_kws={"fontsize": 7}, mask=grid.isna())
        for (i, j), missing in np.ndenumerate(grid.isna().to_numpy()):
            if missing:
                ax.text(j + 0.5, i + 0.5, "undef.", ha="center", va="center", fontsize=7, color="grey")
        ax.set_title(f"{value}: {rule} rule, per {level}", fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def gain_table(performance: pd.DataFrame, *, compare: str = "level", value: str = "f1") -> pd.DataFrame:
    """Per run: ``value`` per frame vs per track (``compare="level"``), or run's query vs all photos
    (``compare="query"``), under each rule, with the difference.

    Returns one row per member × challenge × rule with the two values and ``gain`` (second − first).
    """
    if performance.empty:
        return pd.DataFrame()
    if compare == "level":
        table = performance[performance["main"]]
        wide = table.pivot_table(index=["member", "challenge", "rule"], columns="level", values=value,
                                 aggfunc="first", dropna=False)
        first, second = "frame", "track"
    elif compare == "query":
        table = performance[performance["level"] == "frame"]
        main = table[table["main"]].set_index(["member", "challenge", "rule"])[value].rename("single")
        every = table[table["query"] == ALL_PHOTOS].set_index(["member", "challenge", "rule"])[value].rename(ALL_PHOTOS)
        wide = pd.concat([main, every], axis=1)
        first, second = "single", ALL_PHOTOS
    else:
        raise ConfigError(f"compare must be 'level' or 'query', got {compare!r}")
    wide = wide.reindex(columns=[first, second])
    wide["gain"] = wide[second] - wide[first]
    return wide


def reported_beside_ours(reported: pd.DataFrame, performance: pd.DataFrame, *, tolerance: float = 0.005
                         ) -> pd.DataFrame:
    """The study's printed tables, each rate checked against its own counts, beside our runs of that challenge.

    ``reported`` has ``member, challenge, TP, FP, TN, FN`` and the printed
    ``precision, recall, f1, accuracy`` (fractions; NaN where nothing was
    printed). The result adds :func:`crowdkit.common.metrics.check_reported`'s
    ``<rate>_recomputed``/``<rate>_ok`` columns and ``ours_<rate>``: the mean
    over our members of that challenge under the study's rule, per frame.
    """
    from crowdkit.common.metrics import check_reported

    missing = [c for c in ("member", "challenge", "TP", "FP", "TN", "FN") if c not in reported.columns]
    if missing:
        raise ConfigError(f"the reported table lacks column(s) {', '.join(missing)}")
    checked = check_reported(reported, tolerance=tolerance)
    if performance.empty:
        return checked
    ours = performance[performance["main"] & (performance["rule"] == "study") & (performance["level"] == "frame")]
    rates = [r for r in ("precision", "recall", "f1", "accuracy") if r in ours]
    means = ours.groupby("challenge")[rates].mean().add_prefix("ours_")
    return checked.merge(means, left_on="challenge", right_index=True, how="left")


def in_challenge_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a table indexed by (member, challenge, ...) sorted by member, then challenge in the study's order."""
    from crowdkit.crowd.simulate import CHALLENGES

    rank = {c: i for i, c in enumerate(CHALLENGES)}
    frame = table.reset_index()
    frame["_rank"] = frame["challenge"].map(lambda c: rank.get(c, len(rank)))
    keys = list(table.index.names)
    frame = frame.sort_values(["member", "_rank", *[k for k in keys if k not in ("member", "challenge")]],
                              kind="stable")
    return frame.drop(columns="_rank").set_index(keys)
