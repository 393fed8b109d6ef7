"""Run plans: a notebook × parameter sets, executed with papermill, skipped when nothing changed.

A plan is a YAML file under ``data/plans/``::

    description: one line shown in logs
    notebook: notebooks/crowd/crowd_run.ipynb   # relative to the project root
    output_dir: book/runs/crowd                 # executed notebooks land here
    order: 20                                    # plans run in this order (default 50)
    summary: false                               # true: a page collecting earlier runs (see below)
    rerun: changed                               # or "always"
    title: "{member}: {challenge}"               # page title (parameters and {name}); optional
    parameters: {stride: 2}                      # defaults for every run
    profiles:                                    # overrides per profile
      quick: {parameters: {max_frames: 60}, runs: [alice-normal]}
      default: {}
      full: {parameters: {stride: 1}}
    runs:
      - name: alice-normal
        parameters: {member: alice, challenge: normal}
        # optional: title, notebook (another notebook), depends_on: [other run names]

A summary plan (``summary: true``: the crowd summary, the appendix) runs, in
``crowdkit book build``, after every run of the plans before it, and its hash
includes theirs: it re-runs exactly when one of them changed. Run on its own
(``crowdkit run``) it cannot know what it summarises, so it always runs.

Parameters are merged plan < run < profile < command line. Every run is
executed with the working directory at the project root, so relative paths in
parameters mean the same thing on the command line and inside the notebook,
and gets one more parameter, ``run_dir`` (when its parameters cell declares
it; the environment variable ``CROWDKIT_RUN_DIR`` always): a folder beside the
executed notebook where :func:`save_run_table` keeps the run's tables for summary pages.

For every run the executor writes ``<output_dir>/<run>.ipynb`` (only when the
notebook finished) and ``<output_dir>/<run>.run.json`` (parameters, content
hash, package versions, data checksums, timing, status). A run whose content
hash (notebook bytes, parameters, input files, crowdkit version and source,
dependencies' hashes) equals the one recorded is skipped.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextvars
import datetime as dt
import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml
from tqdm.auto import tqdm

from crowdkit import __version__
from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError, CrowdkitError, RunFailedError
from crowdkit.common.io import sha256_bytes, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

#: Jupyter kernel every run uses (registered by ``make setup``).
DEFAULT_KERNEL = "crowdkit"
#: Parameter injected into every run: the folder for the run's tables.
RUN_DIR_PARAMETER = "run_dir"
#: Folder (inside a plan's output_dir) where notebooks are executed before they are final.
STAGING = ".staging"

_PLAN_KEYS = {"description", "notebook", "output_dir", "order", "rerun", "summary", "title", "parameters", "profiles",
              "runs"}
_RUN_KEYS = {"name", "title", "parameters", "notebook", "depends_on"}
_PROFILE_KEYS = {"parameters", "runs"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------- plans

@dataclass(frozen=True)
class RunSpec:
    """One notebook execution: everything needed to run it, and where its results go."""

    plan: str
    name: str
    notebook: Path  # absolute
    parameters: dict[str, Any]  # merged, without run_dir
    output_dir: Path  # absolute
    root: Path  # project root: the working directory of the kernel
    depends_on: tuple[str, ...] = ()  # keys ("plan/name") of runs that must finish first
    always: bool = False  # re-run even when nothing changed
    summary: bool = False  # collects earlier runs: runs after them, re-runs when one of them changed
    profile: str = "default"
    title: str = ""  # page title: replaces the executed notebook's first "# " heading ("" keeps it)

    @property
    def key(self) -> str:
        return f"{self.plan}/{self.name}"

    @property
    def output_path(self) -> Path:
        return self.output_dir / f"{self.name}.ipynb"

    @property
    def failed_path(self) -> Path:
        return self.output_dir / f"{self.name}.failed.ipynb"

    @property
    def sidecar_path(self) -> Path:
        return self.output_dir / f"{self.name}.run.json"

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.name


@dataclass(frozen=True)
class Plan:
    name: str
    path: Path
    profile: str
    runs: tuple[RunSpec, ...]
    output_dir: Path
    order: int = 50
    description: str = ""

    def select(self, patterns: Sequence[str]) -> "Plan":
        """The plan restricted to runs matching any of ``patterns`` (fnmatch), plus their dependencies."""
        if not patterns:
            return self
        chosen = {r.key for r in self.runs if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)}
        if not chosen:
            known = ", ".join(r.name for r in self.runs)
            raise ConfigError(f"{self.path}: no run matches {list(patterns)}; runs are: {known}")
        by_key = {r.key: r for r in self.runs}
        stack = list(chosen)
        while stack:
            for dep in by_key[stack.pop()].depends_on:
                if dep in by_key and dep not in chosen:
                    chosen.add(dep)
                    stack.append(dep)
        return replace(self, runs=tuple(r for r in self.runs if r.key in chosen))


def _check_keys(found: Mapping, allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(found) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} in {where} (allowed: {', '.join(sorted(allowed))})")


def _mapping(value: Any, where: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: {where} must be a mapping of name: value, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(f"{path}: {where} has {key!r}, which is not a valid Python parameter name")
    return dict(value)


def _project_of(plan_path: Path) -> Path:
    """The project a plan belongs to: ``<root>/data/plans/x.yaml`` → ``<root>``, else this checkout."""
    folder = plan_path.resolve().parent
    if folder.name == "plans" and folder.parent.name == "data":
        return folder.parent.parent
    return config.PROJECT_ROOT


def load_plan(path: str | os.PathLike, profile: str = "default", *, root: str | os.PathLike | None = None,
              overrides: Mapping[str, Any] | None = None) -> Plan:
    """Read and validate a plan; parameters merged for ``profile`` and ``overrides`` (command line).

    Unknown keys, a missing notebook entry, duplicate run names and unknown
    profiles raise :class:`~crowdkit.common.exceptions.ConfigError` naming the file
    and the key. The notebook need not exist yet (``crowdkit book build``
    skips such plans with a warning; ``crowdkit run`` refuses them).
    """
    path = Path(path)
    root = Path(root).resolve() if root else _project_of(path)
    if not path.is_file():
        raise ConfigError(f"plan {path} does not exist (plans live in {root / 'data' / 'plans'})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: a plan is a mapping with keys {', '.join(sorted(_PLAN_KEYS))}")
    _check_keys(raw, _PLAN_KEYS, "the plan", path)
    name = path.stem
    if "output_dir" not in raw:
        raise ConfigError(f"{path}: missing key 'output_dir' (e.g. book/runs/{name})")
    output_dir = (root / raw["output_dir"]).resolve()
    rerun = raw.get("rerun", "changed")
    if rerun not in ("changed", "always"):
        raise ConfigError(f"{path}: rerun must be 'changed' or 'always', got {rerun!r}")
    base = _mapping(raw.get("parameters"), "parameters", path)

    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"{path}: profiles must be a mapping of profile name to overrides")
    if profiles and profile not in profiles and profile != "default":  # a plan without profiles runs alike in all
        raise ConfigError(f"{path}: unknown profile {profile!r} (known: {', '.join(sorted(set(profiles) | {'default'}))})")
    for profile_name, entry in profiles.items():  # every profile is checked, not only the one asked for
        if not isinstance(entry, (Mapping, type(None))):
            raise ConfigError(f"{path}: profile {profile_name!r} must be a mapping with 'parameters' and/or 'runs'")
        _check_keys(entry or {}, _PROFILE_KEYS, f"profile {profile_name!r}", path)
    chosen = profiles.get(profile) or {}
    profile_params = _mapping(chosen.get("parameters"), f"profiles.{profile}.parameters", path)
    extra = _mapping(overrides, "command-line parameters", path)

    entries = raw.get("runs")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: 'runs' must be a non-empty list of {{name, parameters}}")
    runs, seen = [], set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ConfigError(f"{path}: runs[{index}] must be a mapping with at least 'name'")
        _check_keys(entry, _RUN_KEYS, f"runs[{index}] ({entry.get('name')})", path)
        run_name = str(entry["name"])
        if not _NAME.match(run_name):
            raise ConfigError(f"{path}: run name {run_name!r} may hold only letters, digits, '_', '-', '.'")
        if run_name in seen:
            raise ConfigError(f"{path}: run name {run_name!r} appears twice")
        seen.add(run_name)
        notebook = entry.get("notebook", raw.get("notebook"))
        if not notebook:
            raise ConfigError(f"{path}: run {run_name!r} has no notebook (set 'notebook' on the plan or the run)")
        params = {**base, **_mapping(entry.get("parameters"), f"runs[{index}].parameters", path),
                  **profile_params, **extra}
        if RUN_DIR_PARAMETER in params:
            raise ConfigError(f"{path}: {RUN_DIR_PARAMETER!r} is set by crowdkit for every run; do not set it")
        title = entry.get("title", raw.get("title", ""))
        try:
            title = str(title).format(name=run_name, **params) if title else ""
        except (KeyError, IndexError, ValueError) as error:
            raise ConfigError(f"{path}: title {title!r} of run {run_name!r} names {error}, which is not a parameter")
        depends = entry.get("depends_on") or []
        if isinstance(depends, str):
            depends = [depends]
        runs.append(RunSpec(plan=name, name=run_name, notebook=(root / notebook).resolve(), parameters=params,
                            output_dir=output_dir, root=root, depends_on=tuple(f"{name}/{d}" for d in depends),
                            always=rerun == "always", summary=bool(raw.get("summary", False)), profile=profile,
                            title=title))
    for run in runs:
        for dep in run.depends_on:
            if dep.split("/", 1)[1] not in seen:
                raise ConfigError(f"{path}: run {run.name!r} depends on {dep.split('/', 1)[1]!r}, which is not a run of this plan")
    selection = chosen.get("runs")
    plan = Plan(name=name, path=path.resolve(), profile=profile, runs=tuple(runs), output_dir=output_dir,
                order=int(raw.get("order", 50)), description=str(raw.get("description", "")))
    if selection:
        plan = plan.select([str(s) for s in selection])
    return plan


def discover_plans(root: str | os.PathLike | None = None) -> list[Path]:
    root = Path(root) if root else config.PROJECT_ROOT
    return sorted((root / "data" / "plans").glob("*.yaml"))


# --------------------------------------------------------------------------- hashing

@functools.lru_cache(maxsize=None)
def crowdkit_source_hash() -> str:
    """sha256 over every ``crowdkit/**/*.py`` (path and bytes): a code change re-runs the book."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        digest.update(file.relative_to(package).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _data_root() -> Path | None:
    try:
        return config.data_root()
    except CrowdkitError:
        return None


def _folder_fingerprint(folder: Path) -> str:
    """A dataset folder is identified by its data root's SHA256SUMS; other folders by names, sizes, mtimes."""
    data = _data_root()
    if data is not None and (data / "SHA256SUMS").is_file() and folder.resolve().is_relative_to(data):
        return "SHA256SUMS:" + sha256_file(data / "SHA256SUMS")
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "listing:" + digest.hexdigest()


def input_checksums(parameters: Mapping[str, Any], root: Path) -> dict[str, str]:
    """Checksums of the files and folders that parameter values name (strings or lists of strings).

    A relative value is resolved against ``root`` (the kernel's working
    directory). Files get their sha256; folders the fingerprint of
    :func:`_folder_fingerprint`. Values that name nothing on disk are ignored,
    and so is anything under ``book/runs``: runs' outputs are covered by the
    hashes of the runs that made them (a summary page depends on those runs).
    """
    found: dict[str, str] = {}
    outputs = (root / "book" / "runs").resolve()

    def visit(value: Any) -> None:
        if isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, str) and value.strip() and len(value) < 4096:
            candidate = Path(value).expanduser()
            candidate = candidate if candidate.is_absolute() else root / candidate
            try:
                if candidate.resolve().is_relative_to(outputs):
                    return
                if candidate.is_file():
                    found[value] = sha256_file(candidate)
                elif candidate.is_dir():
                    found[value] = _folder_fingerprint(candidate)
            except OSError:  # a name too long for the file system, a permission problem: not an input
                pass

    for value in parameters.values():
        visit(value)
    return found


def content_hash(spec: RunSpec, dependency_hashes: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """The hash that decides whether ``spec`` must run, and what went into it."""
    if not spec.notebook.is_file():
        raise ConfigError(f"{spec.key}: notebook {spec.notebook} does not exist")
    parts = {
        "notebook": sha256_file(spec.notebook),
        "parameters": json.loads(json.dumps(spec.parameters, sort_keys=True, default=str)),
        "inputs": input_checksums(spec.parameters, spec.root),
        "crowdkit_version": __version__,
        "crowdkit_source": crowdkit_source_hash(),
        "dependencies": dict(sorted((dependency_hashes or {}).items())),
        "title": spec.title,
    }
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode()), parts


def read_sidecar(spec: RunSpec) -> dict[str, Any]:
    try:
        return json.loads(spec.sidecar_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- run tables

def save_run_table(name: str, table, *, run_dir: str | os.PathLike | None = None) -> Path:
    """Save a run's table as ``<run_dir>/<name>.parquet`` (atomically) for summary pages.

    ``run_dir`` defaults to the run's folder: crowdkit injects it as the
    papermill parameter ``run_dir`` and sets ``CROWDKIT_RUN_DIR`` in the
    kernel's environment, so ``save_run_table("metrics", df)`` is enough inside
    a plan's run. Outside a plan (interactive use) the table goes to
    ``$CROWDKIT_HOME/cache/interactive-runs``.
    """
    if not _NAME.match(name):
        raise ConfigError(f"table name {name!r} may hold only letters, digits, '_', '-', '.'")
    run_dir = run_dir or os.environ.get("CROWDKIT_RUN_DIR")
    folder = Path(run_dir) if run_dir else config.cache_dir("interactive-runs")
    from crowdkit.common.io import atomic_path

    target = folder / f"{name}.parquet"
    with atomic_path(target) as tmp:
        table.to_parquet(tmp, index=False)
    return target


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


# --------------------------------------------------------------------------- execution

@dataclass(frozen=True)
class RunResult:
    key: str
    notebook: str
    status: str  # "ran" or "skipped" (a failure raises RunFailedError)
    seconds: float  # for a skipped run: the time it took when it last ran
    output_path: Path
    content_hash: str


@functools.lru_cache(maxsize=1)
def _kernel_manager_class():
    """An AsyncKernelManager that talks to its kernel over Unix sockets in a private folder.

    The known parallel-papermill race (jupyter_client picks free TCP ports,
    releases them, the kernel binds them later; two kernels starting together
    pick the same port: ``ZMQError: Address already in use``, papermill#511)
    cannot happen without TCP ports, and a private folder per kernel keeps the
    connection and socket files of concurrent kernels apart.
    """
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class IsolatedKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self) -> str:
            return "ipc"

        @default("connection_file")
        def _default_connection_file(self) -> str:
            folder = tempfile.mkdtemp(prefix="ck-kernel-")
            return os.path.join(folder, "kernel.json")

        #: Extra environment for the kernel (a subclass per run sets CROWDKIT_RUN_DIR).
        crowdkit_env: dict[str, str] = {}

        async def _async_launch_kernel(self, kernel_cmd, **kw) -> None:
            kw["env"] = {**(kw.get("env") or os.environ), **self.crowdkit_env}
            await super()._async_launch_kernel(kernel_cmd, **kw)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            folder = os.path.dirname(self.connection_file)
            await super()._async_cleanup_resources(restart=restart)
            if not restart and os.path.basename(folder).startswith("ck-kernel-"):
                shutil.rmtree(folder, ignore_errors=True)

    return IsolatedKernelManager


def _run_kernel_manager_class(run_dir: Path):
    """The isolated kernel manager, with ``CROWDKIT_RUN_DIR`` set in the kernel's environment."""
    base = _kernel_manager_class()
    return type("RunKernelManager", (base,), {"crowdkit_env": {"CROWDKIT_RUN_DIR": str(run_dir)}})


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def execute_run(spec: RunSpec, *, dependency_hashes: Mapping[str, str] | None = None, kernel: str = DEFAULT_KERNEL,
                force: bool = False, log_output: bool = False) -> RunResult:
    """Execute one run with papermill, or skip it when its content hash is unchanged.

    The notebook is executed into ``<output_dir>/.staging/`` and moved to
    ``<output_dir>/<run>.ipynb`` only when every cell succeeded. On failure
    the partial notebook is kept as ``<run>.failed.ipynb``, an older finished
    notebook of the same run is removed (it no longer matches its inputs),
    the sidecar records the error, and :class:`RunFailedError` names the
    notebook, the cell and the error.
    """
    digest, parts = content_hash(spec, dependency_hashes)
    sidecar = read_sidecar(spec)
    always = spec.always or (spec.summary and not dependency_hashes)  # a summary run alone: always
    if (not force and not always and sidecar.get("status") == "ok"
            and sidecar.get("content_hash") == digest and spec.output_path.is_file()):
        return RunResult(spec.key, _relative(spec.notebook, spec.root), "skipped",
                         float(sidecar.get("seconds", 0.0)), spec.output_path, digest)

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from crowdkit.common.provenance import package_versions

    staging = spec.output_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    partial = staging / f"{spec.name}.{uuid.uuid4().hex[:8]}.ipynb"
    if spec.run_dir.exists():
        shutil.rmtree(spec.run_dir)
    spec.run_dir.mkdir(parents=True)
    # relative to the kernel's working directory (the project root): the page shows no machine's paths.
    # Only a notebook whose parameters cell declares run_dir gets it (the others read CROWDKIT_RUN_DIR).
    parameters = dict(spec.parameters)
    if RUN_DIR_PARAMETER in pm.inspect_notebook(str(spec.notebook)):
        parameters[RUN_DIR_PARAMETER] = _relative(spec.run_dir, spec.root)
    record: dict[str, Any] = {
        "plan": spec.plan, "run": spec.name, "profile": spec.profile,
        "notebook": _relative(spec.notebook, spec.root), "output": _relative(spec.output_path, spec.root),
        "parameters": parameters, "content_hash": digest, "hash_inputs": parts,
        "crowdkit_version": __version__, "packages": package_versions(),
        "data_checksums": parts["inputs"], "kernel": kernel, "host": socket.gethostname(),
        "started": _now(),
    }
    started = time.perf_counter()
    error_message = ""
    try:
        pm.execute_notebook(str(spec.notebook), str(partial), parameters=parameters, kernel_name=kernel,
                            cwd=str(spec.root), progress_bar=False, log_output=log_output,
                            kernel_manager_class=_run_kernel_manager_class(spec.run_dir))
    except PapermillExecutionError as error:
        error_message = (f"{record['notebook']} ({spec.key}) failed in cell {error.cell_index} "
                         f"(execution count {error.exec_count}): {error.ename}: {error.evalue}")
    except Exception as error:  # kernel missing or dead, unreadable notebook: same handling, named
        error_message = f"{record['notebook']} ({spec.key}) could not be executed: {type(error).__name__}: {error}"
        if type(error).__name__ == "NoSuchKernel":
            error_message += (f" (register the kernel: `make setup`, or `python -m ipykernel install --sys-prefix "
                              f"--name {kernel}` with the project's Python)")
    seconds = time.perf_counter() - started
    record.update(finished=_now(), seconds=round(seconds, 3))
    if error_message:
        if partial.is_file():
            os.replace(partial, spec.failed_path)
        spec.output_path.unlink(missing_ok=True)
        kept = _relative(spec.failed_path, spec.root) if spec.failed_path.is_file() else "none"
        record.update(status="failed", error=error_message, failed_output=kept)
        write_json_atomic(spec.sidecar_path, record)
        raise RunFailedError(f"{error_message}. Partial output kept at {kept} for inspection.")
    if spec.title:
        _set_title(partial, spec.title)
    os.replace(partial, spec.output_path)
    spec.failed_path.unlink(missing_ok=True)
    record.update(status="ok")
    write_json_atomic(spec.sidecar_path, record)
    return RunResult(spec.key, record["notebook"], "ran", seconds, spec.output_path, digest)


def _set_title(path: Path, title: str) -> None:
    """Give an executed notebook its page title: the first ``# `` heading becomes ``# title``.

    Jupyter Book names a page after its first heading; runs of one notebook
    would otherwise all carry the same name in the book's navigation.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for index, line in enumerate(lines):
            if line.startswith("# "):
                lines[index] = f"# {title}"
                cell.source = "\n".join(lines)
                nbformat.write(nb, path)
                return
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {title}"))
    nbformat.write(nb, path)


def _execute_job(spec: RunSpec, dependency_hashes: dict[str, str], kernel: str, force: bool,
                 delay: float) -> RunResult:
    """Worker entry point (process pool or Dask worker): stagger, then execute.

    The run gets a fresh ``contextvars`` context: jupyter_core keeps the event
    loop that drives the kernel client in a context variable, and Dask worker
    threads can inherit one another's, so two runs in two threads of one
    worker would share (and fight over) one loop.
    """
    if delay > 0:
        time.sleep(delay)
    return contextvars.Context().run(execute_run, spec, dependency_hashes=dependency_hashes, kernel=kernel,
                                     force=force)


@dataclass
class _Executor:
    """Submits jobs in-process (jobs=1), to a process pool, or to a Dask cluster."""

    kind: str
    jobs: int
    scheduler: Any = None
    _pool: Any = field(default=None, init=False)
    _client: Any = field(default=None, init=False)

    def __enter__(self) -> "_Executor":
        if self.kind == "dask":
            try:
                from distributed import Client
            except ImportError as error:  # pragma: no cover - pinned in requirements.txt
                raise ConfigError("the dask executor needs `pip install 'dask[distributed]'`") from error
            if self.scheduler is None:
                raise ConfigError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
            self._client = self.scheduler if isinstance(self.scheduler, Client) else Client(self.scheduler)
            self._pool = self._client.get_executor(pure=False)
        elif self.kind == "local":
            if self.jobs > 1:
                import multiprocessing

                self._pool = cf.ProcessPoolExecutor(max_workers=self.jobs,
                                                    mp_context=multiprocessing.get_context("spawn"))
        else:
            raise ConfigError(f"unknown executor {self.kind!r} (known: local, dask)")
        return self

    @property
    def capacity(self) -> int:
        if self.kind == "dask":
            return max(1, sum(self._client.nthreads().values()))
        return max(1, self.jobs)

    def submit(self, *args) -> cf.Future:
        if self._pool is not None:
            return self._pool.submit(_execute_job, *args)
        future: cf.Future = cf.Future()
        try:
            future.set_result(_execute_job(*args))
        except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(error)
        return future

    def __exit__(self, *exc) -> None:
        if isinstance(self._pool, cf.ProcessPoolExecutor):
            self._pool.shutdown(wait=True, cancel_futures=True)
        elif self._pool is not None:  # dask's ClientExecutor: futures not yet run were cancelled above
            self._pool.shutdown(wait=True)
        if self._client is not None and self._client is not self.scheduler:
            self._client.close()


def _chain_lengths(specs: Sequence[RunSpec]) -> dict[str, int]:
    """Per run, the length of the longest chain of runs waiting on it (itself included).

    Ready runs start longest chain first, so a chain of dependent notebooks (the
    bias study) begins at once and runs beside the independent ones instead of after them.
    """
    waiting: dict[str, list[str]] = {s.key: [] for s in specs}
    for spec in specs:
        for dep in spec.depends_on:
            waiting.setdefault(dep, []).append(spec.key)
    lengths: dict[str, int] = {}

    def length(key: str, seen: tuple[str, ...] = ()) -> int:
        if key not in lengths:
            if key in seen:
                raise ConfigError(f"dependency cycle through {key}")
            lengths[key] = 1 + max((length(k, seen + (key,)) for k in waiting.get(key, ())), default=0)
        return lengths[key]

    return {s.key: length(s.key) for s in specs}


def run_specs(specs: Sequence[RunSpec], *, jobs: int = 1, executor: str = "local", scheduler: Any = None,
              kernel: str = DEFAULT_KERNEL, force: bool = False, progress: bool = True,
              stagger: float = 1.0) -> list[RunResult]:
    """Execute runs (dependencies first, independent ones in parallel), skipping unchanged ones.

    ``jobs`` > 1 runs notebooks in separate processes; ``executor="dask"``
    submits them to the Dask cluster at ``scheduler`` (an address or a
    ``distributed.Client``). Parallel kernel starts are staggered by
    ``stagger`` seconds. The first failure stops the build: runs not yet
    started are cancelled, running ones finish, and its
    :class:`RunFailedError` is raised.
    """
    specs = list(specs)
    by_key = {s.key: s for s in specs}
    if len(by_key) != len(specs):
        raise ConfigError("two runs share a plan/run name")
    for spec in specs:
        missing = [d for d in spec.depends_on if d not in by_key]
        if missing:
            raise ConfigError(f"{spec.key} depends on {missing[0]}, which is not among the selected runs")
    chain = _chain_lengths(specs)
    pending = dict(by_key)
    hashes: dict[str, str] = {}
    results: dict[str, RunResult] = {}
    running: dict[cf.Future, str] = {}
    failure: BaseException | None = None
    bar = tqdm(total=len(specs), desc="notebooks", unit="nb", disable=not progress)
    with _Executor(executor, jobs, scheduler) as pool:
        started = 0
        while (pending or running) and failure is None:
            ready = sorted((k for k, s in pending.items() if all(d in hashes for d in s.depends_on)),
                           key=lambda k: -chain[k])
            for key in ready[: max(0, pool.capacity - len(running))]:
                spec = pending.pop(key)
                deps = {d: hashes[d] for d in spec.depends_on}
                delay = stagger * started if (pool._pool is not None and started < pool.capacity) else 0.0
                started += 1
                bar.set_postfix_str(f"{key} ({len(pending) + len(running)} left)", refresh=True)
                future = pool.submit(spec, deps, kernel, force, delay)
                running[future] = key
            if not running:
                if pending:
                    raise ConfigError(f"dependency cycle among {sorted(pending)}")
                break
            done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for future in done:
                key = running.pop(future)
                try:
                    result = future.result()
                except BaseException as error:  # noqa: BLE001 - re-raised after the pool is shut down
                    failure = failure or error
                    continue
                results[key] = result
                hashes[key] = result.content_hash
                bar.update(1)
                left = len(pending) + len(running)
                bar.set_postfix_str(f"{key} {result.status} in {result.seconds:.1f} s ({left} left)", refresh=True)
        if failure is not None:
            for future in running:
                future.cancel()
    bar.close()
    if failure is not None:
        if isinstance(failure, CrowdkitError):
            raise failure
        raise RunFailedError(f"a run could not be executed: {type(failure).__name__}: {failure}") from failure
    return [results[s.key] for s in specs if s.key in results]


def format_timings(results: Iterable[RunResult]) -> str:
    """A plain-text table: run, status, seconds (the time recorded when a skipped run last ran)."""
    rows = [(r.key, r.status, f"{r.seconds:8.1f}") for r in results]
    if not rows:
        return "no runs"
    width = max(len(r[0]) for r in rows)
    lines = [f"{'run':<{width}}  status    seconds", f"{'-' * width}  -------  ---------"]
    lines += [f"{key:<{width}}  {status:<7}  {seconds}" for key, status, seconds in rows]
    ran = sum(r.seconds for r in results if r.status == "ran")
    lines.append(f"{len(rows)} runs, {sum(r.status == 'ran' for r in results)} executed ({ran:.1f} s of notebook time), "
                 f"{sum(r.status == 'skipped' for r in results)} skipped (unchanged)")
    return "\n".join(lines)


def run_plan(plan: Plan, **options) -> list[RunResult]:
    """Execute every run of ``plan`` (see :func:`run_specs` for the options)."""
    missing = sorted({str(r.notebook) for r in plan.runs if not r.notebook.is_file()})
    if missing:
        raise ConfigError(f"{plan.path}: notebook {missing[0]} does not exist")
    return run_specs(plan.runs, **options)


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
        for notebook in sorted({_relative(r.notebook, root) for r in plan.runs if r.key in absent}):
            count = sum(r.key in absent and _relative(r.notebook, root) == notebook for r in plan.runs)
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
        aside = unused_root / _relative(output_dir, root).replace("/", "__")
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
            log.info("%s/%s is not part of this build: moved to %s", _relative(output_dir, root), name,
                     _relative(aside, root))


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
    return root / "_build" / "html"


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
