"""Execute one run with papermill in an isolated kernel; keep the executed notebook only when it finished."""
from __future__ import annotations

import contextvars
import datetime as dt
import functools
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from crowdkit import __version__
from crowdkit.book.hashing import content_hash, read_sidecar
from crowdkit.book.plans import RUN_DIR_PARAMETER, STAGING, RunSpec, relative_path
from crowdkit.common.exceptions import RunFailedError
from crowdkit.common.io import write_json_atomic

log = logging.getLogger(__name__)

#: Jupyter kernel every run uses (registered by ``make setup``).
DEFAULT_KERNEL = "crowdkit"

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
        return RunResult(spec.key, relative_path(spec.notebook, spec.root), "skipped",
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
        parameters[RUN_DIR_PARAMETER] = relative_path(spec.run_dir, spec.root)
    record: dict[str, Any] = {
        "plan": spec.plan, "run": spec.name, "profile": spec.profile,
        "notebook": relative_path(spec.notebook, spec.root), "output": relative_path(spec.output_path, spec.root),
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
        kept = relative_path(spec.failed_path, spec.root) if spec.failed_path.is_file() else "none"
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


