"""One setup call for every notebook: ``crowdkit.book.notebook.setup_notebook()``.

What every chapter needs before its first result, in one place instead of
copied into each notebook:

- the working folder is the project root, so the plan files' relative paths
  (``book/runs/crowd``, ``data/reported/…``) mean the same whether papermill
  runs the notebook or a person opens it in JupyterLab from ``notebooks/…``;
- ``TF_USE_LEGACY_KERAS=1`` before anything imports TensorFlow (retinaface
  breaks otherwise);
- during a book build (``CROWDKIT_RUN_DIR`` set by the runner) no progress
  bars, and the library's log records go to ``<run_dir>/run.log`` instead of
  the page; interactively, warnings are shown and tqdm draws its bars;
- pandas display options that fit a book page and one plotting theme.

Example
-------
>>> from crowdkit.book.notebook import setup_notebook
>>> session = setup_notebook()          # doctest: +SKIP
>>> session.in_build                    # doctest: +SKIP
False
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from crowdkit.common import config

#: Environment variable the book runner sets in each run's kernel.
RUN_DIR_ENV = "CROWDKIT_RUN_DIR"
#: The log file of a run inside its run folder.
LOG_NAME = "run.log"

_HANDLER_NAME = "crowdkit-notebook"


@dataclass(frozen=True)
class NotebookSession:
    """What :func:`setup_notebook` decided."""

    project_root: Path
    in_build: bool  # True inside ``crowdkit run`` / ``make book``
    run_dir: Path | None  # the run's folder (tables, log) during a build
    log_path: Path | None  # where the library's log records go during a build


def setup_notebook(*, run_dir: str | os.PathLike | None = None, theme: bool = True) -> NotebookSession:
    """Prepare a notebook's process: working folder, environment, logging, warnings, display, plots.

    Parameters
    ----------
    run_dir
        The run's folder, when the notebook's parameters cell declares
        ``run_dir``; else ``$CROWDKIT_RUN_DIR`` is used (set by the runner).
    theme
        Apply seaborn's ``whitegrid`` theme and the book's figure defaults.

    Returns
    -------
    NotebookSession
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    root = config.project_root()  # the build's root in a runner's kernel, so relative run paths point into it
    os.chdir(root)
    run_folder = run_dir or os.environ.get(RUN_DIR_ENV)
    folder = (root / run_folder) if run_folder else None
    in_build = folder is not None
    if in_build:
        os.environ["TQDM_DISABLE"] = "1"
    warnings.filterwarnings("ignore", message="IProgress not found")
    log_path = _route_logging(folder)
    _display_options()
    if theme:
        _plot_theme()
    return NotebookSession(project_root=root, in_build=in_build, run_dir=folder, log_path=log_path)


def _route_logging(folder: Path | None) -> Path | None:
    """Build: every record of the library (and of Python's warnings) into the run's log file; else stderr."""
    logger = logging.getLogger()
    for handler in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
        handler.close()
    if folder is None:
        handler: logging.Handler = logging.StreamHandler()
        handler.setLevel(logging.WARNING)
        log_path = None
    else:
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / LOG_NAME
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setLevel(logging.INFO)
        # A handler on the root logger keeps Python from printing records on stderr (the page).
        for other in list(logger.handlers):
            logger.removeHandler(other)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if folder is not None else logging.WARNING)
    logging.captureWarnings(folder is not None)
    return log_path


def _display_options() -> None:
    import pandas as pd

    pd.set_option("display.max_columns", 20)
    pd.set_option("display.width", 120)
    pd.set_option("display.max_rows", 60)
    pd.set_option("display.precision", 4)


def _plot_theme() -> None:
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    plt.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight"})
