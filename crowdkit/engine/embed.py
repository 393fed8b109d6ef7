"""Face embedders: aligned chips in, one vector per face out.

Every backend takes chips aligned with its own template (see
:mod:`crowdkit.engine.align`) and returns float32 ``(N, dim)``; ``N = 0`` gives
``(0, dim)``::

    >>> from crowdkit.engine.align import align_face
    >>> from crowdkit.engine.embed import get_embedder
    >>> embedder = get_embedder("dlib")                                   # doctest: +SKIP
    >>> chips = [align_face(image, d.landmarks, embedder.template) for d in detections]  # doctest: +SKIP
    >>> embedder.embed(chips).shape                                       # doctest: +SKIP
    (2, 128)

Backends (:data:`EMBEDDERS`):

``dlib``
    dlib's ResNet (``dlib_face_recognition_resnet_model_v1.dat``, shipped by
    face_recognition_models, so it runs offline). 150 px ``"dlib"`` chips,
    128-d. dlib holds Python's GIL while it computes, so a batch is split over
    a pool of worker *processes* (one per core by default), each loading the
    model once.
``arcface``
    deepface's ArcFace (ResNet34, TensorFlow), fed exactly as ``DeepFace.represent``
    feeds it by default (BGR, scaled to [0, 1]) so deepface's thresholds
    apply. 112 px ``"arcface"`` chips, 512-d. Needs ``arcface_weights.h5``.
``facenet``
    facenet-pytorch's ``InceptionResnetV1`` with the VGGFace2 weights or a
    local ``checkpoint=PATH``. 160 px ``"facenet"`` chips, fixed image
    standardisation ``(x - 127.5) / 128``, 512-d, unit length.

Thresholds (``Embedder.thresholds``; distances as in :mod:`crowdkit.engine.match`):

========  ================================  ==============================  ==================
model     cosine                            euclidean                       euclidean_l2
========  ================================  ==============================  ==================
dlib      0.07 (deepface; LFW best ≈ 0.09)  0.6 (dlib's published value)    0.4 (deepface)
arcface   0.68 (deepface)                   4.15 (deepface)                 1.13 (deepface)
facenet   0.54 (= 1.04² / 2, unit vectors)  1.04 (unit vectors: = l2)       1.04 (deepface Facenet512)
========  ================================  ==============================  ==================

dlib's cosine default stays deepface's 0.07, the value the crowd study and the
``DeepFace.find`` baseline use; measured here it is strict. On LFW
``pairs.txt`` folds 1-2 (1,184 of 1,200 pairs; 9 images without a HOG face
skipped; chips from dlib's HOG detector, 5-point shape and ``get_face_chip``),
cosine 0.07 classifies 94.4 % of pairs correctly; the best threshold is
0.0855-0.0943 depending on the fold (98.5-98.8 % on the other fold), and
:data:`DLIB_COSINE_LFW` = 0.09 gives 98.7 %. Euclidean 0.6 gives 98.6 % (best
0.59-0.63). Pass ``threshold=DLIB_COSINE_LFW`` where LFW-like accuracy matters
more than agreeing with the study. facenet's values are not measured here (no
pretrained weights offline). The bias study used 0.65 for ArcFace cosine; deepface's 0.68 is the default here.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from crowdkit.common import weights
from crowdkit.common.exceptions import ConfigError, InvalidImageError
from crowdkit.common.registry import Registry

logger = logging.getLogger(__name__)

#: dlib cosine threshold measured on LFW pairs.txt folds 1-2 (98.7 % of 1,184 pairs; deepface's 0.07: 94.4 %).
DLIB_COSINE_LFW = 0.09


def _package_version(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike, length: int = 12) -> str:
    """The start of a file's sha256 (memoised by path, size and mtime): weights identity for cache keys."""
    stat = Path(path).stat()
    memo = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_DIGESTS:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        _FILE_DIGESTS[memo] = hasher.hexdigest()
    return _FILE_DIGESTS[memo][:length]


class Embedder(ABC):
    """One face recognition model behind one call.

    Attributes
    ----------
    name : str
        Registry name (``"dlib"``, ``"arcface"``, ``"facenet"``).
    template : str
        The :data:`crowdkit.engine.align.TEMPLATES` entry chips must be aligned with.
    dim : int
        Length of an embedding.
    default_metric : str
        The metric the default threshold refers to.
    thresholds : dict[str, float]
        Default decision threshold per metric (distance ≤ threshold: same person).
    version : str
        Package version and weights identity; part of every cache key.
    workers : int
        Processes one :meth:`embed` call spreads its chips over (1: this process).
    max_in_flight : int
        Batches :func:`crowdkit.engine.pipeline.detect_and_embed` may hand over at once
        from separate threads (more than 1 only where :meth:`embed` is thread-safe).
    """

    name: str = ""
    template: str = ""
    dim: int = 0
    default_metric: str = "cosine"
    thresholds: dict[str, float] = {}
    version: str = ""
    workers: int = 1
    max_in_flight: int = 1

    @property
    def cache_id(self) -> str:
        """``name@version/template``: part of every cache key of this embedder's embeddings."""
        return f"{self.name}@{self.version}/{self.template}"

    def warm_up(self) -> None:
        """Get ready for a long run in the background and return at once (nothing to do for most backends)."""

    @property
    def chip_size(self) -> int:
        from crowdkit.engine.align import TEMPLATES

        return TEMPLATES[self.template].size

    @property
    def threshold(self) -> float:
        """The default threshold for :attr:`default_metric`."""
        return self.thresholds[self.default_metric]

    def embed(self, chips: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embed aligned face chips.

        Parameters
        ----------
        chips : uint8 array (N, S, S, 3) or a sequence of (S, S, 3) arrays
            RGB chips aligned with :attr:`template`, ``S`` = its size.

        Returns
        -------
        ndarray, float32, shape (N, dim)
        """
        batch = self._check(chips)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._embed(batch), dtype=np.float32).reshape(len(batch), self.dim)
        return vectors

    @abstractmethod
    def _embed(self, chips: np.ndarray) -> np.ndarray:
        """Embed a validated, non-empty uint8 batch (N, S, S, 3)."""

    def _check(self, chips: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        size = self.chip_size
        if isinstance(chips, np.ndarray):
            batch = chips
        else:
            chips = [np.asarray(chip) for chip in chips]
            if len({chip.shape for chip in chips}) > 1:
                raise InvalidImageError(
                    f"{self.name} needs chips of one shape ({size}, {size}, 3); got {sorted({c.shape for c in chips})}")
            batch = np.stack(chips) if chips else np.zeros((0, size, size, 3), dtype=np.uint8)
        if batch.ndim == 3 and batch.shape == (size, size, 3):
            raise InvalidImageError(
                f"{self.name} embeds a batch of chips (N, {size}, {size}, 3); got one chip {batch.shape} — "
                "wrap it: embed(chip[None])"
            )
        if batch.ndim != 4 or batch.shape[1:] != (size, size, 3):
            raise InvalidImageError(
                f"{self.name} needs RGB chips of shape (N, {size}, {size}, 3) aligned with the "
                f"{self.template!r} template (crowdkit.engine.align.align_face(image, landmarks, {self.template!r})); "
                f"got {batch.shape}"
            )
        if batch.dtype != np.uint8:
            raise InvalidImageError(f"{self.name} needs uint8 chips (0-255); got dtype {batch.dtype}")
        return np.ascontiguousarray(batch)

    def close(self) -> None:
        """Release worker processes or models (the embedder can still be used; they restart)."""

    def __enter__(self) -> "Embedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, version={self.version!r})"


EMBEDDERS: Registry[Embedder] = Registry("embedder")


def get_embedder(name: str, **options: Any) -> Embedder:
    """Build the embedder registered as ``name`` (``"dlib"``, ``"arcface"``, ``"facenet"``) with ``options``."""
    return EMBEDDERS.create(name, **options)


# --------------------------------------------------------------------------- dlib

_WORKER_MODEL: Any = None


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


@EMBEDDERS.register("dlib")
class DlibEmbedder(Embedder):
    """dlib's ResNet face descriptor, spread over worker processes.

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

    name = "dlib"
    template = "dlib"
    dim = 128
    default_metric = "cosine"
    thresholds = {"cosine": 0.07, "euclidean": 0.6, "euclidean_l2": 0.4}

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
        self.version = f"dlib-{_package_version('dlib-bin', 'dlib')}/{self.model_path.name}"
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


# --------------------------------------------------------------------------- arcface

@EMBEDDERS.register("arcface")
class ArcFaceEmbedder(Embedder):
    """deepface's ArcFace (TensorFlow), 512-d.

    Parameters
    ----------
    normalization : {"base", "ArcFace"}, keyword-only
        ``"base"`` (deepface's default, which its thresholds were tuned with):
        BGR in [0, 1]. ``"ArcFace"``: BGR, ``(x - 127.5) / 128``.
    batch_size : int, keyword-only
        Chips per forward pass.
    """

    name = "arcface"
    template = "arcface"
    dim = 512
    default_metric = "cosine"
    thresholds = {"cosine": 0.68, "euclidean": 4.15, "euclidean_l2": 1.13}

    def __init__(self, *, normalization: str = "base", batch_size: int = 64) -> None:
        if normalization not in {"base", "ArcFace"}:
            raise ConfigError(f"normalization must be 'base' or 'ArcFace', got {normalization!r}")
        weight_file = weights.require("arcface")  # offline and missing: fails here, before any network
        if weight_file.parent.resolve() != weights.deepface_weights_dir().resolve():
            raise ConfigError(f"deepface only loads ArcFace weights from {weights.deepface_weights_dir()}; "
                              f"found them at {weight_file}")
        weights.prepare_tensorflow()
        from deepface.models.facial_recognition.tf.ArcFace import ArcFaceClient

        self.normalization = normalization
        self.batch_size = int(batch_size)
        self._client = ArcFaceClient()
        self.version = (f"deepface-{_package_version('deepface')}/{weight_file.name}@{file_digest(weight_file)}"
                        f"/{normalization}")

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(chips), self.batch_size):
            batch = chips[start:start + self.batch_size, :, :, ::-1].astype(np.float32)  # RGB → BGR
            batch = batch / 255.0 if self.normalization == "base" else (batch - 127.5) / 128.0
            out.append(np.asarray(self._client.model(batch, training=False)))
        return np.concatenate(out)


# --------------------------------------------------------------------------- facenet

def load_facenet_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """An InceptionResnetV1 state dict from facenet-pytorch's file or a crowdkit checkpoint.

    Accepts a bare state dict, or a dict holding one under ``"state_dict"`` or
    ``"model"`` (a training checkpoint); strips a ``"module."`` prefix
    (DataParallel) and drops the classifier (``logits.*``), which embeddings
    do not use. Loaded with ``weights_only=True``: no pickled code runs.
    """
    import torch

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise weights.WeightsMissingError(f"facenet checkpoint {path} does not exist") from None
    except Exception as error:  # torch raises many types for a damaged file
        raise ConfigError(f"{path} is not a readable torch checkpoint ({type(error).__name__}: {error})") from error
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {key.removeprefix("module."): value for key, value in state.items()
            if not key.removeprefix("module.").startswith("logits.")}


@EMBEDDERS.register("facenet")
class FaceNetEmbedder(Embedder):
    """facenet-pytorch's InceptionResnetV1, 512-d unit vectors.

    Parameters
    ----------
    checkpoint : path, keyword-only
        A state dict (facenet-pytorch's ``20180402-114759-vggface2.pt`` or one
        saved by crowdkit's trainer). Default: the VGGFace2 weights from
        :func:`crowdkit.common.weights.require`.
    batch_size : int, keyword-only
    device : str, keyword-only
        ``"cpu"`` or ``"cuda"``.
    """

    name = "facenet"
    template = "facenet"
    dim = 512
    default_metric = "cosine"
    thresholds = {"cosine": 0.54, "euclidean": 1.04, "euclidean_l2": 1.04}

    def __init__(self, *, checkpoint: str | os.PathLike | None = None, batch_size: int = 64,
                 device: str = "cpu") -> None:
        path = Path(checkpoint).expanduser() if checkpoint is not None else weights.require("facenet-vggface2")
        if not path.is_file():
            raise weights.WeightsMissingError(f"facenet checkpoint {path} does not exist")
        import torch
        from facenet_pytorch import InceptionResnetV1

        model = InceptionResnetV1(pretrained=None, classify=False)
        result = model.load_state_dict(load_facenet_state_dict(path), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ConfigError(
                f"{path} is not an InceptionResnetV1 state dict: missing {list(result.missing_keys)[:5]}, "
                f"unexpected {list(result.unexpected_keys)[:5]}"
            )
        self._torch = torch
        self.device = torch.device(device)
        self._model = model.eval().to(self.device)
        self.batch_size = int(batch_size)
        self.checkpoint = path
        self.version = f"facenet-pytorch-{_package_version('facenet-pytorch')}/{path.name}@{file_digest(path)}"

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.no_grad():
            for start in range(0, len(chips), self.batch_size):
                batch = torch.from_numpy(chips[start:start + self.batch_size]).to(self.device)
                batch = (batch.permute(0, 3, 1, 2).float() - 127.5) / 128.0  # fixed_image_standardization
                out.append(self._model(batch).cpu().numpy())
        return np.concatenate(out)
