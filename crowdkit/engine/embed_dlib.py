"""dlib's face recognition ResNet as two embedders: in torch (``"dlib"``) and dlib's own (``"dlib-reference"``)."""
from __future__ import annotations

import logging
import os
import threading
import weakref
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from crowdkit.common import weights
from crowdkit.common.exceptions import ConfigError
from crowdkit.engine.embedding import Embedder, file_digest, package_version

logger = logging.getLogger(__name__)


#: dlib's thresholds per metric (deepface's cosine and euclidean_l2 values, dlib's published euclidean 0.6).
DLIB_THRESHOLDS = {"cosine": 0.07, "euclidean": 0.6, "euclidean_l2": 0.4}


class DlibEmbedder(Embedder):
    """dlib's ResNet face descriptor, the same network and weights run in torch (:mod:`crowdkit.engine.dlib_resnet`).

    The weights are read from the ``.dat`` face_recognition_models ships (converted
    once, cached under ``$CROWDKIT_HOME/weights``). Descriptors match dlib's own
    forward pass (:class:`DlibReferenceEmbedder`, ``"dlib-reference"``) to about
    1e-6, at a twentieth of its CPU time: one batch is spread over every core by
    torch's intra-op threads, so no worker processes are needed.

    Parameters
    ----------
    threads : int or None, keyword-only
        torch threads for a forward pass; ``None``: torch's default (one per core).
    batch_size : int, keyword-only
        Chips per forward pass.
    """

    name = "dlib"
    template = "dlib"
    dim = 128
    default_metric = "cosine"
    thresholds = DLIB_THRESHOLDS

    def __init__(self, *, threads: int | None = None, batch_size: int = 32) -> None:
        from crowdkit.engine.dlib_resnet import load_dlib_resnet

        if threads is not None and int(threads) < 1:
            raise ConfigError(f"threads must be ≥ 1 or None, got {threads!r}")
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {batch_size!r}")
        self.threads = None if threads is None else int(threads)
        self.batch_size = int(batch_size)
        self.model_path = weights.require("dlib-resnet")
        self._network = load_dlib_resnet(self.model_path, cache_dir=weights.crowdkit_weights_dir())
        self.version = f"torch-dlib-resnet/{file_digest(self.model_path)}"
        self._lock = threading.Lock()

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        import torch

        with self._lock:
            previous = torch.get_num_threads()
            if self.threads is not None:
                torch.set_num_threads(self.threads)
            try:
                return self._network.describe(chips, batch_size=self.batch_size)
            finally:
                torch.set_num_threads(previous)


def _dlib_worker_init(model_path: str) -> None:
    """Runs once in each worker process: load the ResNet; exit when the parent process is gone."""
    global _WORKER_MODEL
    import threading

    import dlib

    _WORKER_MODEL = dlib.face_recognition_model_v1(model_path)
    threading.Thread(target=exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="crowdkit-dlib-watchdog").start()


def exit_with_parent(parent: int, interval: float = 1.0) -> None:
    # A parent that dies without shutting the pool down (a crash, SIGKILL) would
    # otherwise leave its forked workers blocked on the task queue forever.
    import time

    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(0)


def _dlib_worker_ready(pause: float) -> int:
    """A no-op task: returns once this worker has loaded its model (pausing so each worker gets one)."""
    import time

    time.sleep(pause)
    return os.getpid()


def _dlib_worker_embed(chips: np.ndarray) -> np.ndarray:
    return _dlib_descriptors(_WORKER_MODEL, chips)


def _dlib_descriptors(model: Any, chips: np.ndarray) -> np.ndarray:
    vectors = model.compute_face_descriptor([np.ascontiguousarray(chip) for chip in chips])
    return np.array([np.asarray(vector) for vector in vectors], dtype=np.float32).reshape(len(chips), 128)


class DlibReferenceEmbedder(Embedder):
    """dlib's own forward pass of its ResNet (dlib-bin), spread over worker processes: the reference.

    The ``dlib`` embedder runs the same network in torch (:class:`DlibEmbedder`); this one is
    what it is checked against, and what the benchmark compares with.

    Parameters
    ----------
    workers : int or None, keyword-only
        Processes to spread a batch over; ``None``: one per core
        (``os.cpu_count()``), ``1``: compute in this process. dlib does not
        release the GIL, so threads would not help.
    chunk_size : int, keyword-only
        Chips per task sent to a worker (per chip, dlib's ResNet costs the
        same CPU time batched or alone, ~90 ms here; chunks only save
        inter-process round trips).
    min_parallel : int, keyword-only
        Batches smaller than this are computed in this process (a pool's
        first start costs about a second).
    start_method : str or None, keyword-only
        How worker processes start. Default: ``"fork"`` where the platform has
        it (no re-import of the calling script, so scripts need no
        ``if __name__ == "__main__"`` guard; the workers only run dlib, never
        the TensorFlow or torch the parent may have loaded), else ``"spawn"``.
    """

    name = "dlib-reference"
    template = "dlib"
    dim = 128
    default_metric = "cosine"
    thresholds = DLIB_THRESHOLDS

    def __init__(self, *, workers: int | None = None, chunk_size: int = 16, min_parallel: int = 8,
                 start_method: str | None = None) -> None:
        import multiprocessing

        import dlib

        methods = multiprocessing.get_all_start_methods()
        self.start_method = start_method or ("fork" if "fork" in methods else "spawn")
        if self.start_method not in methods:
            raise ConfigError(f"start_method {start_method!r} is not available here; choose one of {methods}")

        self.model_path = weights.require("dlib-resnet")
        self.workers = int(workers) if workers is not None else (os.cpu_count() or 1)
        if self.workers < 1:
            raise ConfigError(f"workers must be ≥ 1 or None, got {workers!r}")
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be ≥ 1, got {chunk_size!r}")
        self.chunk_size = int(chunk_size)
        self.min_parallel = int(min_parallel)
        self._model = dlib.face_recognition_model_v1(str(self.model_path))
        self.version = f"dlib-{package_version('dlib-bin', 'dlib')}/{self.model_path.name}"
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.Lock()  # one pool, and one in-process model user, across threads

    #: ``embed`` is thread-safe: two batches may be handed over at once.
    max_in_flight = 2

    def warm_up(self) -> None:
        """Start the worker processes and load their models now, in the background (returns at once).

        Called before a long run reads its first batch, so the model loading
        overlaps with reading instead of delaying the first embedding.
        """
        if self.workers > 1 and self._pool is None:
            pool = self._get_pool()
            for _ in range(self.workers):
                pool.submit(_dlib_worker_ready, 0.02)

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            return self._get_pool_locked()

    def _get_pool_locked(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            logger.debug("starting %d dlib worker processes (%s)", self.workers, self.start_method)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer=_dlib_worker_init,
                initargs=(str(self.model_path),),
            )
            self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        if self.workers == 1 or len(chips) < self.min_parallel:
            with self._lock:
                return _dlib_descriptors(self._model, chips)
        # Enough chunks to keep every worker busy to the end, each big enough to batch well.
        per_worker = -(-len(chips) // self.workers)
        size = max(1, min(self.chunk_size, -(-per_worker // 2)))
        chunks = [chips[i:i + size] for i in range(0, len(chips), size)]
        return np.concatenate(list(self._get_pool().map(_dlib_worker_embed, chunks)))

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                if self._finalizer is not None:
                    self._finalizer.detach()
                self._pool = None


