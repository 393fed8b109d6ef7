"""Run many notebooks: dependencies first, independent ones in parallel (processes or Dask)."""
from __future__ import annotations

import concurrent.futures as cf
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from tqdm.auto import tqdm

from crowdkit.book.execute import DEFAULT_KERNEL, RunResult, execute_job
from crowdkit.book.plans import Plan, RunSpec
from crowdkit.common.exceptions import ConfigError, CrowdkitError, RunFailedError

log = logging.getLogger(__name__)

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
            return self._pool.submit(execute_job, *args)
        future: cf.Future = cf.Future()
        try:
            future.set_result(execute_job(*args))
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


def chain_lengths(specs: Sequence[RunSpec]) -> dict[str, int]:
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
    chain = chain_lengths(specs)
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

