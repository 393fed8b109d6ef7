"""Decision thresholds: the study's mean + kσ rule, sweeps, what a new threshold changes, the KDE figure.

The study looked at the distances of its true positives and re-tuned the
threshold as their mean + 2σ (sample σ, rounded to 4 decimals: :func:`study_retuning`,
with the false positives' mean and σ and the overlap check it printed).
:func:`mean_plus_k_sigma` computes our variant (population σ);
:func:`what_changes` says which decisions it would flip and the confusion it
would give; :func:`threshold_sweep` gives the full picture over many
thresholds. A detection is decided positive when ``distance <= threshold``
(as :func:`crowdkit.engine.faces.find` does).

Example::

    result = validate(table, ann, "George_W_Bush")
    tp = result.outcomes.query("outcome == 'TP'").distance
    new = mean_plus_k_sigma(tp, k=2)
    change = what_changes(result.outcomes, old=0.65, new=new)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from crowdkit.common.metrics import Confusion, UndefinedMetricWarning


def mean_plus_k_sigma(distances: Sequence[float], *, k: float = 2.0, ddof: int = 0) -> float:
    """``mean(distances) + k · std(distances)`` (population σ unless ``ddof=1``); NaN values are dropped.

    Our variant, unrounded, with the population σ; the study's own computation (sample
    σ, rounded to 4 decimals) is :func:`study_retuning`.

    NaN, with a warning, when there are no distances (no true positives to tune from).
    """
    values = np.asarray(distances, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if values.size <= ddof:
        warnings.warn(f"mean + {k}σ is undefined for {values.size} distance(s): returned NaN",
                      UndefinedMetricWarning, stacklevel=2)
        return math.nan
    return float(values.mean() + k * values.std(ddof=ddof))


@dataclass(frozen=True)
class StudyRetuning:
    """The study's threshold re-tuning, as it computed it, from the true and false positives' distances.

    ``threshold`` is mean + 2 × the *sample* standard deviation (ddof=1) of the true
    positives' distances, rounded to 4 decimals; the means and standard deviations are
    rounded to 4 decimals as the study printed them. ``overlap`` is the check it printed:
    the largest true-positive distance against the smallest false-positive one (True when
    they overlap, so no single threshold separates them). NaN / None where undefined
    (fewer than two true positives for the σ; no false positive for the overlap).
    """

    n_tp: int
    n_fp: int
    tp_mean: float
    tp_std: float
    fp_mean: float
    fp_std: float
    threshold: float
    tp_max: float
    fp_min: float
    overlap: bool | None

    def as_row(self) -> dict[str, float | int | bool | None]:
        return {"study_tp_mean": self.tp_mean, "study_tp_std": self.tp_std, "study_fp_mean": self.fp_mean,
                "study_fp_std": self.fp_std, "study_threshold": self.threshold, "tp_max": self.tp_max,
                "fp_min": self.fp_min, "overlap": self.overlap}


def _sample_stats(values: np.ndarray) -> tuple[float, float]:
    mean = round(float(values.mean()), 4) if values.size else math.nan
    std = round(float(values.std(ddof=1)), 4) if values.size > 1 else math.nan
    return mean, std


def study_retuning(tp_distances: Sequence[float], fp_distances: Sequence[float]) -> StudyRetuning:
    """:class:`StudyRetuning` of the given distances (NaN values dropped)."""
    tp = np.asarray(tp_distances, dtype=float).ravel()
    fp = np.asarray(fp_distances, dtype=float).ravel()
    tp, fp = tp[~np.isnan(tp)], fp[~np.isnan(fp)]
    tp_mean, tp_std = _sample_stats(tp)
    fp_mean, fp_std = _sample_stats(fp)
    tp_max = float(tp.max()) if tp.size else math.nan
    fp_min = float(fp.min()) if fp.size else math.nan
    return StudyRetuning(
        n_tp=int(tp.size), n_fp=int(fp.size), tp_mean=tp_mean, tp_std=tp_std, fp_mean=fp_mean, fp_std=fp_std,
        threshold=round(tp_mean + 2 * tp_std, 4) if tp.size > 1 else math.nan, tp_max=tp_max, fp_min=fp_min,
        overlap=bool(tp_max >= fp_min) if tp.size and fp.size else None)


def _confusions(labels: np.ndarray, distances: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(T, 4) counts tp, fp, tn, fn for ``distance <= threshold`` at each threshold."""
    pos = np.sort(distances[labels])
    neg = np.sort(distances[~labels])
    tp = np.searchsorted(pos, thresholds, side="right")
    fp = np.searchsorted(neg, thresholds, side="right")
    return np.stack([tp, fp, neg.size - fp, pos.size - tp], axis=1)


def threshold_sweep(labels: Sequence[bool], distances: Sequence[float],
                    thresholds: Sequence[float] | None = None) -> pd.DataFrame:
    """Confusion counts and rates at each threshold.

    Parameters
    ----------
    labels : (N,) bool, true when the face is the subject
    distances : (N,) float
    thresholds : (T,) thresholds; default: every distinct distance plus one below the smallest

    Returns
    -------
    DataFrame, one row per threshold: ``threshold, TP, FP, TN, FN, precision,
    recall, f1, accuracy, specificity, fpr`` (NaN where undefined).
    """
    labels = np.asarray(labels, dtype=bool).ravel()
    distances = np.asarray(distances, dtype=float).ravel()
    if labels.shape != distances.shape:
        raise ValueError(f"labels and distances differ in length: {labels.size} vs {distances.size}")
    if thresholds is None:
        unique = np.unique(distances[~np.isnan(distances)])
        thresholds = np.r_[unique[0] - 1e-6, unique] if unique.size else np.array([])
    thresholds = np.asarray(thresholds, dtype=float).ravel()
    counts = _confusions(labels, distances, thresholds)
    rows = []
    for threshold, (tp, fp, tn, fn) in zip(thresholds, counts):
        row = Confusion(int(tp), int(fp), int(tn), int(fn)).as_row()
        rows.append({"threshold": float(threshold), "TP": row["TP"], "FP": row["FP"], "TN": row["TN"],
                     "FN": row["FN"], "precision": row["precision"], "recall": row["recall"], "f1": row["f1"],
                     "accuracy": row["accuracy"], "specificity": row["specificity"],
                     "fpr": 1 - row["specificity"]})
    columns = ["threshold", "TP", "FP", "TN", "FN", "precision", "recall", "f1", "accuracy", "specificity", "fpr"]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class ThresholdChange:
    """What moving the threshold from ``old`` to ``new`` does to a run's decisions."""

    old: float
    new: float
    before: Confusion
    after: Confusion
    to_positive: int  # decisions that flip from negative to positive
    to_negative: int  # decisions that flip from positive to negative

    @property
    def flipped(self) -> int:
        return self.to_positive + self.to_negative

    def as_table(self) -> pd.DataFrame:
        """Two rows (old, new) in the study's table layout."""
        return pd.DataFrame([{"threshold": self.old, **self.before.as_row()},
                             {"threshold": self.new, **self.after.as_row()}], index=["old", "new"])


def subject_labels(outcomes: pd.DataFrame) -> np.ndarray:
    """Ground truth of each validated detection: True where the outcome is TP or FN."""
    return outcomes["outcome"].isin(["TP", "FN"]).to_numpy()


def what_changes(outcomes: pd.DataFrame, old: float, new: float) -> ThresholdChange:
    """Re-decide validated detections at threshold ``new`` instead of ``old``.

    ``outcomes`` is :attr:`crowdkit.crowd.validate.ValidationResult.outcomes` (needs
    ``distance`` and ``outcome``); ground truth comes from the outcome (TP/FN:
    the subject). Decisions are ``distance <= threshold`` at both thresholds.
    """
    labels = subject_labels(outcomes)
    distances = outcomes["distance"].to_numpy(dtype=float)
    before = distances <= old
    after = distances <= new
    return ThresholdChange(
        old=float(old), new=float(new),
        before=Confusion.from_labels(labels, before), after=Confusion.from_labels(labels, after),
        to_positive=int(np.sum(after & ~before)), to_negative=int(np.sum(before & ~after)))


def plot_distance_kde(tp_distances: Sequence[float], fp_distances: Sequence[float], *,
                      thresholds: Mapping[str, float] | None = None, ax=None, bw_adjust: float = 1.0):
    """KDE of true-positive vs false-positive distances with threshold lines (seaborn.kdeplot).

    A class with fewer than two distinct values cannot have a density: its
    values are drawn as a rug and a note says so (an empty class draws
    nothing). ``thresholds`` maps a legend name (e.g. ``"default 0.65"``,
    ``"mean + 2σ"``) to a distance. Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    notes = []
    palette = {"true positives": "tab:green", "false positives": "tab:red"}
    for name, values in (("true positives", tp_distances), ("false positives", fp_distances)):
        values = np.asarray(values, dtype=float).ravel()
        values = values[~np.isnan(values)]
        label = f"{name} (n={values.size})"
        if np.unique(values).size >= 2:
            sns.kdeplot(x=values, ax=ax, fill=True, alpha=0.3, color=palette[name], label=label,
                        bw_adjust=bw_adjust, warn_singular=False)
        elif values.size:
            sns.rugplot(x=values, ax=ax, color=palette[name], height=0.1, label=label)
            notes.append(f"{name}: {values.size} value(s), too few for a density")
        else:
            notes.append(f"{name}: none")
    for (name, value), style in zip((thresholds or {}).items(), ("--", ":", "-.", (0, (5, 1)))):
        if value is not None and np.isfinite(value):
            ax.axvline(value, color="black", linestyle=style, linewidth=1, label=f"{name} = {value:.3f}")
    if notes:
        ax.text(0.02, 0.97, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=8)
    ax.set_xlabel("distance to the query photo")
    ax.set_ylabel("density")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
    return ax
