"""The HTML build's own steps (the whole build is tested in a browser by test_book.py)."""
from __future__ import annotations

import pandas as pd

from crowdkit.book.build import copy_run_tables


def test_the_html_build_gets_each_runs_tables_beside_its_page(tmp_path):
    runs = tmp_path / "book" / "runs"
    (runs / "crowd" / "a").mkdir(parents=True)
    pd.DataFrame({"f1": [0.5]}).to_parquet(runs / "crowd" / "a" / "performance.parquet")
    (runs / "crowd" / "a" / "performance.csv").write_text("f1\n0.5\n")
    (runs / "crowd" / "a" / "notes.txt").write_text("not a table")
    (runs / "crowd" / ".staging").mkdir()
    (runs / "crowd" / ".staging" / "x.csv").write_text("partial")
    assert copy_run_tables(runs, tmp_path / "html") == 2
    assert (tmp_path / "html" / "crowd" / "a" / "performance.csv").is_file()
    assert not (tmp_path / "html" / "crowd" / "a" / "notes.txt").exists()
