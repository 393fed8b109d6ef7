"""A run beside the study's own table: the same layout, the study's definitions, and the example distances.

The report's performance tables count differently from :class:`~crowdkit.crowd.results.PerformanceRow`:
its *total positives* are the faces it *declared* the member (TP + FP), its *total
negatives* the others (TN + FN); precision, and so F1, is undefined ("-") when it declared
nobody; rates are percentages. :func:`study_table` lays a run out that way (study's 20-px
rule, per frame) beside the printed table of the same member × challenge
(:func:`crowdkit.crowd.reported.load_crowd_tables`), once at the threshold the study's rule
gives our model and once at the threshold the run decided with; the rows that are ours
alone (actual positives, missed faces, strict recall, detection rate) follow, labelled.
:func:`example_distances` puts the study's example cosine values beside ours::

    study_table(result)           # rows: total positives ... accuracy, then ours
    example_distances(result)     # outcome × index: the study's value, ours, each ÷ its threshold
    study_intervals(result)       # our rates at the study's rule with their 95 % interval and sample sizes
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from crowdkit.common.metrics import Confusion, cluster_bootstrap_counts, format_interval, percentile_interval, rate_array
from crowdkit.crowd.params import STUDY_THRESHOLD
from crowdkit.crowd.reported import MEMBERS, OUTCOMES, load_crowd_examples, load_crowd_tables, study_rates
from crowdkit.crowd.results import CrowdRunResult

#: Rows of the study's table, as the page names them, with the column each comes from.
STUDY_ROWS = {"total positives": "total_positives", "total negatives": "total_negatives", "TP": "TP", "FP": "FP",
              "TN": "TN", "FN": "FN", "precision": "precision", "recall": "recall", "F1": "f1", "accuracy": "accuracy"}
#: Rows that are ours alone (the study has no such figure).
OUR_ROWS = ("actual positives (TP + FN), ours", "missed faces, ours", "strict recall, ours", "detection rate, ours")
#: The study's validation rule and level, the only ones its tables know.
RULE, LEVEL = "study", "frame"
#: The study's rates (as its table names them) with the counts in each one's denominator.
STUDY_SUPPORT = {"precision": ("TP", "FP"), "recall": ("TP", "FN"), "F1": ("TP", "FP", "FN"),
                 "accuracy": ("TP", "FP", "TN", "FN")}


def percent(value: float | None) -> str:
    """A rate in percent the study's way: three decimals, ``"-"`` where undefined."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def study_column(counts: Confusion) -> dict[str, str]:
    """``counts`` as the study's table: totals of the *predicted* classes, rates in percent."""
    rates = study_rates(counts.tp, counts.fp, counts.tn, counts.fn)
    values = {"total_positives": counts.tp + counts.fp, "total_negatives": counts.tn + counts.fn,
              "TP": counts.tp, "FP": counts.fp, "TN": counts.tn, "FN": counts.fn}
    return {label: str(values[key]) if key in values else percent(rates[key]) for label, key in STUDY_ROWS.items()}


def reported_row(member: str, challenge: str) -> pd.Series | None:
    """The printed table of ``member`` × ``challenge`` (one row of :func:`load_crowd_tables`), or None."""
    if member not in MEMBERS:
        return None
    tables = load_crowd_tables(members=[member], challenges=[challenge])
    return tables.iloc[0] if len(tables) else None


def _reported_column(row: pd.Series) -> dict[str, str]:
    return {label: str(int(row[key])) if key not in ("precision", "recall", "f1", "accuracy")
            else (row[f"{key}_printed"] or "-") for label, key in STUDY_ROWS.items()}


def counts_at(result: CrowdRunResult, threshold: float) -> Confusion:
    """The study rule's per-frame counts if the run had decided at ``threshold``."""
    from crowdkit.crowd.threshold import subject_labels

    outcomes = result.validations[RULE].outcomes
    return Confusion.from_labels(subject_labels(outcomes), outcomes["distance"].to_numpy(dtype=float) <= threshold)


def _our_rows(result: CrowdRunResult, counts: Confusion) -> dict[str, str]:
    main = result.main_performance().loc[(RULE, LEVEL)]
    strict = (counts + Confusion(fn=int(main.missed))).as_row()["recall"]
    return {OUR_ROWS[0]: str(counts.tp + counts.fn), OUR_ROWS[1]: str(int(main.missed)),
            OUR_ROWS[2]: percent(100 * strict), OUR_ROWS[3]: percent(100 * main.detection_rate)}


def study_columns(result: CrowdRunResult) -> dict[str, Confusion]:
    """Column name → our counts: at the study's rule's threshold, and at the run's own (when it differs)."""
    model = result.params.model
    columns = {f"ours: {model} ≤ {result.study_threshold:g} (the study's rule)": counts_at(result, result.study_threshold)}
    if not math.isclose(result.threshold, result.study_threshold):
        columns[f"ours: {model} ≤ {result.threshold:.4f} (this run's threshold)"] = counts_at(result, result.threshold)
    return columns


def study_table(result: CrowdRunResult) -> pd.DataFrame:
    """The study's table for this member × challenge beside ours, one column each, study's rule per frame."""
    import warnings

    from crowdkit.common.metrics import UndefinedMetricWarning

    params = result.params
    columns: dict[str, dict[str, str]] = {}
    row = reported_row(params.member, params.challenge)
    if row is not None:
        columns[f"study: Table {int(row.table)}, ArcFace ≤ {STUDY_THRESHOLD}"] = {
            **_reported_column(row), **dict.fromkeys(OUR_ROWS, "")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for name, counts in study_columns(result).items():
            columns[name] = {**study_column(counts), **_our_rows(result, counts)}
    return pd.DataFrame(columns, index=[*STUDY_ROWS, *OUR_ROWS])


def study_table_long(result: CrowdRunResult) -> pd.DataFrame:
    """:func:`study_table` as rows ``member, challenge, figure, source, value`` (saved for the summary)."""
    table = study_table(result).rename_axis("figure").reset_index()
    long = table.melt(id_vars="figure", var_name="source", value_name="value")
    long.insert(0, "challenge", result.params.challenge)
    long.insert(0, "member", result.params.member)
    return long


def example_distances(result: CrowdRunResult) -> pd.DataFrame:
    """The study's example cosine values per outcome beside the distances of our examples of that outcome.

    Each on its own model's scale: the study's are ArcFace cosine distances, decided at 0.65;
    ours are this run's model's distances, decided at its threshold. ``÷ threshold`` puts both
    on one scale (below 1: declared the member).
    """
    params = result.params
    ours = result.examples.get(RULE, pd.DataFrame(columns=["outcome", "distance"]))
    study = (load_crowd_examples(members=[params.member], challenges=[params.challenge])
             if params.member in MEMBERS else pd.DataFrame(columns=["outcome", "index", "value"]))
    rows = []
    for outcome in OUTCOMES:
        theirs = study[study["outcome"] == outcome].sort_values("index")["value"].tolist()
        mine = ours[ours["outcome"] == outcome]["distance"].tolist() if len(ours) else []
        for index in range(max(len(theirs), len(mine))):
            their = theirs[index] if index < len(theirs) else math.nan
            our = mine[index] if index < len(mine) else math.nan
            rows.append({"outcome": outcome, "example": index + 1, "study: ArcFace cosine": their,
                         f"study ÷ {STUDY_THRESHOLD}": their / STUDY_THRESHOLD,
                         f"ours: {params.model} {params.metric}": our, "ours ÷ our threshold": our / result.threshold})
    return pd.DataFrame(rows).set_index(["outcome", "example"]).round(4) if rows else pd.DataFrame()


def study_table_markdown(result: CrowdRunResult) -> str:
    """Who plays the member, which printed table is shown, the thresholds, and a plain word when no TP was found."""
    params, inputs = result.params, result.inputs
    row = reported_row(params.member, params.challenge)
    who = (f"**{params.member}** is played by the LFW identity **{inputs.subject}**."
           if params.member != inputs.subject else f"The person to find is **{inputs.subject}**.")
    table = (f"The first column is the study's Table {int(row.table)} as printed (ArcFace, cosine distance, "
             f"threshold {STUDY_THRESHOLD})." if row is not None
             else f"The study ran no {params.member} × {params.challenge} table; only ours is shown.")
    lines = [who, table, "Every column counts the study's way: total positives = TP + FP (declared the member), "
             "total negatives = TN + FN, rates in percent, precision and F1 \"-\" when nobody was declared the "
             "member. The rows marked *ours* are measures the study does not have."]
    at_rule = counts_at(result, result.study_threshold)
    if at_rule.tp == 0:
        lines.append(f"**At the study's rule ({params.model} ≤ {result.study_threshold:g}) this run finds no true "
                     f"positive**: the {params.model} model's default threshold declares "
                     f"{at_rule.tp + at_rule.fp} face(s) the member, none of them correctly.")
    if result.calibration is not None:
        lines.append(f"This run decides at **{result.threshold:.4f}**: {result.calibration.describe()}; "
                     f"the model's deepface default {result.calibration.default_threshold:g} is the study's rule.")
    return "\n\n".join(lines)


def calibration_table(result: CrowdRunResult) -> Any:
    """The calibration's provenance table (empty when the run did not calibrate)."""
    return result.calibration.to_frame() if result.calibration is not None else pd.DataFrame()


# --------------------------------------------------------------------------- intervals


def _study_percent(totals: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`crowdkit.crowd.reported.study_rates` of (…, 4) totals TP, FP, TN, FN, vectorised (NaN: undefined)."""
    tp, fp, tn, fn = np.moveaxis(np.asarray(totals, dtype=float), -1, 0)
    precision, recall = 100 * rate_array(tp, tp + fp), 100 * rate_array(tp, tp + fn)
    return {"precision": precision, "recall": recall, "F1": rate_array(2 * precision * recall, precision + recall),
            "accuracy": 100 * rate_array(tp + tn, tp + fp + tn + fn)}


def study_intervals(result: CrowdRunResult) -> pd.DataFrame:
    """Our rates at the study's rule (its 20-px rule, per face, percent) with their 95 % interval.

    The interval is the cluster bootstrap over the run's linked tracks
    (:mod:`crowdkit.crowd.intervals`), seeded with the run's seed.

    Returns
    -------
    DataFrame, one row per rate of :data:`STUDY_SUPPORT`: ``member, challenge, figure, ours``
    (the study's definition, as :func:`study_column`), ``low, high``, ``faces`` (in the rate's
    denominator) and ``tracks`` (holding those faces).
    """
    from crowdkit.crowd.intervals import LEVEL, RESAMPLES, face_clusters

    outcomes = result.validations[RULE].outcomes
    counts = counts_at(result, result.study_threshold)
    decision = outcomes["distance"].to_numpy(dtype=float) <= result.study_threshold
    clusters = face_clusters(outcomes["subject"].to_numpy(dtype=bool), decision,
                             outcomes["face_track"].to_numpy(dtype=np.int64))[:, :4]
    samples = _study_percent(cluster_bootstrap_counts(clusters, n=RESAMPLES, seed=result.params.seed))
    estimates = study_rates(counts.tp, counts.fp, counts.tn, counts.fn)
    rows = []
    for figure, columns in STUDY_SUPPORT.items():
        held = clusters[:, [OUTCOMES.index(c) for c in columns]].sum(axis=1)
        low, high = percentile_interval(samples[figure], level=LEVEL)
        estimate = estimates[STUDY_ROWS[figure]]
        rows.append({"member": result.params.member, "challenge": result.params.challenge, "figure": figure,
                     "ours": math.nan if estimate is None else estimate, "low": low, "high": high,
                     "faces": int(held.sum()), "tracks": int((held > 0).sum())})
    return pd.DataFrame(rows)


def study_interval_text(intervals: pd.DataFrame) -> pd.Series:
    """Each row of :func:`study_intervals` as ``"36.364 [20.000, 50.000]"`` (``[too few]`` below 5 faces)."""
    return pd.Series([format_interval(r.ours, r.low, r.high, support=r.faces) for r in intervals.itertuples()],
                     index=intervals.index, dtype=object)


def study_interval_table(result: CrowdRunResult) -> pd.DataFrame:
    """The run page's table of :func:`study_intervals`: one row per rate, the interval as text, the sample sizes."""
    intervals = study_intervals(result)
    column = "ours at the study's rule, % [95 % interval]"
    return intervals.assign(**{column: study_interval_text(intervals)}).set_index("figure")[[column, "faces", "tracks"]]
