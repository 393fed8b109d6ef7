"""Tables a run saves beside its notebook, collected by summary pages (``<run_dir>/<name>.parquet``)."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError

log = logging.getLogger(__name__)

#: Names of plans, runs and tables: letters, digits, "_", "-", "." (not first).
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# --------------------------------------------------------------------------- run tables

def save_run_table(name: str, table, *, run_dir: str | os.PathLike | None = None) -> Path:
    """Save a run's table as ``<run_dir>/<name>.parquet`` and ``.csv`` (atomically) for summary pages and readers.

    The parquet file is what summary pages read; the CSV is the copy a reader
    downloads from the page (:func:`download_links`).

    ``run_dir`` defaults to the run's folder: crowdkit injects it as the
    papermill parameter ``run_dir`` and sets ``CROWDKIT_RUN_DIR`` in the
    kernel's environment, so ``save_run_table("metrics", df)`` is enough inside
    a plan's run. Outside a plan (interactive use) the table goes to
    ``$CROWDKIT_HOME/cache/interactive-runs``.
    """
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"table name {name!r} may hold only letters, digits, '_', '-', '.'")
    run_dir = run_dir or os.environ.get("CROWDKIT_RUN_DIR")
    folder = Path(run_dir) if run_dir else config.cache_dir("interactive-runs")
    from crowdkit.common.io import atomic_path

    target = folder / f"{name}.parquet"
    with atomic_path(target) as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(folder / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False)
    return target


#: Suffixes of the files a run page offers for download (copied next to the page by the book build).
DOWNLOAD_SUFFIXES = (".csv", ".parquet")


def download_links(run_dir: str | os.PathLike | None = None, names=None) -> str:
    """Markdown links to a run's saved tables, relative to its page: ``performance (CSV · parquet)``.

    ``names`` chooses and orders the tables (default: every saved table). The
    book build copies the files beside the page, so the links work in the HTML.
    Returns "" when the run saved no table.
    """
    run_dir = run_dir or os.environ.get("CROWDKIT_RUN_DIR")
    if not run_dir:
        return ""
    folder = Path(run_dir)
    saved = sorted(p.stem for p in folder.glob("*.parquet"))
    chosen = [n for n in (names or saved) if n in saved]
    if not chosen:
        return ""
    links = [f"{n} ([CSV]({folder.name}/{n}.csv) · [parquet]({folder.name}/{n}.parquet))" for n in chosen]
    return "Download this run's tables: " + ", ".join(links) + "."


def collect_run_tables(plan_dir: str | os.PathLike, name: str):
    """Concatenate ``<plan_dir>/<run>/<name>.parquet`` of every finished run, with a ``run`` column first.

    Only runs whose executed notebook exists (finished) are collected, so a
    failed run's partial tables never reach a summary page. Returns an empty
    DataFrame when no run saved the table.
    """
    import pandas as pd

    plan_dir = Path(plan_dir)
    frames = []
    for file in sorted(plan_dir.glob(f"*/{name}.parquet")):
        run = file.parent.name
        if not (plan_dir / f"{run}.ipynb").is_file():
            continue
        frame = pd.read_parquet(file)
        frame.insert(0, "run", run)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run"])

