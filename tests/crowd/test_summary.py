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
