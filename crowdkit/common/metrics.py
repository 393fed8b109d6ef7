"""Confusion counts and the rates derived from them; ROC, precision–recall and equal-error points.

A rate whose denominator is zero is *undefined*: it is NaN here, never 0, and
a :class:`UndefinedMetricWarning` says which one (scikit-learn's semantics with
``zero_division=np.nan``). Tables then show it as undefined.

Distances become scores as ``-distance`` (a smaller distance means "more
likely the same person"), so every curve function accepts either ``scores=``
or ``distances=``; thresholds are reported back in the unit given.

Example::

    counts = Confusion(tp=12, fp=3, tn=400, fn=9)
    counts.precision, counts.recall, counts.as_row()
    roc = roc_points(labels, distances=d)      # columns fpr, tpr, threshold
    eer = equal_error_rate(labels, d)          # EqualErrorRate(rate, threshold)
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

#: Outcome labels, in table order.
OUTCOMES = ("TP", "FP", "TN", "FN")


class UndefinedMetricWarning(UserWarning):
    """A rate was asked for whose denominator is zero; it is NaN."""


def _ratio(numerator: float, denominator: float, name: str) -> float:
    if denominator == 0:
        warnings.warn(f"{name} is undefined (0/0): returned NaN", UndefinedMetricWarning, stacklevel=3)
        return math.nan
    return numerator / denominator


@dataclass(frozen=True)
class Confusion:
    """Counts of true/false positives/negatives.

    ``positives``/``negatives`` are the *actual* classes (TP + FN, TN + FP);
    ``predicted_positives``/``predicted_negatives`` are the decisions.
    """

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __post_init__(self) -> None:
        for name in ("tp", "fp", "tn", "fn"):
            value = getattr(self, name)
            if value < 0 or int(value) != value:
                raise ValueError(f"Confusion.{name} must be a non-negative integer, got {value!r}")
            object.__setattr__(self, name, int(value))

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[str]) -> "Confusion":
        """Count labels ``"TP"``, ``"FP"``, ``"TN"``, ``"FN"`` (anything else is an error)."""
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome in outcomes:
            if outcome not in counts:
                raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
            counts[outcome] += 1
        return cls(tp=counts["TP"], fp=counts["FP"], tn=counts["TN"], fn=counts["FN"])

    @classmethod
    def from_labels(cls, y_true: Sequence[bool], y_pred: Sequence[bool]) -> "Confusion":
        """From ground truth and decisions, both boolean arrays of shape (N,)."""
        y_true = np.asarray(y_true, dtype=bool)
        y_pred = np.asarray(y_pred, dtype=bool)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
        return cls(tp=int(np.sum(y_true & y_pred)), fp=int(np.sum(~y_true & y_pred)),
                   tn=int(np.sum(~y_true & ~y_pred)), fn=int(np.sum(y_true & ~y_pred)))

    def __add__(self, other: "Confusion") -> "Confusion":
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn)

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def negatives(self) -> int:
        return self.tn + self.fp

    @property
    def predicted_positives(self) -> int:
        return self.tp + self.fp

    @property
    def predicted_negatives(self) -> int:
        return self.tn + self.fn

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp, "precision")

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn, "recall")

    @property
    def specificity(self) -> float:
        return _ratio(self.tn, self.tn + self.fp, "specificity")

    @property
    def f1(self) -> float:
        """2·TP / (2·TP + FP + FN): defined whenever there is any positive, actual or predicted."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, "F1")

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.total, "accuracy")

    def as_row(self) -> dict[str, float]:
        """One table row in the study's layout (NaN where undefined; no warnings)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            return {
                "positives": self.positives, "negatives": self.negatives,
                "predicted_positives": self.predicted_positives, "predicted_negatives": self.predicted_negatives,
                "TP": self.tp, "FP": self.fp, "TN": self.tn, "FN": self.fn,
                "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "accuracy": self.accuracy, "specificity": self.specificity,
            }


def format_rate(value: float, digits: int = 3) -> str:
    """A rate for a table: ``"undefined"`` for NaN, never ``0``."""
    return "undefined" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


# --------------------------------------------------------------------------- curves


def _scores(labels, scores, distances) -> tuple[np.ndarray, np.ndarray, float]:
    if (scores is None) == (distances is None):
        raise ValueError("give exactly one of scores= or distances=")
    labels = np.asarray(labels, dtype=bool).ravel()
    values = np.asarray(scores if scores is not None else distances, dtype=float).ravel()
    if labels.shape != values.shape:
        raise ValueError(f"labels and scores differ in length: {labels.size} vs {values.size}")
    sign = 1.0 if scores is not None else -1.0
    return labels, sign * values, sign


def _one_class(labels: np.ndarray, what: str) -> bool:
    if labels.size == 0 or labels.all() or not labels.any():
        warnings.warn(f"{what} is undefined: labels hold {int(labels.sum())} positives and "
                      f"{int((~labels).sum())} negatives; both are needed", UndefinedMetricWarning, stacklevel=3)
        return True
    return False


def roc_points(labels: Sequence[bool], scores: Sequence[float] | None = None, *,
               distances: Sequence[float] | None = None) -> pd.DataFrame:
    """ROC curve (sklearn.metrics.roc_curve): columns ``fpr, tpr, threshold``.

    ``labels`` (N,) bool: same person. ``scores`` (N,) higher = more alike, or
    ``distances`` (N,) lower = more alike; ``threshold`` is in the same unit
    (a row means "decide positive when score ≥ threshold", or "distance ≤
    threshold"). ``df.attrs["auc"]`` holds the area. Empty (with a warning)
    when one class is missing.
    """
    from sklearn.metrics import auc, roc_curve

    labels, values, sign = _scores(labels, scores, distances)
    if _one_class(labels, "the ROC curve"):
        frame = pd.DataFrame({"fpr": [], "tpr": [], "threshold": []})
        frame.attrs["auc"] = math.nan
        return frame
    fpr, tpr, thresholds = roc_curve(labels, values, drop_intermediate=False)
    frame = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": sign * thresholds})
    frame.attrs["auc"] = float(auc(fpr, tpr))
    return frame


def pr_points(labels: Sequence[bool], scores: Sequence[float] | None = None, *,
              distances: Sequence[float] | None = None) -> pd.DataFrame:
    """Precision–recall curve (sklearn.metrics.precision_recall_curve): ``precision, recall, threshold``.

    The last point (recall 0, precision 1) has no threshold (NaN), as in
    scikit-learn. ``df.attrs["average_precision"]`` holds AP.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve

    labels, values, sign = _scores(labels, scores, distances)
    if _one_class(labels, "the precision-recall curve"):
        frame = pd.DataFrame({"precision": [], "recall": [], "threshold": []})
        frame.attrs["average_precision"] = math.nan
        return frame
    precision, recall, thresholds = precision_recall_curve(labels, values)
    frame = pd.DataFrame({"precision": precision, "recall": recall,
                          "threshold": np.append(sign * thresholds, np.nan)})
    frame.attrs["average_precision"] = float(average_precision_score(labels, values))
    return frame


@dataclass(frozen=True)
class EqualErrorRate:
    """Where false-positive rate equals false-negative rate; ``threshold`` in the caller's unit."""

    rate: float
    threshold: float


def equal_error_rate(labels: Sequence[bool], distances: Sequence[float]) -> EqualErrorRate:
    """The equal-error point of distance decisions (``distance ≤ threshold`` → same person).

    Interpolated linearly between the two ROC points where FPR − FNR changes
    sign. NaN (with a warning) when one class is missing.
    """
    roc = roc_points(labels, distances=distances)
    if roc.empty:
        return EqualErrorRate(math.nan, math.nan)
    fpr, fnr = roc["fpr"].to_numpy(), 1.0 - roc["tpr"].to_numpy()
    thresholds = roc["threshold"].to_numpy()
    diff = fpr - fnr  # rises from -1 (nothing accepted) to +1 (everything accepted)
    i = int(np.argmax(diff >= 0))
    if i == 0 or diff[i] == 0:
        finite = thresholds[i] if np.isfinite(thresholds[i]) else thresholds[min(i + 1, len(thresholds) - 1)]
        return EqualErrorRate(float((fpr[i] + fnr[i]) / 2), float(finite))
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    rate = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    low, high = thresholds[i - 1], thresholds[i]
    threshold = high if not np.isfinite(low) else low + t * (high - low)
    return EqualErrorRate(float(rate), float(threshold))


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float


def bootstrap_ci(values, statistic: Callable = np.mean, *, n: int = 1000, seed: int = 0,
                 level: float = 0.95) -> Interval:
    """Percentile bootstrap interval of ``statistic(values)``.

    ``values`` is an array (resampled along axis 0) or a DataFrame (rows
    resampled); ``statistic`` maps a resample to a number, e.g.
    ``lambda t: Confusion.from_outcomes(t.outcome).precision``. Resamples
    where the statistic is undefined (NaN) are left out of the interval.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    is_frame = isinstance(values, pd.DataFrame)
    data = values if is_frame else np.asarray(values)
    size = len(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        estimate = float(statistic(data)) if size else math.nan
        if size == 0:
            return Interval(math.nan, math.nan, math.nan, level)
        samples = np.empty(n)
        for i in range(n):
            index = rng.integers(0, size, size)
            samples[i] = statistic(data.iloc[index] if is_frame else data[index])
    low, high = percentile_interval(samples, level=level)
    return Interval(estimate, low, high, level)


def percentile_interval(samples, *, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``samples`` (1-D), NaN samples left out.

    ``(NaN, NaN)`` when no sample is defined.

    Examples
    --------
    >>> percentile_interval([0.0, 1.0, 2.0, 3.0, 4.0, np.nan], level=0.5)
    (1.0, 3.0)
    """
    samples = np.asarray(samples, dtype=float).ravel()
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def cluster_resample_weights(n_clusters: int, *, n: int = 1000, seed: int = 0) -> np.ndarray:
    """How often each of ``n_clusters`` clusters is drawn in each of ``n`` resamples with replacement.

    Returns an (n, n_clusters) int64 array whose rows each sum to ``n_clusters``.
    Multiply it with per-cluster count vectors to get the resampled totals
    (:func:`cluster_bootstrap_counts`).
    """
    rng = np.random.default_rng(seed)
    weights = np.zeros((n, n_clusters), dtype=np.int64)
    if n_clusters:
        draws = rng.integers(0, n_clusters, size=(n, n_clusters))
        np.add.at(weights, (np.arange(n)[:, None], draws), 1)
    return weights


def cluster_bootstrap_counts(cluster_counts, *, n: int = 1000, seed: int = 0) -> np.ndarray:
    """Totals of per-cluster counts over ``n`` cluster-bootstrap resamples (a cluster bootstrap).

    Clusters (e.g. the linked tracks of a video, whose faces are not independent
    draws) are resampled with replacement and their count vectors summed, so
    every resample keeps each cluster's faces together.

    Parameters
    ----------
    cluster_counts : (C, K) counts of each cluster (e.g. TP, FP, TN, FN of one track)
    n, seed : number of resamples and the seed of their draws

    Returns
    -------
    ndarray (n, K) float: the totals of each resample (all zero when there is no cluster).

    Examples
    --------
    >>> cluster_bootstrap_counts([[1, 0], [0, 3]], n=4, seed=0).sum(axis=1).shape
    (4,)
    """
    counts = np.asarray(cluster_counts, dtype=float)
    if counts.ndim != 2:
        raise ValueError(f"cluster_counts must be 2-D (clusters, counts), got shape {counts.shape}")
    return cluster_resample_weights(len(counts), n=n, seed=seed) @ counts


def rate_array(numerator, denominator) -> np.ndarray:
    """``numerator / denominator`` element-wise, NaN where the denominator is zero (no warning)."""
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


#: Fewest faces in a rate's denominator for its interval to be shown as numbers.
MIN_SUPPORT = 5


def format_interval(estimate: float, low: float, high: float, *, support: float | None = None,
                    min_support: int = MIN_SUPPORT, digits: int = 3) -> str:
    """A rate with its interval for a table: ``"0.750 [0.520, 0.910]"``.

    ``"undefined"`` when the estimate is NaN (as :func:`format_rate`); the estimate
    with ``[too few]`` when ``support`` (the faces in the rate's denominator) is
    below ``min_support``, or when no resample gave the rate a value.

    Examples
    --------
    >>> format_interval(0.75, 0.52, 0.91)
    '0.750 [0.520, 0.910]'
    >>> format_interval(1.0, 1.0, 1.0, support=3)
    '1.000 [too few]'
    """
    shown = format_rate(estimate, digits)
    if shown == "undefined":
        return shown
    if (support is not None and support < min_support) or not (np.isfinite(low) and np.isfinite(high)):
        return f"{shown} [too few]"
    return f"{shown} [{low:.{digits}f}, {high:.{digits}f}]"


# --------------------------------------------------------------------------- tables


def performance_table(confusions: Mapping[str, Confusion], *, display: bool = False, digits: int = 3) -> pd.DataFrame:
    """One row per named confusion in the study's layout (see :meth:`Confusion.as_row`).

    With ``display=True`` rates become strings and an undefined rate reads
    ``"undefined"`` (never 0), ready for a book table.
    """
    table = pd.DataFrame([{"name": name, **c.as_row()} for name, c in confusions.items()])
    if table.empty:
        return table
    table = table.set_index("name")
    if display:
        for column in RATE_COLUMNS:
            table[column] = table[column].map(lambda v: format_rate(v, digits))
    return table


#: Rate columns of :meth:`Confusion.as_row`.
RATE_COLUMNS = ("precision", "recall", "f1", "accuracy", "specificity")


def best_accuracy_threshold(distances: Sequence[float], same: Sequence[bool]) -> tuple[float, float]:
    """The threshold that maximises the accuracy of deciding "same" when ``distance <= threshold``.

    Every cut between two distinct sorted distances is tried (midpoints), plus one
    below the smallest and one above the largest distance; on a tie the smallest
    threshold wins.

    Parameters
    ----------
    distances : (N,) float
    same : (N,) bool, true for a pair of one person

    Returns
    -------
    (threshold, accuracy) : accuracy in [0, 1]; (NaN, NaN) for no pairs.

    Examples
    --------
    >>> best_accuracy_threshold([0.1, 0.2, 0.8, 0.9], [True, True, False, False])
    (0.5, 1.0)
    """
    values = np.asarray(distances, dtype=np.float64).ravel()
    truth = np.asarray(same, dtype=bool).ravel()
    if values.shape != truth.shape:
        raise ValueError(f"distances and same differ in length: {values.size} vs {truth.size}")
    if values.size == 0:
        return math.nan, math.nan
    order = np.argsort(values, kind="stable")
    values, truth = values[order], truth[order]
    accepted_same = np.r_[0, np.cumsum(truth)]  # same pairs among the first k accepted, k = 0..N
    accepted_other = np.arange(values.size + 1) - accepted_same
    correct = accepted_same + (values.size - truth.sum() - accepted_other)
    cut_allowed = np.r_[True, values[1:] > values[:-1], True]
    k = int(np.argmax(np.where(cut_allowed, correct, -1)))
    if k == 0:
        threshold = values[0] - 1e-6
    elif k == values.size:
        threshold = values[-1] + 1e-6
    else:
        threshold = (values[k - 1] + values[k]) / 2
    return float(threshold), float(correct[k] / values.size)
