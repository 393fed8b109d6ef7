"""Tables a run saves beside its notebook, and their collection for summary pages."""
import pandas as pd
import pytest

from crowdkit.common import run_tables
from crowdkit.common.exceptions import ConfigError


def test_save_run_table_rejects_bad_names(tmp_path):
    with pytest.raises(ConfigError):
        run_tables.save_run_table("../escape", pd.DataFrame({"a": [1]}), run_dir=tmp_path)


def test_collect_takes_only_finished_runs_with_the_run_first(tmp_path):
    for run, x in (("a", 1), ("b", 2), ("unfinished", 3)):
        run_tables.save_run_table("numbers", pd.DataFrame({"x": [x]}), run_dir=tmp_path / run)
    (tmp_path / "a.ipynb").write_text("{}")
    (tmp_path / "b.ipynb").write_text("{}")
    table = run_tables.collect_run_tables(tmp_path, "numbers")
    assert table.to_dict("list") == {"run": ["a", "b"], "x": [1, 2]}
    assert run_tables.collect_run_tables(tmp_path, "absent").columns.tolist() == ["run"]


def test_without_a_run_folder_tables_go_to_the_interactive_cache(offline_home, monkeypatch):
    monkeypatch.delenv("CROWDKIT_RUN_DIR", raising=False)
    path = run_tables.save_run_table("t", pd.DataFrame({"a": [1]}))
    assert path.parent.name == "interactive-runs" and path.is_file()


def test_tables_are_saved_for_download_and_linked_relative_to_the_page(tmp_path):
    run_dir = tmp_path / "peter-normal"
    run_tables.save_run_table("performance", pd.DataFrame({"f1": [0.5]}), run_dir=run_dir)
    run_tables.save_run_table("thresholds", pd.DataFrame({"t": [0.1]}), run_dir=run_dir)
    assert pd.read_csv(run_dir / "performance.csv").to_dict("list") == {"f1": [0.5]}
    links = run_tables.download_links(run_dir, ["performance", "absent"])
    assert links == ("Download this run's tables: performance ([CSV](peter-normal/performance.csv) · "
                     "[parquet](peter-normal/performance.parquet)).")
    assert "thresholds" in run_tables.download_links(run_dir)
    assert run_tables.download_links(tmp_path / "empty") == ""
