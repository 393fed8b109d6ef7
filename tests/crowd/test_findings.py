"""Part I's findings: three measurements per run, and the sentences the landing page states."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdkit.crowd import findings


def study_tables() -> pd.DataFrame:
    rows = []
    for run, member, challenge, printed, ours_f1, tp, fn in (("peter-normal", "Peter", "normal", "72.865", "36.364", 2, 7),
                                                              ("peter-mask1", "Peter", "mask1", "-", "-", 0, 5)):
        for figure, value in (("F1", printed), ("TP", "529"), ("FN", "197")):
            rows.append((run, member, challenge, figure, "study: Table 3, ArcFace ≤ 0.65", value))
        for figure, value in (("F1", ours_f1), ("TP", str(tp)), ("FN", str(fn))):
            rows.append((run, member, challenge, figure, "ours: dlib ≤ 0.07 (the study's rule)", value))
    return pd.DataFrame(rows, columns=["run", "member", "challenge", "figure", "source", "value"])


def performance() -> pd.DataFrame:
    base = {"main": True, "rule": "iou", "level": "frame"}
    return pd.DataFrame([
        {**base, "run": "peter-normal", "member": "Peter", "challenge": "normal", "TP": 6, "FP": 2, "FN": 3, "missed": 5},
        {**base, "run": "peter-mask1", "member": "Peter", "challenge": "mask1", "TP": 0, "FP": 0, "FN": 0, "missed": 0},
        {**base, "run": "peter-normal", "member": "Peter", "challenge": "normal", "TP": 9, "FP": 9, "FN": 9, "missed": 9,
         "rule": "study"},  # another rule: not the corrected protocol
    ])


PRINTED = pd.DataFrame({"member": ["Peter", "Peter", "Ahmed"], "challenge": ["normal", "mask1", "random"],
                        "f1": [72.865, np.nan, 68.363]})


def test_three_measurements_per_run_with_the_faces_behind_them():
    found = findings.findings(study_tables(), performance(), PRINTED)
    wide = found.to_frame()
    assert list(wide.columns) == list(findings.MEASUREMENTS)
    assert wide.loc[("Peter", "normal")].tolist() == [72.9, 36.4, pytest.approx(100 * 12 / 22, abs=0.05)]
    assert np.isnan(wide.loc[("Peter", "mask1"), "study, as printed"])  # "-": undefined, never 0
    assert np.isnan(wide.loc[("Peter", "mask1"), "ours, corrected protocol"])  # nothing to count
    corrected = found.table[found.table["measurement"] == findings.MEASUREMENTS[2]].set_index("run")
    assert corrected.loc["peter-normal", "subject_faces"] == 6 + 3 + 5  # missed faces count as the subject's


def test_the_claim_is_stated_over_every_printed_table():
    found = findings.findings(study_tables(), performance(), PRINTED)
    mean, defined, total = found.mean_f1(findings.MEASUREMENTS[0], findings.EASY)
    assert mean == pytest.approx((72.865 + 68.363) / 2) and (defined, total) == (2, 2)
    text = findings.findings_markdown(found)
    assert "over its 3 tables" in text and "70.6 % on normal/compact/random (2 runs)" in text
    assert "undefined on intruder/mask1/mask2 (0 runs, 1 undefined)" in text
    assert "rest on 0–14 subject faces each, so each run's F1 is a coarse number." in text


def test_the_scale_is_stated_beside_the_reports_and_coarse_only_when_small():
    printed = PRINTED.assign(total_positives=[571, 0, 226])
    large = performance().assign(TP=[300, 0, 9], FN=[100, 0, 9], missed=[50, 0, 9])
    text = findings.findings_markdown(findings.findings(study_tables(), large, printed))
    assert "rest on 0–450 subject faces each (the report's tables: 0–571), so each run's F1 is a coarse number." in text
    large = large[large["run"] == "peter-normal"]
    text = findings.findings_markdown(findings.findings(study_tables(), large, printed))
    assert text.endswith("rest on 450–450 subject faces each (the report's tables: 0–571).")


def test_no_run_yet_still_states_the_claim(tmp_path):
    found = findings.findings(pd.DataFrame(), pd.DataFrame(), PRINTED)
    text = findings.findings_markdown(found)
    assert text.startswith("- **The study's claim.**") and "No finished crowd run of ours yet" in text
    assert findings.plot_findings(found) is not None


def test_our_f1_carries_its_interval_where_the_run_saved_one():
    saved = pd.DataFrame({"run": ["peter-normal"], "member": "Peter", "challenge": "normal", "figure": "F1",
                          "ours": 36.364, "low": 10.0, "high": 60.0, "faces": 11, "tracks": 2})
    bounds = performance().assign(strict_f1_low=[0.4, np.nan, 0.1], strict_f1_high=[0.7, np.nan, 0.2])
    found = findings.findings(study_tables(), bounds, PRINTED, study_intervals=saved)
    shown = found.display_frame()
    assert shown.loc[("Peter", "normal")].tolist() == ["72.9", "36.4 [10.0, 60.0]", "54.5 [40.0, 70.0]"]
    assert shown.loc[("Peter", "mask1")].tolist() == ["undefined", "undefined", "undefined"]
    assert found.to_frame().loc[("Peter", "normal")].tolist() == [72.9, 36.4, pytest.approx(100 * 12 / 22, abs=0.05)]
    without = findings.findings(study_tables(), performance(), PRINTED).display_frame()
    assert without.loc[("Peter", "normal")].tolist()[1:] == ["36.4", "54.5"]  # runs saved without intervals
    assert findings.plot_findings(found) is not None
