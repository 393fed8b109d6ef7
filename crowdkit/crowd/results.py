"""What one crowd run produced: performance rows, threshold analyses and the run's result.

:class:`PerformanceRow` is one line of the study's table (one rule × decision
level × query set); :class:`ThresholdAnalysis` the threshold study of one rule;
:class:`CrowdRunResult` everything :func:`crowdkit.crowd.run.run_crowd` returns,
with the tables a run page shows as methods.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdkit.common.metrics import Confusion, EqualErrorRate
from crowdkit.crowd.inputs import RunInputs
from crowdkit.crowd.intervals import INTERVAL_RATES, interval_columns, interval_text
from crowdkit.crowd.params import ALL_PHOTOS, CrowdRunParams

if TYPE_CHECKING:  # pragma: no cover
    from crowdkit.crowd.threshold import StudyRetuning, ThresholdChange
    from crowdkit.crowd.validate import ValidationResult

#: Rate columns a displayed table prints as text ("undefined" where NaN), with their 95 % interval.
RATE_COLUMNS = ("precision", "recall", "f1", "accuracy", "specificity", "strict_recall", "strict_f1",
                "detection_rate")
#: The interval bounds of the rates, as columns of the performance table.
BOUND_COLUMNS = tuple(f"{rate}_{side}" for rate in INTERVAL_RATES for side in ("low", "high"))


@dataclass(frozen=True)
class PerformanceRow:
    """One row of a run's performance table: one rule × level × query set.

    ``counts`` are the detections' outcomes; ``missed`` the annotated subject
    faces no detection matched (``strict_recall`` and ``strict_f1`` count them as false
    negatives); ``faces_annotated``/``faces_matched``: annotated faces of anyone
    in view in the searched frames, and how many a detection matched under the rule.
    ``intervals``: rate → (low, high), the 95 % cluster-bootstrap interval of each rate
    (:func:`crowdkit.crowd.intervals.rate_intervals`); a rate without one has NaN bounds.
    """

    member: str
    challenge: str
    rule: str
    level: str
    query: str
    main: bool
    threshold: float
    counts: Confusion
    missed: int
    faces_annotated: int
    faces_matched: int
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_decisions(cls, *, subject: np.ndarray, decision: np.ndarray, **fields: Any) -> "PerformanceRow":
        """A row from per-detection truth (``subject``) and ``decision`` (bool arrays); other fields by keyword."""
        return cls(counts=Confusion.from_labels(subject, decision), **fields)

    @property
    def strict_recall(self) -> float:
        """Recall over every annotated subject face in view, the missed ones counted as false negatives."""
        return (self.counts + Confusion(fn=self.missed)).as_row()["recall"]

    @property
    def strict_f1(self) -> float:
        """F1 with the missed subject faces counted as false negatives."""
        return (self.counts + Confusion(fn=self.missed)).as_row()["f1"]

    @property
    def detection_rate(self) -> float:
        """Share of the annotated faces in view that a detection matched (NaN when none was in view)."""
        return self.faces_matched / self.faces_annotated if self.faces_annotated else math.nan

    def as_row(self) -> dict[str, Any]:
        return {"member": self.member, "challenge": self.challenge, "rule": self.rule, "level": self.level,
                "query": self.query, "main": self.main, "threshold": self.threshold, **self.counts.as_row(),
                "missed": self.missed, "strict_recall": self.strict_recall,
                "faces_annotated": self.faces_annotated, "faces_matched": self.faces_matched,
                "detection_rate": self.detection_rate, "strict_f1": self.strict_f1,
                **interval_columns(self.intervals)}

    @staticmethod
    def to_frame(rows: Sequence["PerformanceRow"]) -> pd.DataFrame:
        """One table row per :class:`PerformanceRow`, in the order given."""
        return pd.DataFrame([row.as_row() for row in rows])


@dataclass(frozen=True)
class ThresholdAnalysis:
    """The threshold study of one rule (per-frame decisions of the run's query).

    ``study``: the study's own re-tuning (:func:`crowdkit.crowd.threshold.study_retuning`:
    sample σ, rounded); ``mean_plus_2sigma`` and ``change`` are ours (population σ,
    unrounded) and what it would flip. ``sweep``: :func:`crowdkit.crowd.threshold.threshold_sweep`; ``roc``/``pr``:
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
    study: "StudyRetuning | None" = None
    band: pd.DataFrame = field(default_factory=pd.DataFrame)

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
            **(self.study.as_row() if self.study is not None else {}),
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
    performance : one row per rule × level × query set (:class:`PerformanceRow` columns)
    thresholds : rule → :class:`ThresholdAnalysis`
    examples : rule → the example detections (:func:`crowdkit.crowd.validate.examples`)
    thumbnails : rule → one face crop (RGB uint8) per row of ``examples[rule]``
    overview : frame index → the full frame (RGB), for a far and a near frame
    frames_searched : the frame indices searched
    timings : stage → wall-clock seconds
    cpu_seconds : stage → CPU seconds of this process (all threads)
    cache_entries_written : new per-frame cache entries this run wrote (0 on a rerun)
    study_threshold : the threshold the study's rule gives this model (0.65 for ArcFace + cosine,
        else the model's deepface default); NaN when unknown
    calibration : the LFW calibration the run decided with
        (:class:`~crowdkit.engine.calibration.Calibration`), or None
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
    study_threshold: float = math.nan
    calibration: Any = None

    @property
    def main_query(self) -> str:
        return self.inputs.primary[0] if len(self.inputs.primary) == 1 else ALL_PHOTOS

    def main_performance(self, *, display: bool = False) -> pd.DataFrame:
        """The run's query: one row per rule × level, in the study's layout."""
        table = self.performance[self.performance["main"]].drop(columns=["main"])
        table = table.set_index(["rule", "level"])
        return display_rates(table) if display else table

    def performance_table(self) -> pd.DataFrame:
        """:meth:`main_performance` as the run page shows it: rates as text, without the run's own labels."""
        return self.main_performance(display=True).drop(
            columns=["member", "challenge", "query", "faces_annotated", "faces_matched", "detection_rate"])

    def rule_comparison(self) -> pd.DataFrame:
        """Per-frame counts under each rule beside the missed subject faces and the detection rate."""
        return self.main_performance().xs("frame", level="level")[
            ["TP", "FP", "TN", "FN", "missed", "faces_annotated", "faces_matched", "detection_rate"]]

    def query_comparison(self, *, rule: str | None = None, display: bool = False) -> pd.DataFrame:
        """Each query photo alone and all together: one row per query set × level for ``rule``."""
        rule = rule or self.params.main_rule
        table = self.performance[self.performance["rule"] == rule].set_index(["query", "level"])
        table = table[["main", "positives", "negatives", "TP", "FP", "TN", "FN", "precision", "recall", "f1",
                       "accuracy", "missed", "strict_recall", *(c for c in BOUND_COLUMNS if c in table)]]
        return display_rates(table) if display else table

    def query_table(self) -> pd.DataFrame:
        """The query photos: name, whether it is the run's query, whether a face was found, its score."""
        return self.queries[["name", "primary", "face_found", "score"]]

    def timing_table(self) -> pd.DataFrame:
        """Wall-clock and CPU seconds per stage, one column per stage."""
        return pd.DataFrame({"wall seconds": self.timings, "CPU seconds": self.cpu_seconds}).T

    def threshold_table(self) -> pd.DataFrame:
        """One row per rule: used threshold, mean + 2σ and what it flips, AUC, AP, EER."""
        rows = [analysis.as_row() for analysis in self.thresholds.values()]
        return pd.DataFrame(rows).set_index("rule") if rows else pd.DataFrame()

    def retuning_comparison(self) -> pd.DataFrame:
        """Per rule: the study's re-tuned threshold as it computed it beside ours, labelled, with its checks."""
        rows = {}
        for rule, analysis in self.thresholds.items():
            study = analysis.study
            if study is None:
                continue
            rows[rule] = {"study: mean + 2σ (sample σ, 4 decimals)": study.threshold,
                          "ours: mean + 2σ (population σ)": analysis.mean_plus_2sigma,
                          "TP mean": study.tp_mean, "TP σ (sample)": study.tp_std,
                          "FP mean": study.fp_mean, "FP σ (sample)": study.fp_std,
                          "largest TP distance": study.tp_max, "smallest FP distance": study.fp_min,
                          "overlap (largest TP ≥ smallest FP)": study.overlap}
        return pd.DataFrame(rows) if rows else pd.DataFrame()

    def threshold_change_table(self) -> pd.DataFrame:
        """Counts and rates before and after the mean + 2σ threshold, per rule where it is defined."""
        tables = {rule: analysis.change.as_table()[["threshold", "TP", "FP", "TN", "FN", "precision", "recall", "f1"]]
                  for rule, analysis in self.thresholds.items() if analysis.change is not None}
        return pd.concat(tables, names=["rule"]) if tables else pd.DataFrame()

    def track_table(self, *, best: int = 8) -> pd.DataFrame:
        """The ``best`` linked tracks closest to the query: frames, first and last frame, distances, decision."""
        return self.tracks().sort_values("track_distance").head(best)

    def tracks(self) -> pd.DataFrame:
        """One row per linked track of faces."""
        return self.detections.groupby("face_track").agg(
            frames=("frame", "size"), first=("frame", "min"), last=("frame", "max"), best=("distance", "min"),
            track_distance=("track_distance", "first"), decision=("track_decision", "first"))

    def missed(self, rule: str = "iou") -> pd.DataFrame:
        """Annotated subject faces no detection matched under ``rule`` (with their heights)."""
        missed = self.validations[rule].missed.copy()
        missed["face_height"] = missed["y2"] - missed["y1"]
        return missed


def display_rates(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with its rate columns as text with their 95 % interval, the bounds' columns dropped.

    ``"0.750 [0.520, 0.910]"``; ``"undefined"`` where NaN, never 0; ``"1.000 [too few]"`` where
    fewer than 5 faces are in the rate's denominator (:func:`crowdkit.crowd.intervals.interval_text`).
    """
    table = table.copy()
    for column in RATE_COLUMNS:
        if column in table:
            table[column] = interval_text(table, column)
    return table.drop(columns=[c for c in BOUND_COLUMNS if c in table])
