"""Kernels for runs: isolated (Unix sockets in a private folder), tracked, and stoppable on an interrupt."""
from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from crowdkit.common import config

log = logging.getLogger(__name__)

# Kernel managers whose kernel is running in this process, so an interrupt can stop them.
_LIVE: set = set()
_LIVE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def isolated_kernel_manager_class():
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
            with _LIVE_LOCK:
                _LIVE.add(self)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            folder = os.path.dirname(self.connection_file)
            await super()._async_cleanup_resources(restart=restart)
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if not restart and os.path.basename(folder).startswith("ck-kernel-"):
                shutil.rmtree(folder, ignore_errors=True)

    return IsolatedKernelManager


def run_kernel_manager_class(run_dir: Path, root: Path):
    """The isolated kernel manager, with ``CROWDKIT_RUN_DIR`` (the run's folder) and ``CROWDKIT_BOOK_ROOT``
    (the build's project root, :func:`crowdkit.common.config.project_root`) set in the kernel's environment."""
    base = isolated_kernel_manager_class()
    env = {"CROWDKIT_RUN_DIR": str(run_dir), config.BOOK_ROOT_ENV: str(root)}
    return type("RunKernelManager", (base,), {"crowdkit_env": env})


def stop_running_kernels() -> int:
    """Kill every kernel this process started and has not shut down yet; returns how many were stopped.

    Used when a build is interrupted: the cell that kernel runs dies with it, so
    papermill returns at once instead of finishing the notebook.
    """
    with _LIVE_LOCK:
        managers = list(_LIVE)
    stopped = 0
    for manager in managers:
        pid = getattr(manager.provisioner, "pid", None) if manager.provisioner is not None else None
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            stopped += 1
        except ProcessLookupError:
            pass
    return stopped
