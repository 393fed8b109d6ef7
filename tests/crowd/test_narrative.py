"""crowdkit.crowd.narrative: the Markdown a run page and the summary page show, for every branch."""
from __future__ import annotations

import pytest

from crowdkit.crowd import narrative
from crowdkit.crowd.params import CrowdRunParams
from crowdkit.crowd.run import run_crowd

MEMBER = "Colin_Powell"


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_run_summary_states_what_was_searched_and_found(tiny):
    result, _ = tiny
    text = narrative.run_summary(result)
    assert text.startswith(f"## {MEMBER}: normal")
    assert f"Subject: **{result.inputs.subject}** (simulated scene)" in text
    assert f"Searched 4 of 20 frames, found {len(result.detections)} faces" in text
    assert f"Decision threshold **{result.threshold:g}**" in text
    assert text.count("* **") == 4 and "With the query photo **front**" in text  # 2 rules × 2 levels


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_missed_faces_thresholds_and_tracks(tiny):
    result, _ = tiny
    missed = result.missed("iou")
    text = narrative.missed_faces(result)
    assert text.startswith(f"Under the **iou** rule, {len(missed)} annotated views")
    counts = result.rule_comparison()[["TP", "FP", "TN", "FN"]]
    assert ("two rules label every detection alike" in text) == bool((counts.loc["study"] == counts.loc["iou"]).all())
    changes = narrative.threshold_changes(result)
    for rule, analysis in result.thresholds.items():
        expected = "undefined: no true positive" if analysis.change is None else f"flips {analysis.change.to_positive}"
        assert f"**{rule}**" in changes and expected in changes
    tracks = result.tracks()
    assert narrative.tracks_summary(result).startswith(f"{len(tracks)} tracks from {len(result.detections)} faces")
    assert narrative.masks(result) == ""  # not a mask challenge


@pytest.mark.slow  # renders a 1-frame scene and loads MTCNN + dlib
def test_a_mask_run_with_no_face_found(tmp_path, monkeypatch):
    monkeypatch.setenv("CROWDKIT_HOME", str(tmp_path))  # its own cache: the shared one holds the tiny run's only
    result = run_crowd(CrowdRunParams(member=MEMBER, challenge="mask1", max_frames=1, frame_stride=1), progress=False)
    assert "**no face was detected.**" in narrative.run_summary(result)
    assert "F1 undefined" in narrative.headline(result)
    text = narrative.masks(result)
    assert text.startswith("### Masks\n\nIn **mask1**") and "The detector matched 0 of the" in text
    assert "0 tracks from 0 faces" in narrative.tracks_summary(result)


def test_summary_page_prose(tmp_path):
    assert "Run `crowdkit run data/plans/crowd.yaml` first" in narrative.collected_runs("runs", [])
    assert narrative.collected_runs("runs", ["a", "b"]) == "Collected **2** finished run(s) from `runs`: a, b"


def test_printed_outside_names_the_runs():
    import pandas as pd

    index = pd.MultiIndex.from_tuples([("Peter", "normal", "F1"), ("Peter", "normal", "precision")],
                                      names=["member", "challenge", "figure"])
    comparison = pd.DataFrame({"printed": [75.3, 77.9], "faces": [24, 4], "outside": [True, False]}, index=index)
    text = narrative.printed_outside(comparison)
    assert text.startswith("Of 2 printed rates, 1 can be set against") and "**1 lie outside it**: Peter normal (F1)." in text
    assert narrative.printed_outside(pd.DataFrame()) == "No finished run saved intervals yet."
