"""Which face detector for the crowd runs: recall by face height, false detections and speed on a simulated scene.

Every detector runs on every ``every``-th frame of one scene, the frames one
after another and, within a frame, the detectors one after another in the
same process (so the timings share the machine's load). Each detector's boxes
are matched one-to-one to the scene's CVAT ground truth at IoU ≥ 0.5 by
:func:`crowdkit.crowd.validate.validate` (rule ``"iou"``: Hungarian matching
per frame, as the crowd runs validate)::

    >>> from crowdkit.crowd.detector_study import measure_scene, study_scene, verdict
    >>> scene = study_scene(n_frames=60)                            # doctest: +SKIP
    >>> study = measure_scene(scene, every=4)                       # doctest: +SKIP
    >>> study.to_frame()                                            # doctest: +SKIP
    >>> verdict(study, candidate="yunet", reference="mtcnn").to_markdown()   # doctest: +SKIP

Ground truth is every annotated face box that is not ``outside`` and at least
half visible (the box attribute ``visibility`` ≥ ``min_visibility``); a
detection that matches no visible box at all (not even a mostly hidden one)
is a false detection — unless it touches the frame's border: the ground truth
ends a face's box when less than half of it is inside the frame, so a real
face cut by the border matches nothing (those are counted apart, ``at_border``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdkit.common.exceptions import ConfigError
from crowdkit.crowd.annotations import Annotations, visible_boxes
from crowdkit.crowd.params import CROWD_DETECTOR, CROWD_DETECTOR_OPTIONS
from crowdkit.crowd.validate import validate
from crowdkit.engine.backends import resolve_detector

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from crowdkit.crowd.simulate import SceneResult

#: Ground-truth face height bins in pixels: ``[edge_i, edge_i+1)``.
HEIGHT_EDGES = (0.0, 16.0, 24.0, 32.0, 48.0, 64.0, math.inf)
#: A height bin takes part in the verdict when it holds at least this many faces.
MIN_FACES_PER_BIN = 20


@dataclass(frozen=True)
class DetectorChoice:
    """One detector setting under study: a label, the registry name and its options."""

    label: str
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


#: The crowd runs' detector (:data:`crowdkit.crowd.params.CROWD_DETECTOR` with its options), as the study labels it.
CROWD_CHOICE = DetectorChoice(
    f"{CROWD_DETECTOR} (" + ", ".join(f"{k}={v:g}" for k, v in CROWD_DETECTOR_OPTIONS.get(CROWD_DETECTOR, {}).items())
    + ")", CROWD_DETECTOR, dict(CROWD_DETECTOR_OPTIONS.get(CROWD_DETECTOR, {})))
#: The settings compared by default: YuNet (its defaults, the crowd runs' score threshold, upscaled), MTCNN at
#: ``min_face_size`` 16, and OpenCV's Haar cascade as a floor.
STUDY_DETECTORS = (
    DetectorChoice("yunet", "yunet"),
    CROWD_CHOICE,
    DetectorChoice("yunet x2", "yunet", {"upscale": 2.0}),
    DetectorChoice("mtcnn", "mtcnn", {"min_face_size": 16}),
    DetectorChoice("opencv", "opencv"),
)
#: The scenes the engine chapter measures on: a loose crowd, a tight one, and one that turns its heads.
STUDY_CHALLENGES = ("normal", "compact", "random")


def height_bin_labels(edges: Sequence[float] = HEIGHT_EDGES) -> list[str]:
    """``["<16", "16–24", …, "≥64"]`` for the bins between ``edges``."""
    labels = []
    for low, high in zip(edges[:-1], edges[1:]):
        if low <= 0:
            labels.append(f"<{high:g}")
        elif math.isinf(high):
            labels.append(f"≥{low:g}")
        else:
            labels.append(f"{low:g}–{high:g}")
    return labels


@dataclass(frozen=True, eq=False)
class DetectorStudy:
    """Detectors on one scene: which ground-truth faces each found, its false detections and its time per frame.

    Attributes
    ----------
    scene : a label for the scene (member, challenge, seed, frames)
    frames : the frame indices measured
    detectors : the detector labels, in the order they ran
    faces : DataFrame, one row per ground-truth face: ``frame, track, height`` and one bool column per detector
        (found or not)
    false_detections : DataFrame, one row per detector: ``detector, false, at_border`` (detections matching no
        box, away from and at the frame's border)
    timings : DataFrame, one row per detector and frame: ``detector, frame, ms``
    """

    scene: str
    frames: tuple[int, ...]
    detectors: tuple[str, ...]
    faces: pd.DataFrame
    false_detections: pd.DataFrame
    timings: pd.DataFrame

    def recall_by_height(self, edges: Sequence[float] = HEIGHT_EDGES) -> pd.DataFrame:
        """Long table: ``detector, height, faces, found, recall`` per detector and height bin (in bin order)."""
        bins = pd.cut(self.faces["height"], list(edges), right=False, labels=height_bin_labels(edges))
        rows = []
        for detector in self.detectors:
            grouped = self.faces[detector].astype(int).groupby(bins, observed=False)
            for label, found in grouped:
                n = len(found)
                rows.append({"detector": detector, "height": str(label), "faces": n, "found": int(found.sum()),
                             "recall": found.mean() if n else float("nan")})
        return pd.DataFrame(rows, columns=["detector", "height", "faces", "found", "recall"])

    def false_per_frame(self) -> pd.Series:
        """False detections per measured frame, by detector."""
        counts = self.false_detections.set_index("detector")["false"]
        return (counts / max(len(self.frames), 1)).reindex(list(self.detectors))

    def detection_counts(self) -> pd.DataFrame:
        """Per detector: ``found`` (ground-truth faces it found) and ``false`` (detections away from the border
        matching no face)."""
        false = self.false_detections.set_index("detector")["false"].reindex(list(self.detectors))
        return pd.DataFrame({"found": [int(self.faces[d].sum()) for d in self.detectors],
                             "false": false.to_numpy()}, index=list(self.detectors))

    def precision(self) -> pd.Series:
        """Of each detector's faces and false detections, the share that are faces."""
        counts = self.detection_counts()
        total = counts["found"] + counts["false"]
        return counts["found"] / total.where(total > 0)

    def median_ms(self) -> pd.Series:
        """Median milliseconds per frame, by detector."""
        return self.timings.groupby("detector")["ms"].median().reindex(list(self.detectors))

    def to_frame(self) -> pd.DataFrame:
        """One row per detector: recall per height bin (column ``"16–24 px (n=…)"``), overall recall,
        false detections per frame and median ms per frame."""
        long = self.recall_by_height()
        counts = long.drop_duplicates("height").set_index("height")["faces"]
        wide = long.pivot(index="detector", columns="height", values="recall")
        wide = wide[list(counts.index)].reindex(list(self.detectors))
        wide.columns = [f"{label} px (n={counts[label]})" for label in counts.index]
        wide["all"] = [self.faces[d].mean() for d in wide.index]
        wide["false/frame"] = self.false_per_frame()
        wide["ms/frame"] = self.median_ms()
        return wide.round(3)


# --------------------------------------------------------------------------- measuring one scene

def study_scene(*, member: str = "Colin_Powell", challenge: str = "normal", seed: int = 0, n_frames: int = 60,
                progress: bool = False) -> "SceneResult":
    """The simulated scene of the study (rendered once into the scene cache, then reused)."""
    from crowdkit.crowd.inputs import exclusive_lock, scene_folder
    from crowdkit.crowd.scene import SceneSpec
    from crowdkit.crowd.simulate import generate_scene

    spec = SceneSpec(member=member, challenge=challenge, seed=seed, n_frames=n_frames, subject=member)
    with exclusive_lock(scene_folder(spec)) as folder:
        return generate_scene(spec, folder, progress=progress)


def ground_truth_faces(annotations: Annotations, frames: Sequence[int], *, min_visibility: float = 0.5
                       ) -> pd.DataFrame:
    """The faces a detector should find: ``frame, track, height, visibility`` of each visible box at least
    ``min_visibility`` uncovered, in the given frames."""
    rows = []
    for frame, pairs in visible_boxes(annotations, frames=frames).items():
        for track, box in pairs:
            visibility = float({**track.attributes, **box.attributes}.get("visibility", 1.0))
            if visibility >= min_visibility:
                rows.append((frame, track.id, box.y2 - box.y1, visibility))
    return pd.DataFrame(rows, columns=["frame", "track", "height", "visibility"]).astype(
        {"frame": "int64", "track": "int64", "height": float})


def _timed_detections(video: Any, choices: Sequence[DetectorChoice], every: int
                      ) -> tuple[tuple[int, ...], pd.DataFrame, pd.DataFrame]:
    """Run each detector on every ``every``-th frame: (frames, detections table, timings table)."""
    from crowdkit.engine.video import iter_frames

    detectors = [resolve_detector(c.name, **dict(c.options)) for c in choices]
    boxes, times, frames = [], [], []
    for frame in iter_frames(video, stride=every):
        if not frames:  # the first call of a backend pays for lazy set-up: not timed
            for detector in detectors:
                detector.detect(frame.image)
        frames.append(frame.index)
        for choice, detector in zip(choices, detectors):
            start = time.perf_counter()
            found = detector.detect(frame.image)
            times.append((choice.label, frame.index, 1000.0 * (time.perf_counter() - start)))
            boxes.extend((choice.label, frame.index, *d.box, d.score) for d in found)
    detections = pd.DataFrame(boxes, columns=["detector", "frame", "x1", "y1", "x2", "y2", "score"])
    timings = pd.DataFrame(times, columns=["detector", "frame", "ms"])
    return tuple(frames), detections, timings


def _matched_tracks(detections: pd.DataFrame, annotations: Annotations, frames: Sequence[int]) -> pd.Series:
    """Per detection, the annotated track it matches one-to-one at IoU ≥ 0.5 (<NA>: none)."""
    if detections.empty:
        return pd.Series([], dtype="Int64")
    table = detections.assign(decision=False).reset_index(drop=True)
    any_track = annotations.tracks[0].id
    outcomes = validate(table, annotations, any_track, rule="iou", frames=frames, iou_threshold=0.5).outcomes
    return outcomes["track"]


def measure_scene(scene: "SceneResult", detectors: Sequence[DetectorChoice] = STUDY_DETECTORS, *, every: int = 4,
                  min_visibility: float = 0.5) -> DetectorStudy:
    """Run each of ``detectors`` on every ``every``-th frame of ``scene`` and score it against the ground truth."""
    from crowdkit.crowd.cvat import read_cvat

    labels = [c.label for c in detectors]
    if not detectors or len(set(labels)) != len(labels):
        raise ConfigError(f"give one or more detectors with distinct labels, got {labels}")
    if every < 1:
        raise ConfigError(f"every must be ≥ 1 (every n-th frame), got {every!r}")
    annotations = read_cvat(scene.annotations_xml)
    frames, detections, timings = _timed_detections(scene.video, detectors, every)
    faces = ground_truth_faces(annotations, frames, min_visibility=min_visibility)
    keys = set(zip(faces["frame"], faces["track"]))
    spec = scene.spec
    false_rows = []
    for label in labels:
        mine = detections[detections["detector"] == label]
        tracks = _matched_tracks(mine, annotations, frames)
        found = {(f, int(t)) for f, t in zip(mine["frame"], tracks) if not pd.isna(t)} & keys
        faces[label] = [(f, t) in found for f, t in zip(faces["frame"], faces["track"])]
        unmatched = mine[tracks.isna().to_numpy()]
        border = _at_border(unmatched, spec.width, spec.height)
        false_rows.append((label, int((~border).sum()), int(border.sum())))
    name = f"{spec.member} / {spec.challenge} / seed {spec.seed}: {len(frames)} of {spec.n_frames} frames"
    return DetectorStudy(name, frames, tuple(labels), faces,
                         pd.DataFrame(false_rows, columns=["detector", "false", "at_border"]), timings)


def measure_scenes(challenges: Sequence[str] = STUDY_CHALLENGES, detectors: Sequence[DetectorChoice] = STUDY_DETECTORS,
                   *, n_frames: int = 150, every: int = 4, seed: int = 0, min_visibility: float = 0.5
                   ) -> DetectorStudy:
    """:func:`measure_scene` on one simulated scene per challenge, pooled into one study.

    Faces, false detections and timings of every scene are counted together, so a verdict weighs a
    loose crowd, a tight one and one turning its heads at once.
    """
    if not challenges:
        raise ConfigError("give one or more challenges to measure the detectors on")
    studies = [measure_scene(study_scene(challenge=c, seed=seed, n_frames=n_frames), detectors, every=every,
                             min_visibility=min_visibility) for c in challenges]
    if len(studies) == 1:
        return studies[0]
    faces = pd.concat([st.faces.assign(scene=c) for c, st in zip(challenges, studies)], ignore_index=True)
    false = (pd.concat([st.false_detections for st in studies]).groupby("detector", sort=False)[["false", "at_border"]]
             .sum().reset_index())
    timings = pd.concat([st.timings.assign(scene=c) for c, st in zip(challenges, studies)], ignore_index=True)
    frames = tuple(f for st in studies for f in st.frames)
    name = f"{' + '.join(challenges)} / seed {seed}: {len(frames)} frames ({len(studies[0].frames)} per scene)"
    return DetectorStudy(name, frames, studies[0].detectors, faces, false, timings)


def _at_border(boxes: pd.DataFrame, width: int, height: int, *, margin: float = 1.0) -> np.ndarray:
    """Whether each box touches the frame's border (within ``margin`` px)."""
    return ((boxes["x1"] <= margin) | (boxes["y1"] <= margin) | (boxes["x2"] >= width - margin)
            | (boxes["y2"] >= height - margin)).to_numpy(dtype=bool)


def plot_recall_by_height(study: DetectorStudy) -> "Figure":
    """Recall against ground-truth face height, one line per detector (bin labels carry the face counts)."""
    import matplotlib.pyplot as plt

    long = study.recall_by_height()
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    for detector, rows in long.groupby("detector", sort=False):
        ax.plot(range(len(rows)), rows["recall"], marker="o", label=detector)
    counts = long.drop_duplicates("height")
    ax.set_xticks(range(len(counts)), [f"{h}\n(n={n})" for h, n in zip(counts["height"], counts["faces"])])
    ax.set_xlabel("ground-truth face height (px)")
    ax.set_ylabel("recall (IoU ≥ 0.5)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(study.scene)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the verdict

@dataclass(frozen=True)
class Verdict:
    """Whether ``candidate`` is at least as good as ``reference``, bin by bin, and how much faster.

    A bin with at least ``min_faces`` faces counts; the candidate's recall there may be lower by at most
    two standard errors of the difference (binomial) and still count as equal. The same rule holds for
    precision (faces found over faces found plus false detections): one stray box in a hundred frames is
    noise, a false detection in every frame is not.
    """

    candidate: str
    reference: str
    bins: pd.DataFrame = field(repr=False)  # height, faces, candidate, reference, margin, ok
    candidate_false: float
    reference_false: float
    candidate_ms: float
    reference_ms: float
    candidate_precision: float = float("nan")
    reference_precision: float = float("nan")
    precision_margin: float = 0.0

    @property
    def recall_ok(self) -> bool:
        return bool(self.bins["ok"].all()) and len(self.bins) > 0

    @property
    def precision_ok(self) -> bool:
        if math.isnan(self.reference_precision):
            return self.candidate_false <= self.reference_false
        return self.candidate_precision >= self.reference_precision - self.precision_margin

    @property
    def at_least_as_good(self) -> bool:
        return self.recall_ok and self.precision_ok

    @property
    def speedup(self) -> float:
        return self.reference_ms / self.candidate_ms if self.candidate_ms > 0 else float("inf")

    def to_markdown(self) -> str:
        """The verdict as one paragraph, every number from the study."""
        cells = "; ".join(f"{r.height} px (n={r.faces}): {r.candidate:.2f} vs {r.reference:.2f}"
                          for r in self.bins.itertuples())
        worse = [r.height for r in self.bins.itertuples() if not r.ok]
        head = (f"**{self.candidate} is at least as good as {self.reference}**" if self.at_least_as_good
                else f"**{self.candidate} is not at least as good as {self.reference}**")
        recall = ("its recall is within noise or better at every height bin with enough faces"
                  if self.recall_ok else f"its recall is lower beyond noise at {', '.join(worse) or 'every bin'} px")
        false = (f"precision {self.candidate_precision:.3f} vs {self.reference_precision:.3f}"
                 + ("" if self.precision_ok else " (lower beyond noise)")
                 + f", {self.candidate_false:.2f} false detections per frame against {self.reference_false:.2f}")
        speed = (f"{self.candidate_ms:.0f} ms per frame against {self.reference_ms:.0f} ms "
                 + (f"({self.speedup:.1f}× faster)" if self.speedup >= 1 else f"({1 / self.speedup:.1f}× slower)"))
        return f"{head}: {recall} (recall {cells}); {false}; {speed}."


def verdict(study: DetectorStudy, *, candidate: str, reference: str, min_faces: int = MIN_FACES_PER_BIN) -> Verdict:
    """Compare two of the study's detectors bin by bin (see :class:`Verdict`)."""
    for label in (candidate, reference):
        if label not in study.detectors:
            raise ConfigError(f"detector {label!r} is not in the study ({', '.join(study.detectors)})")
    long = study.recall_by_height().set_index(["detector", "height"])
    heights = [h for h in long.loc[reference].index if long.loc[(reference, h), "faces"] >= min_faces]
    rows = []
    for height in heights:
        n = int(long.loc[(reference, height), "faces"])
        pc, pr = float(long.loc[(candidate, height), "recall"]), float(long.loc[(reference, height), "recall"])
        margin = 2.0 * math.sqrt((pc * (1 - pc) + pr * (1 - pr)) / n)
        rows.append((height, n, pc, pr, margin, pc >= pr - margin))
    bins = pd.DataFrame(rows, columns=["height", "faces", "candidate", "reference", "margin", "ok"])
    false, ms, precision = study.false_per_frame(), study.median_ms(), study.precision()
    pc, pr = float(precision[candidate]), float(precision[reference])
    nc, nr = study.detection_counts().sum(axis=1)[[candidate, reference]]
    margin = 2.0 * math.sqrt(pc * (1 - pc) / nc + pr * (1 - pr) / nr) if nc and nr else 0.0
    return Verdict(candidate, reference, bins, float(false[candidate]), float(false[reference]),
                   float(ms[candidate]), float(ms[reference]), pc, pr, margin)


def default_markdown(verdicts: Sequence[Verdict], default: str, *, crowd: str | None = None) -> str:
    """Markdown: which detector is the default of ``crowdkit find`` / ``verify`` (and, given ``crowd``, of the
    crowd runs) and the verdicts behind it."""
    lines = [f"The default detector of `crowdkit find` / `verify` (and `crowdkit.engine.faces`) is **{default}**."]
    if crowd is not None:
        lines[0] += f" The crowd runs use **{crowd}**."
    lines += [f"- {v.to_markdown()}" for v in verdicts]
    return "\n".join(lines)
