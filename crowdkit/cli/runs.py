"""``crowdkit run PLAN.yaml`` and ``crowdkit book build``."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from crowdkit.common.exceptions import ConfigError


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="execute a run plan's notebooks with papermill",
                                description="Execute a plan's notebooks with papermill; unchanged runs are skipped.")
    run.add_argument("plan", type=Path, help="plan file, e.g. data/plans/crowd.yaml")
    run.add_argument("--only", action="append", default=[], metavar="NAME",
                     help="run only this run (fnmatch pattern; repeatable); its dependencies come along")
    _common(run)
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="override a parameter for every run (VALUE is read as YAML: 0.65, true, [a, b])")
    run.add_argument("-f", "--parameters-file", type=Path, help="YAML file of parameter overrides")
    run.set_defaults(handler=_run)

    book = subparsers.add_parser("book", help="build the book: every plan, then Jupyter Book")
    verbs = book.add_subparsers(dest="verb", required=True)
    build = verbs.add_parser("build", help="run every plan in data/plans, then `jupyter-book build`")
    _common(build)
    build.add_argument("--root", type=Path, default=None, help="project folder (default: this checkout)")
    build.add_argument("--no-html", action="store_true", help="run the notebooks only")
    build.set_defaults(handler=_book_build)
    compare = verbs.add_parser("compare", help="compare two builds' saved tables and printed numbers",
                               description="Compare two book/runs folders: saved tables must be equal, and each "
                                           "page should print the same decimal numbers. Exit 1 when they differ.")
    compare.add_argument("before", help="book/runs folder of the first build")
    compare.add_argument("after", help="book/runs folder of the second build")
    compare.set_defaults(handler=_book_compare)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", help="quick, default or full (default: default)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run in parallel (default 1)")
    parser.add_argument("--executor", choices=("local", "dask"), default="local")
    parser.add_argument("--scheduler", help="Dask scheduler address for --executor dask (tcp://HOST:8786)")
    parser.add_argument("--kernel", default="crowdkit", help="Jupyter kernel name (default: crowdkit)")
    parser.add_argument("--force", action="store_true", help="re-run even unchanged runs")


def _overrides(args) -> dict:
    overrides = {}
    if args.parameters_file:
        try:
            loaded = yaml.safe_load(args.parameters_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"cannot read parameters file {args.parameters_file}: {error}") from error
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.parameters_file} must hold a mapping of parameter: value")
        overrides.update(loaded)
    for name, value in args.parameter:
        overrides[name] = yaml.safe_load(value)
    return overrides


def _interruptible() -> None:
    """Ctrl-C stops a run even when the shell started crowdkit with SIGINT ignored (a background job), and so
    does ``kill`` (SIGTERM, e.g. from a CI timeout): both stop the kernels and keep what finished. Left to its
    default, SIGTERM ended this process alone and its kernels ran on."""
    import signal

    from crowdkit.book.scheduler import raise_keyboard_interrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)


def _quiet_papermill(args) -> None:
    """papermill logs every notebook's paths at INFO; the progress bar already says which runs."""
    if not getattr(args, "verbose", False):
        logging.getLogger("papermill").setLevel(logging.WARNING)


def _run(args) -> int:
    from crowdkit.book import plans, scheduler

    _quiet_papermill(args)
    _interruptible()
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    plan = plans.load_plan(args.plan, args.profile, overrides=_overrides(args)).select(args.only)
    results = scheduler.run_plan(plan, jobs=args.jobs, executor=args.executor, scheduler=args.scheduler,
                            kernel=args.kernel, force=args.force)
    print(scheduler.format_timings(results))
    return 0


def _book_build(args) -> int:
    from crowdkit.book import build, scheduler

    _quiet_papermill(args)
    _interruptible()
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    result = build.build_book(args.root, profile=args.profile, jobs=args.jobs, executor=args.executor,
                             scheduler=args.scheduler, kernel=args.kernel, force=args.force, html=not args.no_html)
    print(scheduler.format_timings(result.runs))
    if result.skipped_plans:
        print(f"left out (notebook not written yet): {len(result.skipped_plans)} runs")
    print(f"notebooks: {result.seconds_runs:.1f} s, HTML: {result.seconds_html:.1f} s"
          + ("" if args.no_html else f" -> {result.html_dir / 'index.html'}"))
    return 0


def _book_compare(args) -> int:
    from crowdkit.book.compare import compare_builds

    comparison = compare_builds(args.before, args.after)
    print(comparison.report())
    return 0 if comparison.same else 1
