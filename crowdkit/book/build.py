"""The whole book: every plan's runs, then the HTML with Jupyter Book."""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from crowdkit.book.execute import DEFAULT_KERNEL, RunResult
from crowdkit.book.plans import RunSpec, discover_plans, load_plan, relative_path
from crowdkit.book.scheduler import run_specs
from crowdkit.common.run_tables import DOWNLOAD_SUFFIXES
from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError, CrowdkitError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the book

@dataclass(frozen=True)
class BookResult:
    runs: tuple[RunResult, ...]
    skipped_plans: tuple[str, ...]  # plans (or runs) left out because their notebook does not exist yet
    html_dir: Path
    seconds_runs: float
    seconds_html: float


def book_specs(root: str | os.PathLike | None = None, profile: str = "default") -> tuple[list[RunSpec], list[str]]:
    """Every run of every plan in ``data/plans`` for ``profile``, in plan order, and what was left out.

    Runs whose notebook does not exist yet are left out with a warning (and
    so are runs depending on them), so the book builds before every chapter
    has landed. Summary plans (``summary: true``: the crowd summary, the
    reproducibility appendix) depend on every run of the plans before them.
    """
    root = Path(root).resolve() if root else config.PROJECT_ROOT
    plans = sorted((load_plan(p, profile, root=root) for p in discover_plans(root)), key=lambda p: (p.order, p.name))
    specs: list[RunSpec] = []
    left_out: list[str] = []
    for plan in plans:
        absent = {r.key for r in plan.runs if not r.notebook.is_file()}
        changed = True
        while changed:  # runs depending on a left-out run are left out too
            changed = False
            for run in plan.runs:
                if run.key not in absent and any(d in absent for d in run.depends_on):
                    absent.add(run.key)
                    changed = True
        for notebook in sorted({relative_path(r.notebook, root) for r in plan.runs if r.key in absent}):
            count = sum(r.key in absent and relative_path(r.notebook, root) == notebook for r in plan.runs)
            log.warning("plan %s: notebook %s does not exist yet; its %d run(s) are left out of the book",
                        plan.name, notebook, count)
        left_out += sorted(absent)
        specs += [r for r in plan.runs if r.key not in absent]
    outputs: dict[Path, str] = {}
    for spec in specs:
        other = outputs.setdefault(spec.output_path, spec.key)
        if other != spec.key:
            raise ConfigError(f"runs {other} and {spec.key} would both write {spec.output_path}: "
                              "give their plans different output_dir or the runs different names")
    # A summary page reads what runs before it: it waits for every other run and for the summary
    # pages of plans ordered before its own (and re-runs when one of them changed).
    others = [s for s in specs if not s.summary]
    ordered = list(others)
    for summary in (s for s in specs if s.summary):
        before = tuple(s.key for s in ordered if s.plan != summary.plan)
        ordered.append(replace(summary, depends_on=tuple(dict.fromkeys(summary.depends_on + before))))
    return ordered, left_out


def _put_aside_unselected(specs: Sequence[RunSpec], root: Path) -> None:
    """Move finished outputs of runs not in this build out of the book (to ``book/runs/.unused``).

    A quick build then shows only its own runs; a later build that selects a
    run again gets it back (and skips it if its content hash still matches).
    """
    wanted: dict[Path, set[str]] = {}
    for spec in specs:
        wanted.setdefault(spec.output_dir, set()).add(spec.name)
    unused_root = root / "book" / "runs" / ".unused"
    for output_dir, names in wanted.items():
        aside = unused_root / relative_path(output_dir, root).replace("/", "__")
        for name in names:  # bring selected runs back
            for suffix in (".ipynb", ".run.json", ""):
                source = aside / f"{name}{suffix}"
                if source.exists() and not (output_dir / f"{name}{suffix}").exists():
                    os.replace(source, output_dir / f"{name}{suffix}")
        if not output_dir.is_dir():
            continue
        for sidecar in output_dir.glob("*.run.json"):
            name = sidecar.name[: -len(".run.json")]
            if name in names:
                continue
            aside.mkdir(parents=True, exist_ok=True)
            for suffix in (".ipynb", ".run.json", ".failed.ipynb", ""):
                source = output_dir / f"{name}{suffix}"
                if source.exists():
                    target = aside / source.name
                    if target.is_dir():
                        shutil.rmtree(target)
                    os.replace(source, target)
            log.info("%s/%s is not part of this build: moved to %s", relative_path(output_dir, root), name,
                     relative_path(aside, root))


def build_html(root: str | os.PathLike | None = None) -> Path:
    """``jupyter-book build`` the project (Jupyter Book 1.x); returns ``_build/html``."""
    import subprocess
    import sys

    root = Path(root).resolve() if root else config.PROJECT_ROOT
    executable = Path(sys.executable).parent / "jupyter-book"
    command = [str(executable) if executable.exists() else "jupyter-book", "build", str(root)]
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-30:])
        raise CrowdkitError(f"`{' '.join(command)}` failed (exit {completed.returncode}):\n{tail}")
    warnings = [line for line in completed.stdout.splitlines() + completed.stderr.splitlines() if "WARNING" in line]
    for line in warnings:
        log.warning("jupyter-book: %s", line.strip())
    html = root / "_build" / "html"
    copy_run_tables(root / "book" / "runs", html / "book" / "runs")
    return html


def copy_run_tables(runs: Path, target: Path) -> int:
    """Copy every run's saved tables (``<plan>/<run>/*.csv|parquet``) beside its page in the HTML; returns how many."""
    copied = 0
    for file in sorted(runs.glob("*/*/*")):
        if file.suffix not in DOWNLOAD_SUFFIXES or ".staging" in file.parts or not file.is_file():
            continue
        destination = target / file.relative_to(runs)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, destination)
        copied += 1
    return copied


def build_book(root: str | os.PathLike | None = None, *, profile: str = "default", jobs: int = 1,
               executor: str = "local", scheduler: Any = None, kernel: str = DEFAULT_KERNEL, force: bool = False,
               html: bool = True, progress: bool = True) -> BookResult:
    """Run every plan for ``profile`` (unchanged runs skipped), then build the HTML book."""
    root = Path(root).resolve() if root else config.PROJECT_ROOT
    specs, left_out = book_specs(root, profile)
    _put_aside_unselected(specs, root)
    started = time.perf_counter()
    results = run_specs(specs, jobs=jobs, executor=executor, scheduler=scheduler, kernel=kernel, force=force,
                        progress=progress)
    seconds_runs = time.perf_counter() - started
    started = time.perf_counter()
    html_dir = build_html(root) if html else root / "_build" / "html"
    return BookResult(tuple(results), tuple(left_out), html_dir, seconds_runs, time.perf_counter() - started)
