"""Two builds compared: saved tables must match; pages should print the same numbers."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd

from crowdkit.book.compare import compare_builds, page_numbers
from crowdkit.cli import main


def build(root: Path, precision: float, shown: str) -> Path:
    runs = root / "book" / "runs"
    (runs / "crowd" / "a").mkdir(parents=True)
    pd.DataFrame({"member": ["x", "y"], "precision": [0.5, precision]}).to_parquet(runs / "crowd/a/performance.parquet")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": shown}),
                    nbformat.v4.new_output("stream", name="stdout", text="ran in 43.2 s\n")]
    nb.cells = [cell]
    nbformat.write(nb, runs / "crowd" / "a.ipynb")
    return runs


def test_identical_builds_are_the_same(tmp_path):
    a = build(tmp_path / "a", 0.25, "accuracy **0.9882 ± 0.0025**")
    b = build(tmp_path / "b", 0.25, "accuracy 0.9882 (± 0.0025), shown again: 0.9882")
    comparison = compare_builds(a, b)
    assert comparison.same and comparison.tables_compared == 1
    assert page_numbers(a / "crowd" / "a.ipynb") == {"0.9882": 1, "0.0025": 1}  # 43.2: one decimal, a time


def test_a_changed_value_is_reported_with_its_row(tmp_path, capsys):
    a = build(tmp_path / "a", 0.25, "accuracy 0.9882")
    b = build(tmp_path / "b", 0.26, "accuracy 0.9871")
    comparison = compare_builds(a, b)
    assert not comparison.same
    (difference,) = comparison.table_differences
    assert difference.table == "crowd/a/performance.parquet" and "row 1" in difference.problem
    assert comparison.pages[0].only_before == ("0.9882",) and comparison.pages[0].only_after == ("0.9871",)
    assert main(["book", "compare", str(a), str(b)]) == 1
    assert "DIFFERENT" in capsys.readouterr().out



def test_numbers_printed_with_fewer_decimals_and_paths_under_other_homes_still_match(tmp_path):
    a = build(tmp_path / "a", 0.25, "distance 0.010269, accuracy 0.98")
    b = build(tmp_path / "b", 0.25, "distance 0.0103, accuracy 0.98")
    for root, home in ((a, "/tmp/home-a"), (b, "/srv/other-home")):
        pd.DataFrame({"source": [f"{home}/cache/scenes/x/video.mp4"]}).to_parquet(root / "crowd/a/detections.parquet")
    comparison = compare_builds(a, b)
    assert comparison.same, comparison.report()
    c = build(tmp_path / "c", 0.25, "distance 0.0110, accuracy 0.98")
    pd.DataFrame({"source": ["/x/cache/scenes/x/video.mp4"]}).to_parquet(c / "crowd/a/detections.parquet")
    assert compare_builds(a, c).pages[0].only_before == ("0.010269",)
