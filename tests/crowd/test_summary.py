"""crowdkit.crowd.summary: tables across runs, gains, the study's printed tables beside ours; empty collections."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdkit.crowd import summary
from crowdkit.crowd.params import ALL_PHOTOS


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_summary_tables(tiny):
    result, _ = tiny
    performance = result.performance.assign(run="colin-normal")
    table = summary.summary_table(performance)
    assert table.shape == (1, 4)
    gains = summary.gain_table(performance, compare="level")
    assert np.allclose(gains["gain"], gains["track"] - gains["frame"], equal_nan=True)
    queries = summary.gain_table(performance, compare="query")
    assert list(queries.columns) == ["single", ALL_PHOTOS, "gain"]


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_page_tables_of_one_collected_run(tiny, tmp_path):
    result, run_dir = tiny
    (run_dir.parent / f"{run_dir.name}.ipynb").write_text("{}")  # only finished runs (with a notebook) count
    tables = summary.collect_runs(run_dir.parent)
    performance = tables["performance"]
    assert summary.run_names(performance) == ["colin-normal"]
    assert summary.rate_table(performance, "f1").shape == (1, 4)
    counts = summary.counts_table(performance, "iou")
    assert list(counts.columns) == list(summary.COUNT_COLUMNS) and len(counts) == 1
    assert counts["f1"].map(type).eq(str).all()  # rates as text: "undefined", never 0
    means, every = summary.gain_tables(performance, compare="level")
    assert list(every.columns) == ["frame", "track", "gain"] and len(means) == 2
    assert list(summary.retuning_table(tables["thresholds"]).columns) == list(summary.RETUNING_COLUMNS)
    assert summary.detection_rate_table(performance).shape == (1, 2)


def test_an_empty_collection_gives_empty_tables(tmp_path):
    tables = summary.collect_runs(tmp_path)
    performance = tables["performance"]
    assert summary.run_names(performance) == []
    assert summary.rate_table(performance, "f1").empty and summary.counts_table(performance, "study").empty
    assert all(t.empty for t in summary.gain_tables(performance, compare="query"))
    assert summary.detection_rate_table(performance).empty and summary.retuning_table(tables["thresholds"]).empty


def test_challenges_sort_in_the_studys_order():
    table = pd.DataFrame({"member": ["a", "a", "a"], "challenge": ["mask2", "normal", "mine"], "x": [1, 2, 3]})
    ordered = summary.in_challenge_order(table.set_index(["member", "challenge"]))
    assert list(ordered.index.get_level_values("challenge")) == ["normal", "mask2", "mine"]


def interval_tables():
    """One run's study table (printed and ours) and its saved intervals: the printed F1 lies above ours."""
    rows = [("peter-normal", "Peter", "normal", figure, "study: Table 3, ArcFace ≤ 0.65", value) for figure, value in
            (("TP", "529"), ("FP", "150"), ("TN", "900"), ("FN", "197"), ("precision", "77.909"), ("recall", "72.865"),
             ("F1", "75.301"), ("accuracy", "80.000"))]
    study_tables = pd.DataFrame(rows, columns=["run", "member", "challenge", "figure", "source", "value"])
    intervals = pd.DataFrame({
        "run": "peter-normal", "member": "Peter", "challenge": "normal",
        "figure": ["precision", "recall", "F1", "accuracy"], "ours": [75.0, 60.0, 40.0, 90.0],
        "low": [50.0, 30.0, 20.0, 85.0], "high": [95.0, 80.0, 55.0, 95.0], "faces": [4, 20, 24, 300],
        "tracks": [1, 3, 4, 40]})
    return study_tables, intervals


def test_a_printed_figure_outside_our_interval_is_marked():
    comparison = summary.printed_vs_interval(*interval_tables())
    assert list(comparison.index.get_level_values("figure")) == ["precision", "recall", "F1", "accuracy"]
    f1 = comparison.loc[("Peter", "normal", "F1")]
    assert f1["outside"] and f1["mark"] == "printed outside ours" and f1["printed"] == pytest.approx(75.301)
    assert f1["ours, study's protocol [95 %]"] == "40.000 [20.000, 55.000]"
    assert f1["study faces"] == 529 + 150 + 197 and f1["faces"] == 24 and f1["tracks"] == 4  # sample sizes beside
    assert comparison.loc[("Peter", "normal", "accuracy"), "outside"]  # 80 below [85, 95]
    assert not comparison.loc[("Peter", "normal", "recall"), "outside"]  # 72.865 inside [30, 80]
    precision = comparison.loc[("Peter", "normal", "precision")]
    assert not precision["outside"] and precision["ours, study's protocol [95 %]"].endswith("[too few]")  # 4 faces
    assert summary.printed_vs_interval(pd.DataFrame(), pd.DataFrame()).empty


def test_rate_tables_show_the_interval():
    base = {"run": "r", "member": "Peter", "challenge": "normal", "main": True, "TN": 50, "FN": 5, "missed": 1,
            "faces_annotated": 80}
    performance = pd.DataFrame([
        {**base, "rule": rule, "level": level, "TP": 20, "FP": 4, "f1": 0.816, "f1_low": 0.7, "f1_high": 0.9,
         "precision": 0.833, "precision_low": 0.7, "precision_high": 0.95, "recall": 0.8, "recall_low": 0.6,
         "recall_high": 0.9, "accuracy": 0.886, "accuracy_low": 0.8, "accuracy_high": 0.95, "positives": 25,
         "negatives": 54, "detection_rate": 0.5, "detection_rate_low": 0.4, "detection_rate_high": 0.6}
        for rule in ("study", "iou") for level in ("frame", "track")])
    assert summary.rate_table(performance, "f1").iloc[0].tolist() == ["0.816 [0.700, 0.900]"] * 4
    counts = summary.counts_table(performance, "iou")
    assert counts.iloc[0]["precision"] == "0.833 [0.700, 0.950]" and counts.iloc[0]["TP"] == 20
    assert summary.detection_rate_table(performance).iloc[0].tolist() == ["0.500 [0.400, 0.600]"] * 2
