"""Validate identification decisions against annotated boxes: TP, FP, TN, FN per detection.

Input: the table :func:`crowdkit.engine.faces.find` returns (one row per detected
face: ``frame, x1, y1, x2, y2, distance, decision``) and the
:class:`~crowdkit.crowd.annotations.Annotations` of the same video, where the
person searched for (the *subject*) is the track whose ``identity`` attribute
is their name (or a given track id).

Each detection is first matched to an annotated box, then labelled:

=================  ====================  ==========================
decision           matches the subject    does not match the subject
=================  ====================  ==========================
positive (match)   TP                    FP
negative           FN                    TN
=================  ====================  ==========================

Two matching rules, both reported:

``"study"``
    The study's rule: a detection matches an annotated box when the top-left
    x and the bottom-right y each differ by less than ``tolerance`` (20 px).
    A detection that matches no box counts as *not the subject* (so a
    negative one is a TN, a positive one an FP). Several detections may match
    the same box. Annotated subject faces that no detection matched are not
    counted anywhere (they are still listed in ``missed``, for comparison).
``"iou"``
    The corrected rule: per frame, detections and annotated boxes are
    assigned one-to-one maximising IoU (Hungarian,
    ``scipy.optimize.linear_sum_assignment``); a pair matches when IoU ≥
    ``iou_threshold`` (0.5). Unmatched detections are not the subject.
    Annotated subject faces never detected are reported separately as
    ``missed``; :attr:`ValidationResult.strict_counts` adds them to FN.

Example::

    table = find(["query.jpg"], "scene.mp4", stride=5)
    result = validate(table, read_cvat("scene.xml"), "George_W_Bush", rule="iou", frames=range(0, 300, 5))
    result.counts.as_row(), result.missed
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from crowdkit.crowd.annotations import Annotations, Track, visible_boxes
from crowdkit.common.exceptions import AnnotationError, ConfigError
from crowdkit.common.geometry import iou_matrix
from crowdkit.common.metrics import Confusion

log = logging.getLogger(__name__)

#: Matching rules :func:`validate` knows.
RULES = ("study", "iou")
#: Columns a detection table must have.
REQUIRED_COLUMNS = ("frame", "x1", "y1", "x2", "y2", "decision")


@dataclass(frozen=True)
class Outcome:
    """What one detection turned out to be."""

    frame: int
    index: object  # the detection's row label in the input table
    outcome: str  # "TP", "FP", "TN" or "FN"
    track: int | None  # the annotated track it matched, if any
    identity: str | None  # that track's identity attribute, if any


@dataclass(frozen=True)
class ValidationResult:
    """Outcomes of one rule.

    ``outcomes``: one row per detection (input order), the input's columns
    plus ``track`` (matched track id or <NA>), ``identity``, ``subject``
    (bool), ``match_score`` (IoU, or the larger corner difference in px for
    the study rule) and ``outcome``. ``missed``: annotated subject boxes in
    the searched frames that no detection matched (``frame, track, x1, y1,
    x2, y2, occluded``).
    """

    rule: str
    outcomes: pd.DataFrame
    counts: Confusion
    missed: pd.DataFrame

    @property
    def strict_counts(self) -> Confusion:
        """``counts`` with every missed subject face added to FN (recall over all annotated subject faces)."""
        return self.counts + Confusion(fn=len(self.missed))

    def as_outcomes(self) -> list[Outcome]:
        table = self.outcomes
        return [Outcome(int(frame), index, outcome, None if pd.isna(track) else int(track), identity)
                for index, frame, outcome, track, identity in zip(
                    table.index, table["frame"], table["outcome"], table["track"], table["identity"])]


def _subject_tracks(ann: Annotations, subject: str | int | Iterable[int]) -> set[int]:
    if isinstance(subject, str):
        ids = {t.id for t in ann.tracks_of(subject)}
        if not ids:
            known = ", ".join(ann.identities()) or "none"
            raise AnnotationError(f"{ann.source or 'annotations'}: no track has identity {subject!r} "
                                  f"(identities present: {known}); check the member name or pass track ids")
        return ids
    ids = {int(subject)} if isinstance(subject, (int, np.integer)) else {int(s) for s in subject}
    missing = ids - {t.id for t in ann.tracks}
    if missing:
        raise AnnotationError(f"{ann.source or 'annotations'}: no track with id {sorted(missing)}")
    return ids


def _match_study(det: np.ndarray, boxes: np.ndarray, is_subject: np.ndarray, tolerance: float):
    """Per detection: matched box index (−1 none) and the larger corner difference."""
    matched = np.full(len(det), -1)
    score = np.full(len(det), np.nan)
    if not len(det) or not len(boxes):
        return matched, score
    gap = np.maximum(np.abs(det[:, None, 0] - boxes[None, :, 0]), np.abs(det[:, None, 3] - boxes[None, :, 3]))
    ok = gap < tolerance
    # the study asks "does it match the subject?": a subject box wins over a closer other box
    rank = np.where(ok, gap - np.where(is_subject, 1e9, 0.0)[None, :], np.inf)
    best = np.argmin(rank, axis=1)
    hit = ok.any(axis=1)
    matched[hit] = best[hit]
    score[hit] = gap[np.flatnonzero(hit), best[hit]]
    return matched, score


def _match_iou(det: np.ndarray, boxes: np.ndarray, threshold: float):
    from scipy.optimize import linear_sum_assignment

    matched = np.full(len(det), -1)
    score = np.full(len(det), np.nan)
    if len(det) and len(boxes):
        iou = iou_matrix(det, boxes)
        rows, cols = linear_sum_assignment(iou, maximize=True)
        keep = iou[rows, cols] >= threshold
        matched[rows[keep]] = cols[keep]
        score[rows[keep]] = iou[rows[keep], cols[keep]]
    return matched, score


def _match_frames(detections: pd.DataFrame, det_frames: np.ndarray, boxes_by_frame: dict, subject_ids: set[int], *,
                  rule: str, tolerance: float, iou_threshold: float) -> tuple[np.ndarray, np.ndarray, set]:
    """Per detection: the matched track id (−1 none) and match score; and the (frame, track) subject boxes matched."""
    n = len(detections)
    track_ids = np.full(n, -1)
    scores = np.full(n, np.nan)
    coords = detections[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float)
    matched_subject_boxes: set[tuple[int, int]] = set()
    positions = pd.Series(np.arange(n)).groupby(det_frames).indices
    for frame, rows in positions.items():
        pairs = boxes_by_frame.get(int(frame), [])
        boxes = np.array([[b.x1, b.y1, b.x2, b.y2] for _, b in pairs], dtype=float).reshape(-1, 4)
        ids = np.array([t.id for t, _ in pairs], dtype=int)
        if rule == "study":
            matched, score = _match_study(coords[rows], boxes, np.isin(ids, list(subject_ids)), tolerance)
        else:
            matched, score = _match_iou(coords[rows], boxes, iou_threshold)
        hit = matched >= 0
        track_ids[rows[hit]] = ids[matched[hit]]
        scores[rows] = score
        matched_subject_boxes.update((int(frame), int(i)) for i in ids[matched[hit]] if i in subject_ids)
    return track_ids, scores, matched_subject_boxes


def validate(detections: pd.DataFrame, annotations: Annotations, subject: str | int | Iterable[int], *,
             rule: str = "study", frames: Iterable[int] | None = None, tolerance: float = 20.0,
             iou_threshold: float = 0.5) -> ValidationResult:
    """Label every detection TP/FP/TN/FN under ``rule`` (see the module docstring).

    Parameters
    ----------
    detections : DataFrame with at least ``frame, x1, y1, x2, y2, decision`` (bool: positive = "is the subject")
    annotations : the video's annotations
    subject : identity attribute value of the subject's track(s), or track id(s)
    rule : ``"study"`` or ``"iou"``
    frames : the frames that were searched (e.g. ``range(0, n, stride)``), used to list ``missed``
        subject faces; default: every frame of the annotation task
    tolerance : the study rule's corner tolerance in pixels (strict ``<``)
    iou_threshold : the IoU rule's minimum overlap (``≥``)
    """
    if rule not in RULES:
        raise ConfigError(f"unknown validation rule {rule!r}; known rules: {', '.join(RULES)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in detections.columns]
    if missing:
        raise ConfigError(f"the detection table lacks column(s) {', '.join(missing)}; "
                          "pass the table crowdkit.engine.faces.find returns")
    subject_ids = _subject_tracks(annotations, subject)
    searched = set(annotations.frames if frames is None else (int(f) for f in frames))
    det_frames = detections["frame"].to_numpy(dtype=np.int64)
    outside = sorted(set(det_frames.tolist()) - set(annotations.frames)) if annotations.frame_count else []
    if outside:
        log.warning("%d detection frame(s) lie outside the annotation task (%s…); their faces count as not the "
                    "subject", len(outside), outside[:5])
    boxes_by_frame = visible_boxes(annotations, frames=searched | set(det_frames.tolist()))
    track_ids, scores, matched_subject_boxes = _match_frames(
        detections, det_frames, boxes_by_frame, subject_ids, rule=rule, tolerance=tolerance,
        iou_threshold=iou_threshold)
    identity_of = {t.id: t.identity for t in annotations.tracks}
    is_subject = np.isin(track_ids, list(subject_ids))
    decision = detections["decision"].to_numpy(dtype=bool)
    labels = np.where(decision, np.where(is_subject, "TP", "FP"), np.where(is_subject, "FN", "TN"))
    outcomes = detections.copy()
    outcomes["track"] = pd.array([t if t >= 0 else None for t in track_ids], dtype="Int64")
    outcomes["identity"] = pd.Series([identity_of.get(t) if t >= 0 else None for t in track_ids],
                                     index=detections.index, dtype=object)
    outcomes["subject"] = is_subject
    outcomes["match_score"] = scores
    outcomes["outcome"] = pd.Series(labels, index=detections.index, dtype=object)
    missed = _missed(boxes_by_frame, searched, subject_ids, matched_subject_boxes)
    return ValidationResult(rule, outcomes, Confusion.from_outcomes(labels), missed)


def _missed(boxes_by_frame: dict[int, list[tuple[Track, object]]], searched: set[int], subject_ids: set[int],
            matched: set[tuple[int, int]]) -> pd.DataFrame:
    rows = [(frame, track.id, box.x1, box.y1, box.x2, box.y2, box.occluded)
            for frame, pairs in boxes_by_frame.items() if frame in searched
            for track, box in pairs if track.id in subject_ids and (frame, track.id) not in matched]
    return pd.DataFrame(rows, columns=["frame", "track", "x1", "y1", "x2", "y2", "occluded"]).astype(
        {"frame": "int64", "track": "int64", "occluded": bool})


def validate_all(detections: pd.DataFrame, annotations: Annotations, subject: str | int | Sequence[int], *,
                 rules: Sequence[str] = RULES, **options) -> dict[str, ValidationResult]:
    """:func:`validate` under each rule; ``options`` go to every call."""
    return {rule: validate(detections, annotations, subject, rule=rule, **options) for rule in rules}


def summary_table(results: dict[str, ValidationResult]) -> pd.DataFrame:
    """One row per rule in the study's layout, plus ``missed`` and the strict recall."""
    rows = []
    for rule, result in results.items():
        row = {"rule": rule, **result.counts.as_row(), "missed": len(result.missed),
               "strict_recall": result.strict_counts.as_row()["recall"]}
        rows.append(row)
    return pd.DataFrame(rows).set_index("rule")


def examples(outcomes: pd.DataFrame, *, per_outcome: int = 2, seed: int = 0) -> pd.DataFrame:
    """A few detections of each outcome for a thumbnail table (the study showed two each).

    Picks ``per_outcome`` rows at random (seeded) for each of TP, FP, TN, FN
    that occurs, sorted by outcome then distance. Outcomes that did not occur
    are simply absent.
    """
    from crowdkit.common.metrics import OUTCOMES

    picked = []
    for outcome in OUTCOMES:
        rows = outcomes[outcomes["outcome"] == outcome]
        if len(rows):
            chosen = rows.sample(min(per_outcome, len(rows)), random_state=seed)
            picked.append(chosen.sort_values("distance") if "distance" in chosen else chosen)
    return pd.concat(picked) if picked else outcomes.iloc[:0]
