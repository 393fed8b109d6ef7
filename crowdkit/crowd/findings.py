"""Part I's findings: the study's claim, ours under its protocol, ours under the corrected one.

The landing page of Part I (the summary notebook) opens with three sentences
and one figure built here from the collected run tables, so every number in
them is computed by the build:

1. the study's claim — F1 as the report printed it, per challenge;
2. our measurement under the study's protocol — its 20-px rule, one decision
   per face, our model at the threshold the study's rule gives it (deepface's
   default);
3. our measurement under the corrected protocol — one-to-one IoU matching,
   subject faces the detector missed counted (strict recall), the threshold
   calibrated on LFW.

Each F1 comes with the number of subject faces it rests on, and ours with its 95 %
interval (a cluster bootstrap over the run's linked tracks, :mod:`crowdkit.crowd.intervals`)
where the run saved one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crowdkit.common.metrics import format_interval, format_rate
from crowdkit.crowd.scene import CHALLENGES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The three measurements, in the order the page states them.
MEASUREMENTS = ("study, as printed", "ours, study's protocol", "ours, corrected protocol")
#: Challenges the report says worked, and those it says did not (its discussion).
EASY = ("normal", "compact", "random")
HARD = ("intruder", "mask1", "mask2")


@dataclass(frozen=True)
class Findings:
    """One row per run and measurement: F1 (percent; NaN where undefined) and the subject faces behind it.

    ``f1_low``, ``f1_high``: our F1's 95 % interval (percent; NaN where the run saved none, and
    for the study's printed figures); ``f1_support``: the faces in that F1's denominator
    (TP + FP + FN, the missed faces too under the corrected protocol; NaN where there is no interval).

    ``printed`` holds every performance table of the report (all 20 runs, F1 as
    printed), so the study's claim is stated over the whole report even when
    this build ran only some of its runs.
    """

    table: pd.DataFrame  # run, member, challenge, measurement, f1, subject_faces, f1_low, f1_high, f1_support
    printed: pd.DataFrame  # member, challenge, f1 and, where transcribed, total_positives (the subject's faces)

    def to_frame(self) -> pd.DataFrame:
        """member × challenge rows, one F1 column per measurement (percent, one decimal)."""
        if self.table.empty:
            return pd.DataFrame()
        wide = self.table.pivot_table(index=["member", "challenge"], columns="measurement", values="f1",
                                      aggfunc="first", sort=False, dropna=False)
        return wide.reindex(columns=[m for m in MEASUREMENTS if m in wide.columns]).round(1)

    def display_frame(self) -> pd.DataFrame:
        """:meth:`to_frame` as text, ours with its interval: ``"36.4 [20.0, 50.1]"`` (``[too few]`` below 5 faces)."""
        if self.table.empty:
            return pd.DataFrame()
        text = [format_rate(r.f1, 1) if np.isnan(r.f1_support)  # the printed figure, or a run saved without one
                else format_interval(r.f1, r.f1_low, r.f1_high, support=r.f1_support, digits=1)
                for r in self.table.itertuples()]
        wide = self.table.assign(text=text).pivot_table(index=["member", "challenge"], columns="measurement",
                                                        values="text", aggfunc="first", sort=False)
        return wide.reindex(columns=[m for m in MEASUREMENTS if m in wide.columns]).fillna("undefined")

    def mean_f1(self, measurement: str, challenges: tuple[str, ...]) -> tuple[float, int, int]:
        """Mean F1 over the runs of ``challenges`` where it is defined, how many runs that is, and how many in all.

        For the study's printed figures the mean is over all of the report's tables.
        """
        table = self.printed if measurement == MEASUREMENTS[0] else self.table[self.table["measurement"] == measurement]
        part = table[table["challenge"].isin(challenges)]
        defined = part["f1"].dropna()
        return (float(defined.mean()) if len(defined) else float("nan")), len(defined), len(part)


def _printed_f1(study_tables: pd.DataFrame) -> pd.DataFrame:
    rows = study_tables[(study_tables["figure"] == "F1") & study_tables["source"].str.startswith("study")]
    return rows.assign(measurement=MEASUREMENTS[0], f1=pd.to_numeric(rows["value"], errors="coerce"),
                       subject_faces=np.nan, f1_low=np.nan, f1_high=np.nan, f1_support=np.nan)


def _ours_at_study_rule(study_tables: pd.DataFrame, study_intervals: pd.DataFrame | None) -> pd.DataFrame:
    """F1 of our counts in the study's layout at the threshold the study's rule gives our model."""
    ours = study_tables[study_tables["source"].str.contains("the study's rule", regex=False)]
    f1 = ours[ours["figure"] == "F1"].set_index("run")["value"]
    tp = pd.to_numeric(ours[ours["figure"] == "TP"].set_index("run")["value"], errors="coerce")
    fn = pd.to_numeric(ours[ours["figure"] == "FN"].set_index("run")["value"], errors="coerce")
    rows = ours[ours["figure"] == "F1"][["run", "member", "challenge"]].drop_duplicates("run")
    rows = rows.assign(measurement=MEASUREMENTS[1], f1=pd.to_numeric(rows["run"].map(f1), errors="coerce"),
                       subject_faces=rows["run"].map(tp + fn))
    bounds = (study_intervals[study_intervals["figure"] == "F1"].set_index("run")
              if study_intervals is not None and not study_intervals.empty else pd.DataFrame(
                  columns=["low", "high", "faces"]))
    return rows.assign(f1_low=rows["run"].map(bounds["low"]), f1_high=rows["run"].map(bounds["high"]),
                       f1_support=rows["run"].map(bounds["faces"]))


def _ours_corrected(performance: pd.DataFrame) -> pd.DataFrame:
    """F1 under the IoU rule, one decision per face, at the run's own threshold, strict about missed faces."""
    rows = performance[performance["main"] & (performance["rule"] == "iou") & (performance["level"] == "frame")]
    tp, fn, fp = rows["TP"], rows["FN"] + rows["missed"], rows["FP"]
    denominator = (2 * tp + fp + fn).astype(float)
    f1 = (200 * tp / denominator).where(denominator > 0)
    saved = "strict_f1_low" in rows  # runs saved before intervals existed have none
    bounds = {side: 100 * rows[f"strict_f1_{side}"] if saved else np.nan for side in ("low", "high")}
    return rows[["run", "member", "challenge"]].assign(measurement=MEASUREMENTS[2], f1=f1, subject_faces=tp + fn,
                                                       f1_low=bounds["low"], f1_high=bounds["high"],
                                                       f1_support=(tp + fp + fn) if saved else np.nan)


def findings(study_tables: pd.DataFrame, performance: pd.DataFrame, printed: pd.DataFrame | None = None, *,
             study_intervals: pd.DataFrame | None = None) -> Findings:
    """The three measurements for every collected run (see the module docstring).

    ``printed`` defaults to the report's transcribed tables (:func:`crowdkit.crowd.reported.load_crowd_tables`);
    ``study_intervals`` is the collected :func:`crowdkit.crowd.study_table.study_intervals` (the interval of
    the study-protocol F1; without it that F1 has none).
    """
    from crowdkit.crowd.reported import load_crowd_tables

    printed = load_crowd_tables() if printed is None else printed
    printed = printed[[c for c in ("member", "challenge", "f1", "total_positives") if c in printed]]
    columns = ["run", "member", "challenge", "measurement", "f1", "subject_faces", "f1_low", "f1_high", "f1_support"]
    if study_tables.empty or performance.empty:
        return Findings(pd.DataFrame(columns=columns), printed)
    parts = [_printed_f1(study_tables), _ours_at_study_rule(study_tables, study_intervals),
             _ours_corrected(performance)]
    table = pd.concat([p[columns] for p in parts], ignore_index=True)
    return Findings(table.drop_duplicates(["run", "measurement"]).reset_index(drop=True), printed)


def _phrase(found: Findings, measurement: str) -> str:
    easy, n_easy, all_easy = found.mean_f1(measurement, EASY)
    hard, n_hard, all_hard = found.mean_f1(measurement, HARD)

    def part(value: float, n: int, total: int, names: tuple[str, ...]) -> str:
        shown = "undefined" if np.isnan(value) else f"{value:.1f} %"
        undefined = f", {total - n} undefined" if total > n else ""
        return f"{shown} on {'/'.join(names)} ({n} run{'s' if n != 1 else ''}{undefined})"

    return f"mean F1 {part(easy, n_easy, all_easy, EASY)} against {part(hard, n_hard, all_hard, HARD)}"


def findings_markdown(found: Findings, *, audit_page: str = "../crowd_audit/audit.ipynb") -> str:
    """Three sentences, one per measurement, with the numbers of this build and where to read more."""
    claim = (f"- **The study's claim.** The report found the search worked on the normal, compact and random "
             f"challenges and failed with intruders and masks: over its {len(found.printed)} tables, as printed, "
             f"{_phrase(found, MEASUREMENTS[0])}. Some printed rates disagree with their own counts "
             f"([the audit]({audit_page})).")
    if found.table.empty:
        return claim + "\n- No finished crowd run of ours yet: run `crowdkit run data/plans/crowd.yaml`."
    faces = found.table[found.table["measurement"] == MEASUREMENTS[2]]["subject_faces"]
    runs = found.table["run"].nunique()
    return "\n".join([
        claim,
        f"- **Ours under the study's protocol** (its 20-pixel rule, one decision per face, our model at the "
        f"threshold the study's rule gives it): {_phrase(found, MEASUREMENTS[1])}.",
        f"- **Ours under the corrected protocol** (one-to-one IoU matching, missed subject faces counted, "
        f"the threshold calibrated on LFW): {_phrase(found, MEASUREMENTS[2])}; over {runs} runs these rest on "
        f"{int(faces.min())}–{int(faces.max())} subject faces each{_scale_remark(found, int(faces.min()))}.",
    ])


#: Below this many subject faces in a run, its F1 is called coarse.
COARSE_BELOW = 30


def _scale_remark(found: Findings, fewest: int) -> str:
    """How our runs' subject faces compare with the report's tables, and whether an F1 is coarse."""
    remark = ""
    if "total_positives" in found.printed:
        theirs = pd.to_numeric(found.printed["total_positives"], errors="coerce").dropna()
        if len(theirs):
            remark = f" (the report's tables: {int(theirs.min())}–{int(theirs.max())})"
    return remark + (", so each run's F1 is a coarse number" if fewest < COARSE_BELOW else "")


def plot_findings(found: Findings) -> "Figure":
    """F1 per run, one marker per measurement: the study's printed value beside our two measurements."""
    import matplotlib.pyplot as plt

    wide = found.to_frame()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(wide) + 2.5), 3.4))
    if wide.empty:
        ax.text(0.5, 0.5, "no finished run to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    order = sorted(range(len(wide)), key=lambda i: CHALLENGES.index(wide.index[i][1]) if wide.index[i][1]
                   in CHALLENGES else len(CHALLENGES))
    wide = wide.iloc[order]
    x = np.arange(len(wide))
    bounds = {side: found.table.pivot_table(index=["member", "challenge"], columns="measurement", values=f"f1_{side}",
                                            aggfunc="first", dropna=False).reindex(index=wide.index, columns=wide.columns)
              for side in ("low", "high")}
    for offset, (measurement, marker) in zip((-0.2, 0.0, 0.2), zip(MEASUREMENTS, ("s", "o", "^"))):
        if measurement in wide:
            points = ax.scatter(x + offset, wide[measurement], marker=marker, label=measurement, s=28)
            low, high = bounds["low"][measurement], bounds["high"][measurement]
            ax.vlines(x + offset, low, high, color=points.get_facecolor()[0], linewidth=1)  # NaN: no interval
    ax.set_xticks(x, [f"{m}\n{c}" for m, c in wide.index], fontsize=7)
    ax.set_ylim(-5, 105)
    ax.set_ylabel("F1 (%)")
    ax.set_title("F1 per member and challenge: the study's printed value and ours (with its 95 % interval)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
