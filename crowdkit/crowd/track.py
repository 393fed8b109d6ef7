"""Link per-frame face detections into tracks, and decide identity once per track.

A face too blurred, turned or covered in one frame is often clear a few frames
later. Linking detections of the same face across frames and deciding from
the track's best distances lets those good frames speak for the bad ones.

The tracker is deliberately simple (IoU + Hungarian assignment, constant
velocity prediction): each frame, every live track predicts its box from its
last two observations; detections and predictions are assigned one-to-one by
IoU (``scipy.optimize.linear_sum_assignment``); a pair with IoU ≥
``iou_threshold`` continues the track; leftover detections start new tracks; a
track not seen for more than ``max_gap`` frames ends.

Example::

    table = find(["query.jpg"], "scene.mp4", stride=2)
    table["track"] = link_detections(table, max_gap=6)
    tracked = decide_per_track(table, rule="mean_of_k_best", k=3)
    validate(tracked.assign(decision=tracked.track_decision), ann, "George_W_Bush")
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crowdkit.common.exceptions import ConfigError
from crowdkit.common.geometry import iou_matrix

log = logging.getLogger(__name__)

#: How :func:`decide_per_track` summarises a track's distances.
TRACK_RULES = ("min", "mean_of_k_best", "median")


@dataclass
class _Live:
    id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    def predict(self, frame: int) -> np.ndarray:
        last = self.boxes[-1]
        if len(self.boxes) < 2:
            return last
        velocity = (last - self.boxes[-2]) / (self.frames[-1] - self.frames[-2])
        return last + velocity * (frame - self.frames[-1])


def link_detections(table: pd.DataFrame, *, iou_threshold: float = 0.3, max_gap: int = 5,
                    predict: bool = True) -> np.ndarray:
    """A track id for every detection (rows of ``table``: ``frame, x1, y1, x2, y2``).

    Parameters
    ----------
    table : detections, any row order
    iou_threshold : least IoU between a track's predicted box and a detection to continue the track
    max_gap : most frames a track may go unseen and still continue (≥ the frame stride you searched with)
    predict : extrapolate each track's box with its last velocity (helps where faces cross)

    Returns
    -------
    ndarray (N,) int64, track ids 0, 1, … in order of first appearance, aligned with ``table``'s rows.
    """
    if max_gap < 1:
        raise ConfigError(f"max_gap must be at least 1 frame, got {max_gap}")
    missing = [c for c in ("frame", "x1", "y1", "x2", "y2") if c not in table.columns]
    if missing:
        raise ConfigError(f"the detection table lacks column(s) {', '.join(missing)}")
    from scipy.optimize import linear_sum_assignment

    frames = table["frame"].to_numpy(dtype=np.int64)
    boxes = table[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float)
    ids = np.full(len(table), -1, dtype=np.int64)
    live: list[_Live] = []
    next_id = 0
    for frame in np.unique(frames):
        rows = np.flatnonzero(frames == frame)
        live = [t for t in live if frame - t.frames[-1] <= max_gap]
        taken: set[int] = set()
        if live:
            predicted = np.array([t.predict(frame) if predict else t.boxes[-1] for t in live])
            iou = iou_matrix(boxes[rows], predicted)
            for r, c in zip(*linear_sum_assignment(iou, maximize=True)):
                if iou[r, c] >= iou_threshold:
                    ids[rows[r]] = live[c].id
                    live[c].frames.append(int(frame))
                    live[c].boxes.append(boxes[rows[r]])
                    taken.add(r)
        for r in range(len(rows)):
            if r not in taken:
                ids[rows[r]] = next_id
                live.append(_Live(next_id, [int(frame)], [boxes[rows[r]]]))
                next_id += 1
    log.debug("linked %d detections into %d tracks", len(table), next_id)
    return ids


def decide_per_track(frame_table: pd.DataFrame, *, rule: str = "min", k: int = 3, threshold: float | None = None,
                     track_column: str = "track") -> pd.DataFrame:
    """Decide once per track and propagate the decision to every detection of it.

    Parameters
    ----------
    frame_table : detections with ``distance`` and a track id column (see :func:`link_detections`)
    rule : ``"min"`` (the track's smallest distance), ``"mean_of_k_best"`` (mean of its ``k``
        smallest) or ``"median"``
    threshold : decide positive when the track distance ≤ threshold; default: the table's
        ``threshold`` column (as :func:`crowdkit.engine.faces.find` writes it)

    Returns
    -------
    A copy with ``track_distance``, ``track_size`` and ``track_decision`` added (the per-frame
    ``decision`` is kept).
    """
    if rule not in TRACK_RULES:
        raise ConfigError(f"unknown track rule {rule!r}; known rules: {', '.join(TRACK_RULES)}")
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    for column in ("distance", track_column):
        if column not in frame_table.columns:
            raise ConfigError(f"the table lacks column {column!r}"
                              + ("; add it with link_detections()" if column == track_column else ""))
    if threshold is None:
        if "threshold" not in frame_table.columns or frame_table["threshold"].nunique() > 1:
            raise ConfigError("give threshold=: the table has no single threshold column to take it from")
        threshold = float(frame_table["threshold"].iloc[0]) if len(frame_table) else np.nan
    grouped = frame_table.groupby(track_column)["distance"]
    if rule == "min":
        per_track = grouped.min()
    elif rule == "median":
        per_track = grouped.median()
    else:
        per_track = grouped.apply(lambda d: np.sort(d.to_numpy())[:k].mean())
    result = frame_table.copy()
    result["track_distance"] = frame_table[track_column].map(per_track).astype(float)
    result["track_size"] = frame_table[track_column].map(grouped.size()).astype("int64")
    result["track_decision"] = result["track_distance"] <= threshold
    return result
