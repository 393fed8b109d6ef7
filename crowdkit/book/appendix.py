"""What the reproducibility appendix shows: environment, data presence, run times, a Dask measurement, screenshots.

Every number on that page comes from here (sidecars, ``SHA256SUMS``, installed
packages, a timed run), so the notebook only calls and displays.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from crowdkit.book import plans, scheduler
from crowdkit.book.hashing import crowdkit_source_hash
from crowdkit.common import config
from crowdkit.common.datacheck import read_checksums
from crowdkit.common.io import sha256_file
from crowdkit.common.provenance import package_versions

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Where the browser check (``tests/book/test_book.py``) saves its Chromium screenshots of the built book.
SCREENSHOT_DIR = config.PROJECT_ROOT / "tests" / "artifacts"
#: The screenshots it takes, and what each shows, in the order the appendix shows them.
SCREENSHOTS = {"book_index.png": "the book's first page", "book_crowd_landing.png": "Part I's landing page",
               "book_bias_landing.png": "Part II's landing page", "book_run_page.png": "a run page"}

#: Columns of :func:`run_times`.
RUN_TIME_COLUMNS = ("plan", "run", "status", "profile", "seconds", "finished", "content hash")


def environment_table() -> pd.DataFrame:
    """crowdkit's source hash, the CPU count and every recorded package version, one row each."""
    rows = [("crowdkit source sha256", crowdkit_source_hash()[:16]), ("CPU cores", os.cpu_count())]
    rows += sorted(package_versions().items())
    return pd.DataFrame(rows, columns=["what", "version"]).set_index("what")


def data_presence(root: str | os.PathLike | None = None) -> tuple[pd.DataFrame, str]:
    """Per dataset, files listed in ``SHA256SUMS`` and files present, plus one Markdown line about the list.

    Only presence is counted (fast); ``crowdkit data check`` hashes every file.
    """
    root = Path(root) if root is not None else config.data_root()
    sums = root / "SHA256SUMS"
    listed = read_checksums(sums)
    total = Counter(name.split("/", 1)[0] for name in listed)
    present = Counter(name.split("/", 1)[0] for name in listed if (root / name).is_file())
    table = pd.DataFrame({"files listed": pd.Series(total), "files present": pd.Series(present)})
    table = table.fillna(0).astype(int).sort_index().rename_axis("dataset")
    line = f"`SHA256SUMS` lists {len(listed):,} files; its own sha256 is `{sha256_file(sums)}`."
    return table, line


def run_times(runs_root: str | os.PathLike, *, leave_out: str = "appendix") -> pd.DataFrame:
    """One row per executed notebook, from the sidecars the runner wrote (``<run>.run.json``)."""
    rows = []
    for sidecar in sorted(Path(runs_root).glob("*/*.run.json")):
        record = json.loads(sidecar.read_text())
        if record.get("plan") == leave_out:
            continue
        rows.append({"plan": record.get("plan"), "run": record.get("run"), "status": record.get("status"),
                     "profile": record.get("profile"), "seconds": record.get("seconds"),
                     "finished": record.get("finished"), "content hash": str(record.get("content_hash", ""))[:12]})
    return pd.DataFrame(rows, columns=list(RUN_TIME_COLUMNS))


def run_times_summary(times: pd.DataFrame) -> str:
    """One Markdown sentence: how many notebooks, how much notebook time."""
    noun = "notebook" if len(times) == 1 else "notebooks"
    return f"{len(times)} {noun}, {times['seconds'].sum():.0f} s of notebook time in all."


def plot_run_times(times: pd.DataFrame) -> "Figure":
    """A horizontal bar per notebook: the seconds it took when it last ran."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(times), 1) + 1.2))
    ax.barh(times["plan"] + "/" + times["run"], times["seconds"], color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds ({os.cpu_count()} cores)")
    ax.set_title("time each notebook took")
    fig.tight_layout()
    return fig


def _tiny_project(work: Path, n_runs: int) -> list[Path]:
    """A project with one arithmetic notebook and two plans of ``n_runs`` runs each."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("n = 1\nrun_dir = None")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("total = sum(i * i for i in range(20_000_000))")]
    notebook.metadata["kernelspec"] = {"name": "crowdkit", "display_name": "Python (crowdkit)", "language": "python"}
    (work / "notebooks").mkdir(parents=True)
    nbformat.write(notebook, work / "notebooks" / "tiny.ipynb")
    folder = work / "data" / "plans"
    folder.mkdir(parents=True)
    runs = "".join(f"  - name: t{i}\n    parameters: {{n: {i + 1}}}\n" for i in range(n_runs))
    files = []
    for stem in ("one_process", "dask"):
        path = folder / f"{stem}.yaml"
        path.write_text(f"notebook: notebooks/tiny.ipynb\noutput_dir: out/{stem}\nruns:\n{runs}")
        files.append(path)
    return files


def dask_measurement(*, enabled: bool = True, n_runs: int = 4, workers: int = 2) -> pd.DataFrame:
    """Time ``n_runs`` tiny notebooks one after another, then on a local Dask cluster of ``workers``.

    With ``enabled=False`` nothing runs and the table says so (a build that skips the measurement).
    """
    if not enabled:
        return pd.DataFrame({"executor": ["not measured in this build (dask_demo = False)"]})
    from distributed import Client, LocalCluster

    local_plan, dask_plan = _tiny_project(Path(tempfile.mkdtemp(prefix="dask-demo-")), n_runs)
    start = time.perf_counter()
    results = scheduler.run_plan(plans.load_plan(local_plan), progress=False)
    rows = [{"executor": "one process", "runs": len(results), "wall seconds": round(time.perf_counter() - start, 1),
             "notebook seconds": round(sum(r.seconds for r in results), 1)}]
    start = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        cluster_start = time.perf_counter() - start
        results = scheduler.run_plan(plans.load_plan(dask_plan), executor="dask", scheduler=client, progress=False)
    rows.append({"executor": f"dask, {workers} workers", "runs": len(results),
                 "wall seconds": round(time.perf_counter() - start, 1),
                 "notebook seconds": round(sum(r.seconds for r in results), 1),
                 "of which cluster start": round(cluster_start, 1)})
    return pd.DataFrame(rows)


def screenshots(folder: str | os.PathLike = SCREENSHOT_DIR, *, width: int = 640) -> tuple[str, list]:
    """Markdown saying what and when, and the browser check's screenshots as IPython images (none: how to get them).

    The check builds the book first and photographs it afterwards, so a build shows
    the screenshots of the build the last check made.
    """
    from datetime import datetime, timezone

    from IPython.display import Image

    found = [(Path(folder) / name, what) for name, what in SCREENSHOTS.items() if (Path(folder) / name).is_file()]
    if not found:
        return ("No screenshots yet. The browser check (`pytest tests/book/test_book.py`, part of `make test`) "
                "builds the book, opens every page in Chromium and photographs the pages listed here; the next "
                "build shows them.", [])
    taken = datetime.fromtimestamp(max(p.stat().st_mtime for p, _ in found), tz=timezone.utc)
    listed = "; ".join(f"{k}. {what}" for k, (_, what) in enumerate(found, 1))
    note = (f"Taken in headless Chromium by the browser check on {taken:%Y-%m-%d %H:%M} UTC, of the build it "
            f"checked: {listed}.")
    return note, [Image(filename=str(p), width=width) for p, _ in found]
