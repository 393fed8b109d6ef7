"""The prose a crowd page shows that depends on its results, as Markdown strings.

A run page calls these instead of holding conditional f-strings, so every
number in its prose is computed and every branch is tested::

    display(Markdown(run_summary(result)))
    display(Markdown(masks(result)))      # empty for a challenge without masks

Each function returns Markdown text (possibly empty, which displays nothing).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from crowdkit.common.metrics import MIN_SUPPORT
from crowdkit.crowd.results import CrowdRunResult

#: Why a mask challenge is hard, per challenge: shown in the run page's "Masks" section.
MASK_CHALLENGES = {
    "mask1": "In **mask1** every face in the video is masked from the nose down while the query photo is not. "
             "The detector loses faces (the mask hides the nose and mouth it looks for), and the faces it finds "
             "are compared with a face whose lower half looks completely different, so the subject's distances "
             "rise above the threshold along with everyone else's.",
    "mask2": "In **mask2** the query photo wears the mask too, which removes the mismatch between query and "
             "video: compare the mask1 chapter of the same member (same video, same faces; only the query "
             "photo differs). A caution: in the simulated scene the query's mask is drawn by the same code as "
             "the crowd's (same shape and colour), which is an easier match than a real masked photo taken "
             "on another day with another mask.",
}


# --------------------------------------------------------------------------- a run page


def run_summary(result: CrowdRunResult) -> str:
    """The run's heading, what was searched and found, the threshold, and the headline rates."""
    params, inputs, faces = result.params, result.inputs, result.detections
    searched = f"Searched {len(result.frames_searched)} of {result.frame_count} frames"
    if len(faces):
        found = (f"Subject: **{inputs.subject}** ({'simulated scene' if inputs.simulated else 'real video'}). "
                 f"{searched}, found {len(faces)} faces (heights {faces.face_height.min():.0f}–"
                 f"{faces.face_height.max():.0f} px).")
    else:
        found = f"Subject: **{inputs.subject}**. {searched}: **no face was detected.**"
    threshold = (f"Decision threshold **{result.threshold:g}** ({result.threshold_source}); "
                 f"cache entries written by this run: {result.cache_entries_written}.")
    return "\n\n".join([f"## {params.member}: {params.challenge}", found, threshold, headline(result)])


def headline(result: CrowdRunResult) -> str:
    """The run's query under each rule, per frame and per track: precision, recall (strict) and F1, with intervals."""
    table = result.main_performance(display=True)
    lines = [f"* **{rule}** rule, per {level}: precision {row.precision}, recall {row.recall} "
             f"(strict {row.strict_recall}), F1 {row.f1}" for (rule, level), row in table.iterrows()]
    return f"With the query photo **{result.main_query}**:\n\n" + "\n".join(lines)


def missed_faces(result: CrowdRunResult) -> str:
    """How many views of the subject the detector never found under the main rule, and whether the rules agree."""
    rule = result.params.main_rule
    missed = result.missed(rule)
    text = f"Under the **{rule}** rule, {len(missed)} annotated views of the subject in the searched frames were never detected"
    if len(missed):
        text += (f" (face heights {missed.face_height.min():.0f}–{missed.face_height.max():.0f} px, median "
                 f"{missed.face_height.median():.0f}; {int(missed.occluded.sum())} marked occluded).")
    else:
        text += "."
    if _rules_agree(result):
        text += ("\n\nHere the two rules label every detection alike. They part where detections are loose or "
                 "crowded (compact formations, several detections on one face), and in what they leave out: the "
                 "study's rule never counts the missed subject faces.")
    return text


def _rules_agree(result: CrowdRunResult) -> bool:
    if len(result.params.rules) != 2:
        return False
    counts = result.rule_comparison()[["TP", "FP", "TN", "FN"]]
    return bool((counts.loc["study"] == counts.loc["iou"]).all())


def threshold_changes(result: CrowdRunResult) -> str:
    """Per rule: what the study's mean + 2σ threshold would flip, or why it is undefined."""
    lines = []
    for rule, analysis in result.thresholds.items():
        change = analysis.change
        if change is None:
            lines.append(f"**{rule}**: mean + 2σ is undefined: no true positive to tune from.")
        else:
            lines.append(f"**{rule}**: threshold {change.old:.3f} → {change.new:.3f} flips {change.to_positive} "
                         f"decision(s) to positive and {change.to_negative} to negative.")
    return "\n\n".join(lines)


def tracks_summary(result: CrowdRunResult) -> str:
    """How many tracks the faces formed and how many were declared the subject."""
    tracks = result.tracks()
    return (f"{len(tracks)} tracks from {len(result.detections)} faces; "
            f"{int(tracks.decision.sum())} track(s) declared the subject.")


def masks(result: CrowdRunResult) -> str:
    """The "Masks" section of a mask challenge's page (empty for the other challenges)."""
    challenge = result.params.challenge
    if challenge not in MASK_CHALLENGES:
        return ""
    row = result.main_performance().loc[(result.params.main_rule, "frame")]
    if row.faces_annotated:
        found = (f"The detector matched {row.faces_matched} of the {row.faces_annotated} annotated faces in view "
                 f"({row.detection_rate:.0%}), and the run's query recognised {row.TP} of the {row.positives} "
                 "detected faces of the subject.")
    else:
        found = "No annotated face was in view."
    return ("### Masks\n\n" + MASK_CHALLENGES[challenge] + " " + found + " The embedders used here were trained on "
            "unmasked faces; the study's mask challenges measure this, and so do these.")


# --------------------------------------------------------------------------- the summary page


def collected_runs(runs_dir: str | Path, runs: list[str]) -> str:
    """Which finished runs the summary page collected from ``runs_dir``."""
    if not runs:
        return f"Collected **0** finished run(s) from `{runs_dir}`. Run `crowdkit run data/plans/crowd.yaml` first."
    return f"Collected **{len(runs)}** finished run(s) from `{runs_dir}`: " + ", ".join(runs)


def printed_outside(comparison: pd.DataFrame) -> str:
    """How many of the study's printed rates lie outside our interval (:func:`crowdkit.crowd.summary.printed_vs_interval`)."""
    if comparison.empty:
        return "No finished run saved intervals yet."
    judged = comparison[comparison["printed"].notna() & (comparison["faces"] >= MIN_SUPPORT)]
    outside = comparison[comparison["outside"]]
    text = (f"Of {len(comparison)} printed rates, {len(judged)} can be set against an interval of ours (a printed "
            f"number, and at least {MIN_SUPPORT} faces behind our rate); **{len(outside)} lie outside it**")
    if not len(outside):
        return text + "."
    runs = ", ".join(f"{member} {challenge} ({figure})" for member, challenge, figure in outside.index)
    return f"{text}: {runs}."
