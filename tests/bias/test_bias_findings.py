"""Part II's findings: the thesis' claim from its own Table 5.1, ours from the saved tables of an evaluation run."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from crowdkit.bias import findings
from crowdkit.bias.reported import load_thesis_tables


def _per_run(shift: float) -> pd.DataFrame:
    rows = []
    for seed, noise in enumerate((0.0, 0.004, -0.002)):
        for sampler, arm in (("random", "base (random)"), ("stratified", "modified (stratified)")):
            delta = shift if sampler == "stratified" else 0.0
            rows.append({"arm": arm, "sampler": sampler, "seed": seed, "epochs": 5, "accuracy": 0.9 + noise + delta,
                         "std": 0.01, "VAL": 0.5, "FAR": 0.001, "AUC": 0.95 + noise + delta / 2, "EER": 0.1})
    return pd.DataFrame(rows)


def _found(shift: float = 0.0) -> findings.BiasFindings:
    differences = pd.DataFrame({"group": ["White", "White", "Black", "Black"],
                                "rate": ["FNMR @ global threshold", "FMR @ global threshold"] * 2,
                                "difference": [0.01, -0.002, 0.03, 0.004], "low": [-0.02, -0.01, 0.01, -0.001],
                                "high": [0.04, 0.005, 0.05, 0.009], "seeds": [3] * 4})
    sizes = pd.DataFrame({"group": ["White", "Black", "cross-group"], "identities": [120, 14, 134],
                          "images": [900, 60, 960], "genuine pairs": [3000, 150, 0],
                          "impostor pairs": [400000, 1700, 90000]})
    classifier = pd.DataFrame([{"classifier": "probe", "error_rate": 0.3, "low": 0.25, "high": 0.35, "n_test": 300}])
    return findings.BiasFindings(load_thesis_tables().evaluation_frame(), _per_run(shift), differences, sizes,
                                 classifier)


def test_the_thesis_claim_is_computed_from_its_table():
    diffs = _found().thesis_differences().set_index(["metric", "epochs"])["stratified − random"]
    assert diffs[("AUC", 75)] == pytest.approx(0.766 - 0.708)
    assert diffs[("accuracy", 30)] == pytest.approx(0.65583 - 0.66733)
    text = findings.findings_markdown(_found())
    assert "-0.085, +0.017, +0.058" in text and "higher in 2 of 3" in text and "lower in 3 of 3" in text


def test_ours_pairs_the_arms_seed_by_seed():
    same = _found(0.0).our_differences().set_index("metric")
    assert same.loc["accuracy", "stratified − random"] == pytest.approx(0.0) and not same["CI excludes 0"].any()
    shifted = _found(0.02).our_differences().set_index("metric")
    assert shifted.loc["accuracy", "stratified − random"] == pytest.approx(0.02)
    assert shifted.loc["accuracy", "CI excludes 0"]  # identical noise in both arms: the difference is exact
    text = findings.findings_markdown(_found(0.02))
    assert "3 seeds per arm" in text and "excludes zero" in text


def test_the_corrected_protocol_names_groups_their_sizes_and_the_classifier_error():
    found = _found()
    text = findings.findings_markdown(found)
    assert "White 120, Black 14" in text and "30.0% [25.0%, 35.0%] of 300" in text
    assert "changed 1 of 4 group rates" in text and "Black FNMR @ global threshold" in text
    table = found.to_frame()
    assert list(table["measurement"].unique()) == list(findings.MEASUREMENTS)
    black = table[table["metric"] == "Black: FNMR @ global threshold"].iloc[0]
    assert black["rests_on"] == "3 seeds; 14 people, 150 genuine and 1,700 impostor pairs"
    assert np.isnan(table.iloc[0]["low"])  # the thesis' figures carry no interval


def test_without_an_evaluation_the_page_says_what_to_run(tmp_path):
    empty = findings.load_findings(tmp_path)
    assert empty.empty
    text = findings.findings_markdown(empty)
    assert "thesis' claim" in text and "crowdkit run data/plans/bias.yaml" in text
    findings.plot_findings(empty)
    assert set(empty.to_frame()["measurement"]) == {findings.MEASUREMENTS[0]}  # the thesis' rows alone


def test_saved_tables_are_what_the_landing_page_reads(tmp_path, monkeypatch):
    found = _found(0.01)
    run_dir = tmp_path / "4-evaluation"
    (tmp_path / "4-evaluation.ipynb").write_text("{}")  # a finished run: its executed notebook exists
    monkeypatch.setenv("CROWDKIT_RUN_DIR", str(run_dir))
    measured = SimpleNamespace(name="probe", error_rate=0.3, report=SimpleNamespace(n=300))
    rates = SimpleNamespace(sizes=lambda: found.sizes.set_index("group"))
    evaluated = SimpleNamespace(per_run=lambda: found.per_run)
    everything = SimpleNamespace(measured=measured, rates={"dlib": rates}, arm_differences=lambda: found.differences)
    links = findings.save_findings_tables(evaluated, everything)
    assert "per_run ([CSV](4-evaluation/per_run.csv)" in links
    again = findings.load_findings(tmp_path)
    pd.testing.assert_frame_equal(again.per_run, found.per_run)
    assert again.classifier.loc[0, "low"] == pytest.approx(0.2505, abs=1e-3)  # Wilson, 90 of 300
    assert findings.findings_markdown(again) == findings.findings_markdown(
        findings.BiasFindings(found.thesis, found.per_run, found.differences, found.sizes, again.classifier))
    fig = findings.plot_findings(again)
    assert len(fig.axes) == 2
