"""95 % intervals for a crowd run's rates: a cluster bootstrap over the linked tracks.

A run's precision or recall often rests on a handful of subject faces, and the
faces of one track are not independent draws: the same person, a few frames
apart, is recognised (or not) for the same reasons. So the intervals here
resample *tracks* (:func:`crowdkit.crowd.track.link_detections`) with
replacement, recount the confusion from the resampled tracks' faces and
recompute each rate; the 2.5 and 97.5 percentiles over :data:`RESAMPLES`
resamples (seeded with the run's seed) are the interval. Annotated subject
faces no detection matched (``missed``) are linked into tracks of their own the
same way; the detection rate resamples the annotated people instead.

A rate whose denominator counts fewer than
:data:`~crowdkit.common.metrics.MIN_SUPPORT` faces shows its interval as
"too few", and so does one resting on a single track (resampling one track gives its
own faces back every time: a point, not an interval); an undefined rate stays undefined::

    faces = face_clusters(subject, decision, tracks, missed_tracks)    # (C, 5) TP, FP, TN, FN, missed
    people = people_clusters(outcomes, annotations, searched)          # (P, 2) annotated, matched
    rate_intervals(faces, people, seed=0)["f1"]                        # (low, high)
    interval_text(performance, "f1")                                   # "0.750 [0.520, 0.910]"
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdkit.common.metrics import (cluster_bootstrap_counts, cluster_resample_weights, format_interval, format_rate,
                                     percentile_interval, rate_array)

if TYPE_CHECKING:  # pragma: no cover
    from crowdkit.crowd.annotations import Annotations

#: Resamples per interval, and the interval's level.
RESAMPLES = 1000
LEVEL = 0.95
#: The counts each face cluster holds, in order.
FACE_COUNTS = ("TP", "FP", "TN", "FN", "missed")
#: The faces each rate's denominator counts, as columns of the performance table.
SUPPORT = {"precision": ("TP", "FP"), "recall": ("TP", "FN"), "f1": ("TP", "FP", "FN"),
           "accuracy": ("TP", "FP", "TN", "FN"), "specificity": ("TN", "FP"), "strict_recall": ("TP", "FN", "missed"),
           "strict_f1": ("TP", "FP", "FN", "missed"), "detection_rate": ("faces_annotated",)}
#: Rates that get an interval (columns ``<rate>_low``, ``<rate>_high`` of the performance table).
INTERVAL_RATES = tuple(SUPPORT)


def _label_index(subject: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """Per detection the column of :data:`FACE_COUNTS` it counts in (0 TP, 1 FP, 2 TN, 3 FN)."""
    return np.where(decision, np.where(subject, 0, 1), np.where(subject, 3, 2))


def face_clusters(subject: Sequence[bool], decision: Sequence[bool], tracks: Sequence[int],
                  missed_tracks: Sequence[int] = ()) -> np.ndarray:
    """Counts per cluster: one row per detection track, then one per track of missed subject faces.

    Parameters
    ----------
    subject, decision, tracks : (N,) per detection: is it the subject, was it declared so, its linked track
    missed_tracks : (M,) the linked track of each missed subject face

    Returns
    -------
    ndarray (C, 5) int64, columns :data:`FACE_COUNTS`.
    """
    subject, decision = np.asarray(subject, dtype=bool), np.asarray(decision, dtype=bool)
    ids, inverse = np.unique(np.asarray(tracks, dtype=np.int64), return_inverse=True)
    detected = np.zeros((ids.size, len(FACE_COUNTS)), dtype=np.int64)
    np.add.at(detected, (inverse.ravel(), _label_index(subject, decision)), 1)
    missed_ids, missed_size = np.unique(np.asarray(missed_tracks, dtype=np.int64), return_counts=True)
    missed = np.zeros((missed_ids.size, len(FACE_COUNTS)), dtype=np.int64)
    missed[:, FACE_COUNTS.index("missed")] = missed_size
    return np.vstack([detected, missed])


def missed_tracks(missed: pd.DataFrame, *, max_gap: int) -> np.ndarray:
    """The missed subject faces (``frame, x1, y1, x2, y2``) linked into tracks as detections are."""
    from crowdkit.crowd.track import link_detections

    return link_detections(missed, max_gap=max_gap) if len(missed) else np.zeros(0, dtype=np.int64)


def people_clusters(outcomes: pd.DataFrame, annotations: "Annotations", searched: Sequence[int]) -> np.ndarray:
    """Per annotated person: faces in view in the searched frames, and how many a detection matched.

    ``outcomes`` is a validation's outcome table (its ``frame, track`` columns name the
    annotated box each detection matched). Returns (P, 2) int64.
    """
    from crowdkit.crowd.annotations import visible_boxes

    in_view = pd.Series([track.id for boxes in visible_boxes(annotations, frames=searched).values()
                         for track, _ in boxes], dtype="int64").value_counts()
    matched = outcomes[["frame", "track"]].dropna().drop_duplicates()["track"].astype("int64").value_counts()
    people = in_view.index.union(matched.index)
    return np.stack([in_view.reindex(people, fill_value=0).to_numpy(),
                     matched.reindex(people, fill_value=0).to_numpy()], axis=1).astype(np.int64).reshape(-1, 2)


#: Fewest tracks (or people) behind a rate for its interval to be shown; fewer show "too few".
MIN_CLUSTERS = 2


def face_rates(totals: np.ndarray) -> dict[str, np.ndarray]:
    """The rates of (…, 5) totals in :data:`FACE_COUNTS` order, NaN where undefined (as :class:`Confusion`)."""
    tp, fp, tn, fn, missed = np.moveaxis(np.asarray(totals, dtype=float), -1, 0)
    return {"precision": rate_array(tp, tp + fp), "recall": rate_array(tp, tp + fn),
            "f1": rate_array(2 * tp, 2 * tp + fp + fn), "accuracy": rate_array(tp + tn, tp + fp + tn + fn),
            "specificity": rate_array(tn, tn + fp), "strict_recall": rate_array(tp, tp + fn + missed),
            "strict_f1": rate_array(2 * tp, 2 * tp + fp + fn + missed)}


def rate_intervals(faces: np.ndarray, people: np.ndarray, *, seed: int, n: int = RESAMPLES,
                   level: float = LEVEL) -> dict[str, tuple[float, float]]:
    """Rate → (low, high) of every rate in :data:`INTERVAL_RATES` (see the module docstring)."""
    samples = face_rates(cluster_bootstrap_counts(faces, n=n, seed=seed))
    annotated, matched = cluster_bootstrap_counts(people, n=n, seed=seed).T
    samples["detection_rate"] = rate_array(matched, annotated)
    # Resampling one track gives back the same faces every time: a point, not an interval.
    clusters = {rate: int(np.isfinite(values).sum()) for rate, values in face_rates(faces).items()}
    clusters["detection_rate"] = int((np.asarray(people)[:, 0] > 0).sum()) if len(people) else 0
    return {rate: percentile_interval(samples[rate], level=level) if clusters.get(rate, 0) >= MIN_CLUSTERS
            else (np.nan, np.nan) for rate in INTERVAL_RATES}


def interval_columns(intervals: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """``<rate>_low``, ``<rate>_high`` for every rate in :data:`INTERVAL_RATES` (NaN where not given)."""
    columns = {}
    for rate in INTERVAL_RATES:
        low, high = intervals.get(rate, (np.nan, np.nan))
        columns[f"{rate}_low"], columns[f"{rate}_high"] = low, high
    return columns


def rate_support(table: pd.DataFrame, rate: str) -> pd.Series | None:
    """Faces in the denominator of ``rate`` per row of ``table``; None when the table lacks their counts."""
    columns = list(SUPPORT.get(rate, ()))
    if not columns or any(c not in table for c in columns):
        return None
    return table[columns].sum(axis=1)


def interval_text(table: pd.DataFrame, rate: str, *, digits: int = 3) -> pd.Series:
    """``table[rate]`` as text with its interval (:func:`~crowdkit.common.metrics.format_interval`).

    Without the ``<rate>_low``/``<rate>_high`` columns (a run saved before intervals
    existed) the rate alone, as :func:`~crowdkit.common.metrics.format_rate` shows it.
    """
    if f"{rate}_low" not in table:
        return table[rate].map(lambda value: format_rate(value, digits))
    support = rate_support(table, rate)
    supports = support.to_numpy() if support is not None else [None] * len(table)
    return pd.Series([format_interval(e, lo, hi, support=s, digits=digits) for e, lo, hi, s in zip(
        table[rate], table[f"{rate}_low"], table[f"{rate}_high"], supports)], index=table.index, dtype=object)


# --------------------------------------------------------------------------- threshold sweeps


def _per_cluster(values: np.ndarray, inverse: np.ndarray, n_clusters: int) -> np.ndarray:
    """Sum the rows of ``values`` (N, …) per cluster: (C, …)."""
    out = np.zeros((n_clusters, *values.shape[1:]))
    np.add.at(out, inverse, values)
    return out


def _sweep_rates(draws: np.ndarray, per_track: np.ndarray, classes: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and FPR (R, T) of ``draws`` (R, C) times per-track counts at each threshold."""
    tp, fp = np.moveaxis(np.tensordot(draws, per_track, axes=1), -1, 0)
    positives, negatives = (draws @ classes).T[:, :, None]
    return {"precision": rate_array(tp, tp + fp), "recall": rate_array(tp, positives),
            "f1": rate_array(2 * tp, tp + fp + positives), "fpr": rate_array(fp, negatives)}


def sweep_band(labels: Sequence[bool], distances: Sequence[float], tracks: Sequence[int], *, seed: int,
               n: int = RESAMPLES, level: float = LEVEL, points: int = 200) -> pd.DataFrame:
    """Precision, recall, F1 and false-positive rate at each threshold with their cluster-bootstrap band.

    Parameters
    ----------
    labels, distances, tracks : (N,) per detection: is it the subject, its distance, its linked track
    points : at most this many thresholds (quantiles of the distances, plus one below the smallest)

    Returns
    -------
    DataFrame, one row per threshold: ``threshold``, then per rate (``precision, recall, f1, fpr``)
    the estimate and ``<rate>_low``, ``<rate>_high`` (NaN where no resample defines it); empty
    without distances.
    """
    labels = np.asarray(labels, dtype=bool).ravel()
    distances = np.asarray(distances, dtype=float).ravel()
    unique = np.unique(distances[~np.isnan(distances)])
    if not unique.size:
        return pd.DataFrame(columns=["threshold"])
    grid = unique if unique.size <= points else np.quantile(unique, np.linspace(0, 1, points))
    thresholds = np.r_[unique[0] - 1e-6, grid]
    ids, inverse = np.unique(np.asarray(tracks), return_inverse=True)
    accepted = distances[:, None] <= thresholds[None, :]
    per_track = np.stack([_per_cluster(accepted & labels[:, None], inverse, ids.size),
                          _per_cluster(accepted & ~labels[:, None], inverse, ids.size)], axis=-1)  # (C, T, 2)
    classes = _per_cluster(np.stack([labels, ~labels], axis=1).astype(float), inverse, ids.size)  # (C, 2)
    estimate = _sweep_rates(np.ones((1, ids.size)), per_track, classes)
    samples = _sweep_rates(cluster_resample_weights(ids.size, n=n, seed=seed).astype(float), per_track, classes)
    tail = (1 - level) / 2 * 100
    band = {"threshold": thresholds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a threshold where no resample defines the rate
        for rate, values in samples.items():
            low, high = np.nanpercentile(values, [tail, 100 - tail], axis=0)
            band.update({rate: estimate[rate][0], f"{rate}_low": low, f"{rate}_high": high})
    return pd.DataFrame(band)
