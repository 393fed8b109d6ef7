"""Run many notebooks: dependencies first, independent ones in parallel (processes or Dask)."""
from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import signal
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from tqdm import tqdm

from crowdkit.book.execute import DEFAULT_KERNEL, RunResult, execute_job, remove_stale_staging
from crowdkit.book.hashing import read_sidecar
from crowdkit.book.kernels import stop_running_kernels
from crowdkit.book.plans import Plan, RunSpec
from crowdkit.common.exceptions import ConfigError, CrowdkitError, RunFailedError, RunInterruptedError
from crowdkit.common.io import show_progress

log = logging.getLogger(__name__)


#: The variables through which torch (OpenMP, MKL), numpy's BLAS, OpenCV and TensorFlow size their thread pools.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENCV_FOR_THREADS_NUM",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def threads_per_job(jobs: int, cpus: int | None = None) -> int:
    """Threads each of ``jobs`` parallel notebooks may use so that together they fill the CPUs and no more."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, jobs))


def _worker_init(threads: int) -> None:
    """Pool workers turn SIGTERM into KeyboardInterrupt, so an interrupted build stops their kernels cleanly,
    and give their kernels a share of the CPUs. Left alone, every library sizes its thread pool to all the
    cores: on 2 cores, two processes running MTCNN at once took 3.0 s per frame each with 2 threads, and
    0.32-0.36 s with 1 (0.21 s for one process alone)."""
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C: the parent decides and sends SIGTERM
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(threads))  # a value the user set wins


def raise_keyboard_interrupt(signum, frame) -> None:
    """A signal handler that stops a build the way Ctrl-C does (kernels stopped, finished runs kept)."""
    raise KeyboardInterrupt

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
                                                    mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_worker_init,
                                                    initargs=(threads_per_job(self.jobs),))
        else:
            raise ConfigError(f"unknown executor {self.kind!r} (known: local, dask)")
        return self

    @property
    def parallel(self) -> bool:
        """True when jobs run outside this process (a pool or a cluster)."""
        return self._pool is not None

    def stop(self) -> None:
        """Stop running jobs now: in-process kernels are killed; pool workers get SIGTERM and stop theirs."""
        stop_running_kernels()
        if isinstance(self._pool, cf.ProcessPoolExecutor):
            import multiprocessing

            for worker in multiprocessing.active_children():
                worker.terminate()

    @property
    def capacity(self) -> int:
        if self.kind == "dask":
            return max(1, sum(self._client.nthreads().values()))
        return max(1, self.jobs)

    def submit(self, *args) -> cf.Future:
        if self._pool is not None:
            return self._pool.submit(execute_job, *args)
        future: cf.Future = cf.Future()
        try:
            future.set_result(execute_job(*args))
        except Exception as error:  # handed to the caller through the future; Ctrl-C propagates as it is
            future.set_exception(error)
        return future

    def __exit__(self, *exc) -> None:
        if isinstance(self._pool, cf.ProcessPoolExecutor):
            self._pool.shutdown(wait=True, cancel_futures=True)
        elif self._pool is not None:  # dask's ClientExecutor: futures not yet run were cancelled above
            self._pool.shutdown(wait=True)
        if self._client is not None and self._client is not self.scheduler:
            self._client.close()


#: Seconds assumed for a run that has never run here and whose plan gives no ``expected_seconds``.
UNKNOWN_SECONDS = 60.0


def expected_seconds(spec: RunSpec) -> float:
    """How long ``spec`` should take: its last recorded run here, else its plan's ``expected_seconds``, else
    :data:`UNKNOWN_SECONDS`."""
    last = read_sidecar(spec)
    if last.get("status") == "ok" and isinstance(last.get("seconds"), (int, float)) and last["seconds"] > 0:
        return float(last["seconds"])
    return spec.expected_seconds or UNKNOWN_SECONDS


def critical_paths(specs: Sequence[RunSpec], seconds: Mapping[str, float] | None = None) -> dict[str, float]:
    """Per run, the seconds of the longest chain of runs waiting on it, itself included.

    Ready runs start with the longest such chain first: a long run, or the head of a
    long chain of dependent notebooks (the bias study), starts at once and runs
    beside the short independent ones, not alone after them. ``seconds`` gives each
    run's duration (default: 1 each, which counts the runs in the chain).
    """
    waiting: dict[str, list[str]] = {s.key: [] for s in specs}
    for spec in specs:
        for dep in spec.depends_on:
            waiting.setdefault(dep, []).append(spec.key)
    paths: dict[str, float] = {}

    def path(key: str, seen: tuple[str, ...] = ()) -> float:
        if key not in paths:
            if key in seen:
                raise ConfigError(f"dependency cycle through {key}")
            own = 1.0 if seconds is None else seconds.get(key, UNKNOWN_SECONDS)
            paths[key] = own + max((path(k, seen + (key,)) for k in waiting.get(key, ())), default=0.0)
        return paths[key]

    return {s.key: path(s.key) for s in specs}


def run_specs(specs: Sequence[RunSpec], *, jobs: int = 1, executor: str = "local", scheduler: Any = None,
              kernel: str = DEFAULT_KERNEL, force: bool = False, progress: bool = True,
              stagger: float = 1.0) -> list[RunResult]:
    """Execute runs (dependencies first, independent ones in parallel), skipping unchanged ones.

    ``jobs`` > 1 runs notebooks in separate processes; ``executor="dask"``
    submits them to the Dask cluster at ``scheduler`` (an address or a
    ``distributed.Client``). Parallel kernel starts are staggered by
    ``stagger`` seconds. The first failure stops the build: runs not yet
    started are cancelled, running ones finish, and its
    :class:`RunFailedError` is raised. Ctrl-C stops the running notebooks'
    kernels within seconds and raises :class:`RunInterruptedError`, which says
    what was kept; partial notebooks left by an earlier hard stop are removed first.
    """
    specs = list(specs)
    _check_dependencies(specs)
    remove_stale_staging(s.output_dir for s in specs)
    build = _Build(specs, kernel=kernel, force=force, stagger=stagger)
    bar = tqdm(total=len(specs), desc="notebooks", unit="nb", disable=not show_progress(progress))
    try:
        with _Executor(executor, jobs, scheduler) as pool:
            try:
                build.run(pool, bar)
            except KeyboardInterrupt:
                build.interrupt(pool)
    finally:
        bar.close()
    return build.outcome()


def _check_dependencies(specs: Sequence[RunSpec]) -> None:
    keys = {s.key for s in specs}
    if len(keys) != len(specs):
        raise ConfigError("two runs share a plan/run name")
    for spec in specs:
        missing = [d for d in spec.depends_on if d not in keys]
        if missing:
            raise ConfigError(f"{spec.key} depends on {missing[0]}, which is not among the selected runs")


class _Build:
    """The state of one :func:`run_specs` call: what waits, what runs, what finished, what failed."""

    def __init__(self, specs: Sequence[RunSpec], *, kernel: str, force: bool, stagger: float) -> None:
        self.specs = list(specs)
        self.critical_path = critical_paths(self.specs, {s.key: expected_seconds(s) for s in self.specs})
        self.pending = {s.key: s for s in self.specs}
        self.hashes: dict[str, str] = {}
        self.results: dict[str, RunResult] = {}
        self.running: dict[cf.Future, str] = {}
        self.failure: BaseException | None = None
        self.interrupted: list[str] = []
        self.kernel, self.force, self.stagger = kernel, force, stagger
        self.started = 0

    def run(self, pool: "_Executor", bar) -> None:
        while (self.pending or self.running) and self.failure is None:
            self._start_ready(pool, bar)
            if not self.running:
                if self.pending:
                    raise ConfigError(f"dependency cycle among {sorted(self.pending)}")
                break
            done, _ = cf.wait(list(self.running), return_when=cf.FIRST_COMPLETED)
            for future in done:
                self._collect(future, bar)
        for future in self.running:
            future.cancel()

    def _start_ready(self, pool: "_Executor", bar) -> None:
        ready = sorted((k for k, s in self.pending.items() if all(d in self.hashes for d in s.depends_on)),
                       key=lambda k: -self.critical_path[k])
        for key in ready[: max(0, pool.capacity - len(self.running))]:
            spec = self.pending.pop(key)
            deps = {d: self.hashes[d] for d in spec.depends_on}
            delay = self.stagger * self.started if (pool.parallel and self.started < pool.capacity) else 0.0
            self.started += 1
            bar.set_postfix_str(f"{key} ({len(self.pending) + len(self.running)} left)", refresh=True)
            self.running[pool.submit(spec, deps, self.kernel, self.force, delay)] = key

    def _collect(self, future: cf.Future, bar) -> None:
        key = self.running.pop(future)
        try:
            result = future.result()
        except RunInterruptedError:
            self.interrupted.append(key)
            raise KeyboardInterrupt from None
        except BaseException as error:  # noqa: BLE001 - re-raised after the pool is shut down
            self.failure = self.failure or error
            return
        self.results[key] = result
        self.hashes[key] = result.content_hash
        bar.update(1)
        left = len(self.pending) + len(self.running)
        bar.set_postfix_str(f"{key} {result.status} in {result.seconds:.1f} s ({left} left)", refresh=True)

    def interrupt(self, pool: "_Executor") -> None:
        """Ctrl-C: cancel what has not started, stop what runs, and remember what was kept."""
        self.interrupted += list(self.running.values())
        for future in self.running:
            future.cancel()
        pool.stop()
        self.failure = RunInterruptedError(self._interrupt_message())

    def _interrupt_message(self) -> str:
        kept = sorted(self.results)
        stopped = sorted(set(self.interrupted))
        return (f"interrupted: {len(kept)} run(s) finished and kept ({', '.join(kept) or 'none'}); "
                f"stopped {', '.join(stopped) or 'nothing'} (kernel shut down, partial notebook removed); "
                f"{len(self.pending)} not started. Run the same command again to resume: finished runs are skipped.")

    def outcome(self) -> list[RunResult]:
        if self.failure is not None:
            if isinstance(self.failure, CrowdkitError):
                raise self.failure
            raise RunFailedError(f"a run could not be executed: {type(self.failure).__name__}: "
                                 f"{self.failure}") from self.failure
        return [self.results[s.key] for s in self.specs if s.key in self.results]


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

