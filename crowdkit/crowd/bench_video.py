"""``crowdkit bench video``: the study's pipeline on one simulated scene against ``crowdkit find`` on the video.

The study's pipeline, as its appendix runs it, with deepface and an offline detector:

1. every searched frame of the video is written as a JPEG;
2. a detector runs on each frame (``DeepFace.extract_faces``) and every face
   found is saved as a crop, with a margin of a quarter of its size;
3. ``DeepFace.find`` (model Dlib, cosine) searches the folder of crops for the
   query photo, detecting each crop's face again.

crowdkit reads the same frames straight from the video (``crowdkit find
--gallery VIDEO``: :func:`crowdkit.engine.faces.find`), detects each frame once
and embeds every face with dlib's ResNet in torch, with an empty cache (a
fresh ``CROWDKIT_HOME``; the median of three such runs). Both use YuNet (deepface's ``"yunet"`` backend reads
the copy crowdkit ships) and decide at the same cosine threshold.

Agreement is measured on the faces both found: a crowdkit detection and a
study crop of the same frame whose boxes overlap by IoU ≥ 0.5 are one face;
the fraction of those faces on which both take the same decision is reported.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crowdkit.common.geometry import crop_bounds, iou_matrix
from crowdkit.common.io import show_progress

logger = logging.getLogger(__name__)

#: A crowdkit detection and a study crop of one frame are the same face from this IoU on.
SAME_FACE_IOU = 0.5
#: Margin saved around each detected face (fraction of its size per side), so that the second detection
#: inside the crop sees some context; without it YuNet sometimes returns non-finite boxes on tight crops.
CROP_MARGIN = 0.25
#: crowdkit's cold search is repeated this often, each time on an empty cache (a few seconds each).
COLD_REPEATS = 3


@dataclass(frozen=True)
class VideoBenchmark:
    """Seconds, faces and agreement of one ``crowdkit bench video`` run."""

    scene: str
    frames: int
    detector: str
    threshold: float
    write_frames_s: float
    detect_and_crop_s: float
    deepface_find_s: float
    crowdkit_s: float
    faces_study: int
    faces_crowdkit: int
    faces_both: int
    agreement: float
    distance_correlation: float
    study_matches: int
    crowdkit_matches: int
    disagreements: int = 0
    crowdkit_right: int = 0

    @property
    def study_s(self) -> float:
        """The study's pipeline end to end: frames written, detected and cropped, then DeepFace.find."""
        return self.write_frames_s + self.detect_and_crop_s + self.deepface_find_s

    @property
    def speedup(self) -> float:
        return self.study_s / self.crowdkit_s

    def summary_line(self) -> str:
        return f"speedup={self.speedup:.2f} agreement={self.agreement:.4f} faces_both={self.faces_both}"

    def report(self) -> str:
        """The lines ``crowdkit bench video`` prints; the last one is :meth:`summary_line`."""
        ok = "ok" if self.speedup >= 12 else "MISSED"
        agreed = "ok" if self.agreement >= 0.99 else "MISSED"
        return "\n".join([
            f"scene {self.scene}: {self.frames} frames searched; detector {self.detector} in both; model Dlib; "
            f"cosine threshold {self.threshold:g} in both",
            f"study pipeline: write frames {self.write_frames_s:7.2f} s, detect + crop {self.detect_and_crop_s:7.2f} s, "
            f"DeepFace.find over {self.faces_study} crops {self.deepface_find_s:7.2f} s = {self.study_s:7.2f} s",
            f"crowdkit find --gallery VIDEO (cold, median of {COLD_REPEATS}) {self.crowdkit_s:7.2f} s over {self.faces_crowdkit} faces   "
            f"speedup {self.speedup:5.2f}x (target >= 12: {ok})",
            f"faces both found (same frame, IoU >= {SAME_FACE_IOU}): {self.faces_both}; same decision on "
            f"{self.agreement:.4f} of them (target >= 0.99: {agreed}); matches: study {self.study_matches}, "
            f"crowdkit {self.crowdkit_matches}; Spearman correlation of their distances {self.distance_correlation:.3f} "
            "(deepface re-detects a face inside each crop and aligns it by its eyes only, crowdkit places dlib's "
            "5-point chip in the frame)",
            f"where they disagree ({self.disagreements} faces), the annotations side with crowdkit on "
            f"{self.crowdkit_right} and with the study's pipeline on {self.disagreements - self.crowdkit_right}",
            self.summary_line(),
        ])


def _write_frames(video: Path, folder: Path, stride: int) -> list[tuple[int, Path]]:
    """Step 1: every ``stride``-th frame as ``<index>.jpg`` (BGR JPEG, as cv2 writes it)."""
    import cv2

    from crowdkit.engine.video import iter_frames

    written = []
    for frame in iter_frames(video, stride=stride):
        path = folder / f"{frame.index:06d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        written.append((frame.index, path))
    return written


def _detect_and_crop(frames: list[tuple[int, Path]], folder: Path, detector: str, progress: bool) -> pd.DataFrame:
    """Step 2: deepface's detector on each frame file, each face saved as a crop; one row per crop."""
    import cv2
    from deepface import DeepFace
    from tqdm.auto import tqdm

    rows = []
    for index, path in tqdm(frames, desc="study: detect + crop", unit="frame", disable=not show_progress(progress)):
        image = cv2.imread(str(path))
        faces = DeepFace.extract_faces(img_path=str(path), detector_backend=detector, enforce_detection=False,
                                       align=False)
        for k, face in enumerate(f for f in faces if f.get("confidence", 0) > 0):
            area = face["facial_area"]
            x1, y1, x2, y2 = area["x"], area["y"], area["x"] + area["w"], area["y"] + area["h"]
            left, top, right, bottom = crop_bounds((x1, y1, x2, y2), image.shape, margin=CROP_MARGIN)
            crop = folder / f"{index:06d}_{k}.jpg"
            cv2.imwrite(str(crop), image[top:bottom, left:right])
            rows.append({"crop": crop.name, "frame": index, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    return pd.DataFrame(rows, columns=["crop", "frame", "x1", "y1", "x2", "y2"])


def _deepface_find(query: Path, crops: Path, detector: str) -> dict[str, float]:
    """Step 3: DeepFace.find over the crops; each crop's cosine distance to the query (its decision is made
    afterwards, at the same threshold as crowdkit's; deepface's own filter is lifted so no distance is lost)."""
    from deepface import DeepFace

    found = DeepFace.find(img_path=str(query), db_path=str(crops), model_name="Dlib", detector_backend=detector,
                          distance_metric="cosine", enforce_detection=False, silent=True, refresh_database=True,
                          threshold=2.0, return_type="pandas")
    table = found[0] if isinstance(found, list) else found
    return {Path(p).name: float(d) for p, d in zip(table["identity"], table["distance"])}


def same_faces(ours: pd.DataFrame, theirs: pd.DataFrame, *, min_iou: float = SAME_FACE_IOU) -> list[tuple[int, int]]:
    """(row in ``ours``, row in ``theirs``) of the faces both found: same frame, IoU ≥ ``min_iou``, one to one."""
    pairs = []
    for frame, mine in ours.groupby("frame"):
        other = theirs[theirs["frame"] == frame]
        if other.empty:
            continue
        iou = iou_matrix(mine[["x1", "y1", "x2", "y2"]].to_numpy(), other[["x1", "y1", "x2", "y2"]].to_numpy())
        while iou.size and iou.max() >= min_iou:
            i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
            pairs.append((int(mine.index[i]), int(other.index[j])))
            iou[i, :], iou[:, j] = -1, -1
    return pairs


def run_video_benchmark(*, challenge: str = "normal", member: str = "Peter", seed: int = 0, max_frames: int = 60,
                        stride: int = 1, detector: str = "yunet", workdir: str | os.PathLike | None = None,
                        progress: bool = True) -> VideoBenchmark:
    """Render (or reuse) the scene, run both pipelines on the same frames and compare; see the module docstring."""
    from crowdkit.crowd.inputs import prepare_inputs
    from crowdkit.crowd.params import CrowdRunParams
    from crowdkit.engine.bench import Stopwatch, crowdkit_home_at, prepare_deepface
    from crowdkit.engine.bench_gallery import default_workdir
    from crowdkit.engine.detect_yunet import install_yunet_for_deepface
    from crowdkit.engine.faces import find, forget

    inputs = prepare_inputs(CrowdRunParams(member=member, challenge=challenge, seed=seed, max_frames=max_frames,
                                           frame_stride=stride), progress=progress)
    query = inputs.query_photos[inputs.primary[0]]
    work = Path(workdir) if workdir is not None else default_workdir() / "video"
    shutil.rmtree(work, ignore_errors=True)
    frames_dir, crops_dir = work / "frames", work / "crops"
    frames_dir.mkdir(parents=True)
    crops_dir.mkdir()
    prepare_deepface()
    install_yunet_for_deepface()
    os.environ.setdefault("yunet_score_threshold", "0.6")  # deepface's YuNet at crowdkit's score threshold
    from deepface import DeepFace  # noqa: F401 - imported before any timing (TensorFlow start-up)
    import torch  # noqa: F401 - likewise for crowdkit's torch

    seconds = []
    for attempt in range(COLD_REPEATS):  # each on an empty cache; the median is reported
        with crowdkit_home_at(work / f"crowdkit-home-{attempt}"):
            forget()
            watch = Stopwatch()
            ours = find([query], inputs.video, detector=detector, model="dlib", metric="cosine", stride=stride,
                        progress=progress and attempt == 0)
            seconds.append(watch.stop()[0])
    crowdkit_s = float(np.median(seconds))
    watch = Stopwatch()
    frames = _write_frames(inputs.video, frames_dir, stride)
    write_s = watch.stop()[0]
    watch = Stopwatch()
    crops = _detect_and_crop(frames, crops_dir, detector, progress)
    detect_s = watch.stop()[0]
    watch = Stopwatch()
    distances = _deepface_find(query, crops_dir, detector)
    find_s = watch.stop()[0]
    table = ours.to_frame()
    crops["distance"] = crops["crop"].map(distances)
    crops["decision"] = crops["distance"] <= ours.threshold
    agreement, correlation, both = _agreement(table, crops)
    truth = _is_subject(table, inputs)
    split = [i for i, j in both if table.loc[i, "decision"] != crops.loc[j, "decision"]]
    return VideoBenchmark(
        scene=f"{challenge}, seed {seed} ({inputs.video.parent.name})", frames=len(frames), detector=detector,
        threshold=ours.threshold, write_frames_s=write_s, detect_and_crop_s=detect_s, deepface_find_s=find_s,
        crowdkit_s=crowdkit_s, faces_study=len(crops), faces_crowdkit=len(table), faces_both=len(both),
        agreement=agreement, distance_correlation=correlation, study_matches=int(crops["decision"].sum()),
        crowdkit_matches=ours.match_count, disagreements=len(split),
        crowdkit_right=int(sum(table.loc[i, "decision"] == truth[i] for i in split)),
    )


def _is_subject(table: pd.DataFrame, inputs) -> pd.Series:
    """Per row of ``table``: whether the scene's annotations put the subject's face there (the runs' IoU rule)."""
    from crowdkit.crowd.cvat import read_cvat
    from crowdkit.crowd.validate import validate

    return validate(table, read_cvat(inputs.annotations), inputs.subject, rule="iou").outcomes["subject"]


def _agreement(ours: pd.DataFrame, crops: pd.DataFrame) -> tuple[float, float, list[tuple[int, int]]]:
    """(same-decision fraction, Spearman ρ of the distances, the pairs) over the faces both found."""
    from scipy.stats import spearmanr

    both = same_faces(ours, crops)
    if not both:
        return float("nan"), float("nan"), both
    mine, theirs = (np.array(v) for v in zip(*both))
    agreement = float(np.mean(ours.loc[mine, "decision"].to_numpy() == crops.loc[theirs, "decision"].to_numpy()))
    return agreement, float(spearmanr(ours.loc[mine, "distance"], crops.loc[theirs, "distance"]).statistic), both
