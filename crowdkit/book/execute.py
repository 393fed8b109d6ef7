"""Execute one run with papermill in an isolated kernel; keep the executed notebook only when it finished."""
from __future__ import annotations

import concurrent.futures as cf
import contextvars
import datetime as dt
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from crowdkit import __version__
from crowdkit.book.hashing import content_hash, read_sidecar
from crowdkit.book.plans import RUN_DIR_PARAMETER, STAGING, RunSpec, relative_path
from crowdkit.book.pages import shape_page
from crowdkit.book.kernels import run_kernel_manager_class, stop_running_kernels
from crowdkit.common.exceptions import RunFailedError, RunInterruptedError
from crowdkit.common.io import write_json_atomic

log = logging.getLogger(__name__)

#: Jupyter kernel every run uses (registered by ``make setup``).
DEFAULT_KERNEL = "crowdkit"
#: Seconds an interrupted run waits for papermill to return once its kernel is stopped.
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunResult:
    key: str
    notebook: str
    status: str  # "ran" or "skipped" (a failure raises RunFailedError)
    seconds: float  # for a skipped run: the time it took when it last ran
    output_path: Path
    content_hash: str


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")




def execute_run(spec: RunSpec, *, dependency_hashes: Mapping[str, str] | None = None, kernel: str = DEFAULT_KERNEL,
                force: bool = False, log_output: bool = False) -> RunResult:
    """Execute one run with papermill, or skip it when its content hash is unchanged.

    The notebook is executed into ``<output_dir>/.staging/`` and moved to
    ``<output_dir>/<run>.ipynb`` only when every cell succeeded. On failure
    the partial notebook is kept as ``<run>.failed.ipynb``, an older finished
    notebook of the same run is removed (it no longer matches its inputs),
    the sidecar records the error, and :class:`RunFailedError` names the
    notebook, the cell and the error. On Ctrl-C (or SIGTERM in a worker) the
    kernel is stopped, the partial notebook removed, the sidecar records the
    interruption, and :class:`RunInterruptedError` is raised.
    """
    digest, parts = content_hash(spec, dependency_hashes)
    sidecar = read_sidecar(spec)
    always = spec.always or (spec.summary and not dependency_hashes)  # a summary run alone: always
    if (not force and not always and sidecar.get("status") == "ok"
            and sidecar.get("content_hash") == digest and spec.output_path.is_file()):
        return RunResult(spec.key, relative_path(spec.notebook, spec.root), "skipped",
                         float(sidecar.get("seconds", 0.0)), spec.output_path, digest)
    partial, parameters = _prepare(spec)
    record = _start_record(spec, parameters, digest, parts, kernel)
    started = time.perf_counter()
    try:
        error_message = _papermill(spec, partial, parameters, kernel, log_output, record["notebook"])
    except KeyboardInterrupt:
        record.update(finished=_now(), seconds=round(time.perf_counter() - started, 3), status="interrupted")
        partial.unlink(missing_ok=True)
        write_json_atomic(spec.sidecar_path, record)
        raise RunInterruptedError(f"{spec.key} was interrupted; its kernel was stopped and its partial output "
                                  "removed") from None
    seconds = time.perf_counter() - started
    record.update(finished=_now(), seconds=round(seconds, 3))
    if error_message:
        _keep_failed(spec, partial, record, error_message)
    shape_page(partial, title=spec.title, parameters=parameters)
    os.replace(partial, spec.output_path)
    spec.failed_path.unlink(missing_ok=True)
    record.update(status="ok")
    write_json_atomic(spec.sidecar_path, record)
    return RunResult(spec.key, record["notebook"], "ran", seconds, spec.output_path, digest)


def staging_name(run: str, pid: int | None = None) -> str:
    """``<run>.<pid>-<random>.ipynb``: the pid says whether the process writing it is still alive."""
    return f"{run}.{pid or os.getpid()}-{uuid.uuid4().hex[:8]}.ipynb"


def remove_stale_staging(output_dirs: Iterable[Path]) -> list[Path]:
    """Delete partial notebooks in ``<output_dir>/.staging/`` left by processes that no longer run.

    A run interrupted hard (killed, machine lost) leaves its partial notebook
    behind; a later build removes it. Files of a live process are left alone,
    so two builds at once do not disturb each other.
    """
    removed = []
    for folder in {Path(d) / STAGING for d in output_dirs}:
        for path in sorted(folder.glob("*.ipynb")) if folder.is_dir() else ():
            pid_text = path.name.rsplit(".", 2)[-2].split("-", 1)[0] if path.name.count(".") >= 2 else ""
            if pid_text.isdigit() and process_alive(int(pid_text)):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
    for path in removed:
        log.info("removed %s, left by an interrupted run", path)
    return removed


def process_alive(pid: int) -> bool:
    """True while process ``pid`` exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _prepare(spec: RunSpec) -> tuple[Path, dict[str, Any]]:
    """A fresh run folder, the staging path, and the parameters papermill injects."""
    import papermill as pm

    staging = spec.output_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    partial = staging / staging_name(spec.name)
    if spec.run_dir.exists():
        shutil.rmtree(spec.run_dir)
    spec.run_dir.mkdir(parents=True)
    # relative to the kernel's working directory (the project root): the page shows no machine's paths.
    # Only a notebook whose parameters cell declares run_dir gets it (the others read CROWDKIT_RUN_DIR).
    parameters = dict(spec.parameters)
    if RUN_DIR_PARAMETER in pm.inspect_notebook(str(spec.notebook)):
        parameters[RUN_DIR_PARAMETER] = relative_path(spec.run_dir, spec.root)
    return partial, parameters


def _start_record(spec: RunSpec, parameters: dict[str, Any], digest: str, parts: dict[str, Any],
                  kernel: str) -> dict[str, Any]:
    from crowdkit.common.provenance import package_versions

    return {
        "plan": spec.plan, "run": spec.name, "profile": spec.profile,
        "notebook": relative_path(spec.notebook, spec.root), "output": relative_path(spec.output_path, spec.root),
        "parameters": parameters, "content_hash": digest, "hash_inputs": parts,
        "crowdkit_version": __version__, "packages": package_versions(),
        "data_checksums": parts["inputs"], "kernel": kernel, "host": socket.gethostname(),
        "started": _now(),
    }


def _papermill(spec: RunSpec, partial: Path, parameters: dict[str, Any], kernel: str, log_output: bool,
               notebook: str) -> str:
    """Execute the notebook in a helper thread; returns "" or the error message. Ctrl-C stops its kernel.

    papermill runs in a thread so that its client installs no signal handlers
    of its own: an interrupt reaches this (main) thread as KeyboardInterrupt,
    which stops the kernel, waits for papermill to return, and re-raises.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    def run() -> str:
        try:
            pm.execute_notebook(str(spec.notebook), str(partial), parameters=parameters, kernel_name=kernel,
                                cwd=str(spec.root), progress_bar=False, log_output=log_output,
                                kernel_manager_class=run_kernel_manager_class(spec.run_dir, spec.root))
        except PapermillExecutionError as error:
            return (f"{notebook} ({spec.key}) failed in cell {error.cell_index} "
                    f"(execution count {error.exec_count}): {error.ename}: {error.evalue}")
        except Exception as error:  # kernel missing or dead, unreadable notebook: same handling, named
            message = f"{notebook} ({spec.key}) could not be executed: {type(error).__name__}: {error}"
            if type(error).__name__ == "NoSuchKernel":
                message += (f" (register the kernel: `make setup`, or `python -m ipykernel install --sys-prefix "
                            f"--name {kernel}` with the project's Python)")
            return message
        return ""

    with cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="crowdkit-run") as thread:
        future = thread.submit(contextvars.Context().run, run)
        try:
            return future.result()
        except KeyboardInterrupt:
            stop_running_kernels()
            cf.wait([future], timeout=STOP_TIMEOUT)
            raise


def _keep_failed(spec: RunSpec, partial: Path, record: dict[str, Any], error_message: str) -> None:
    """Keep the partial notebook as ``<run>.failed.ipynb``, record the error, raise RunFailedError."""
    if partial.is_file():
        os.replace(partial, spec.failed_path)
    spec.output_path.unlink(missing_ok=True)
    kept = relative_path(spec.failed_path, spec.root) if spec.failed_path.is_file() else "none"
    record.update(status="failed", error=error_message, failed_output=kept)
    write_json_atomic(spec.sidecar_path, record)
    raise RunFailedError(f"{error_message}. Partial output kept at {kept} for inspection.")


def execute_job(spec: RunSpec, dependency_hashes: dict[str, str], kernel: str, force: bool,
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


