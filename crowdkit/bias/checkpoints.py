"""Training checkpoints: what one holds (:class:`Checkpoint`), the finished runs under a folder, a model loaded for inference.

A run folder (one per sampler × seed, see :func:`crowdkit.bias.train.train_arms`)
holds ``last.pt`` (after every epoch), ``best.pt`` (the best validation
accuracy so far) and ``epochNNN.pt`` for the epochs in
``TrainConfig.keep_epochs``. Each file is a ``torch.save`` of
:meth:`Checkpoint.to_payload` (a plain dict, so older checkpoints still load).

Example
-------
>>> runs = find_runs("~/.crowdkit/runs/bias-quick-projection")   # doctest: +SKIP
>>> runs.to_frame()                                               # doctest: +SKIP
>>> model = load_model(runs[0].last)                              # doctest: +SKIP
>>> model.embed_inputs(descriptors).shape                         # doctest: +SKIP
(N, 128)
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from crowdkit.bias.backbones import BACKBONES, Backbone, embedding_net, resize_square, to_tensor
from crowdkit.bias.descriptors import CENTRE_FALLBACK, FACE_FOUND, centre_box, describe_photos, nearest_centre
from crowdkit.bias.train_config import EpochMetrics, TrainConfig
from crowdkit.common.exceptions import ConfigError, DataNotFoundError
from crowdkit.common.io import atomic_path, read_image, show_progress

LAST, BEST = "last.pt", "best.pt"
_EPOCH_FILE = re.compile(r"^epoch(\d+)\.pt$")


def epoch_checkpoint_name(epoch: int) -> str:
    """The file name of the checkpoint kept after ``epoch`` (``epoch030.pt``)."""
    return f"epoch{int(epoch):03d}.pt"


def checkpoint_epoch(path: str | os.PathLike) -> int | None:
    """The epoch a kept checkpoint's name records (``epoch030.pt`` → 30); None for ``last.pt``/``best.pt``."""
    match = _EPOCH_FILE.match(Path(path).name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """Everything :func:`crowdkit.bias.train.train` needs to resume a run, and a model to embed with.

    ``model_state`` / ``optimizer_state`` are torch ``state_dict`` s, ``torch_rng``
    torch's CPU RNG state; ``waited`` counts epochs without a better validation
    accuracy (early stopping); ``data_fingerprint`` names the inputs the run was
    trained on (:meth:`crowdkit.bias.training_data.TrainingData.fingerprint`).
    """

    config: TrainConfig
    epoch: int
    model_state: Mapping[str, Any] = field(repr=False)
    optimizer_state: Mapping[str, Any] = field(repr=False)
    torch_rng: Any = field(repr=False)
    history: tuple[EpochMetrics, ...] = field(repr=False)
    best_val_accuracy: float
    best_epoch: int
    waited: int
    train_identities: tuple[str, ...] = field(repr=False)
    val_identities: tuple[str, ...] = field(repr=False)
    data_fingerprint: str | None

    def to_payload(self) -> dict[str, Any]:
        """The dict ``torch.save`` writes (the on-disk format)."""
        return {
            "model": self.model_state, "optimizer": self.optimizer_state, "epoch": self.epoch,
            "config": asdict(self.config), "torch_rng": self.torch_rng, "history": [asdict(h) for h in self.history],
            "best_val_accuracy": self.best_val_accuracy, "best_epoch": self.best_epoch, "waited": self.waited,
            "train_identities": list(self.train_identities), "val_identities": list(self.val_identities),
            "data_fingerprint": self.data_fingerprint,
        }

    @classmethod
    def from_payload(cls, payload: Any, path: str | os.PathLike = "checkpoint") -> "Checkpoint":
        """Read what :meth:`to_payload` wrote; anything else raises :class:`ConfigError`."""
        if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
            raise ConfigError(f"{path} is not a crowdkit.bias.train checkpoint (no 'model'/'config' entries)")
        return cls(
            config=TrainConfig.from_dict(payload["config"]), epoch=int(payload.get("epoch", 0)),
            model_state=payload["model"], optimizer_state=payload.get("optimizer", {}),
            torch_rng=payload.get("torch_rng"), history=tuple(EpochMetrics(**h) for h in payload.get("history", ())),
            best_val_accuracy=payload.get("best_val_accuracy", float("nan")),
            best_epoch=int(payload.get("best_epoch", 0)), waited=int(payload.get("waited", 0)),
            train_identities=tuple(payload.get("train_identities", ())),
            val_identities=tuple(payload.get("val_identities", ())),
            data_fingerprint=payload.get("data_fingerprint"),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (a crash leaves the previous file); returns ``path``."""
        import torch

        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.to_payload(), tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> "Checkpoint":
        """Read a checkpoint file; a missing one raises :class:`DataNotFoundError`."""
        import torch

        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"checkpoint {path} does not exist; train a model first (crowdkit.bias.train.train)")
        return cls.from_payload(torch.load(path, map_location=device, weights_only=False), path)


# --------------------------------------------------------------------------- finished runs


@dataclass(frozen=True)
class TrainingRun:
    """One finished (or interrupted) run folder: its arm, seed, epochs and checkpoint files."""

    sampler: str
    seed: int
    epoch: int
    best_epoch: int
    best: Path
    last: Path
    kept: tuple[Path, ...] = ()

    def evaluation_checkpoints(self) -> tuple[tuple[int, Path], ...]:
        """(epochs trained, file) of each checkpoint to evaluate: the kept ``epochNNN.pt``, else ``last.pt``."""
        if self.kept:
            return tuple((checkpoint_epoch(p), p) for p in self.kept)
        return ((self.epoch, self.last),)


@dataclass(frozen=True)
class TrainingRuns:
    """The runs :func:`find_runs` found, in folder order."""

    root: Path
    runs: tuple[TrainingRun, ...]

    def __iter__(self) -> Iterator[TrainingRun]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: int) -> TrainingRun:
        return self.runs[index]

    def to_frame(self):
        """One row per run: sampler, seed, epoch, best_epoch, best, last, kept (number of kept checkpoints)."""
        import pandas as pd

        return pd.DataFrame([{**asdict(r), "kept": len(r.kept)} for r in self.runs],
                            columns=["sampler", "seed", "epoch", "best_epoch", "best", "last", "kept"])


def find_runs(root: str | os.PathLike) -> TrainingRuns:
    """The runs under ``root`` (as written by :func:`crowdkit.bias.train.train_arms`), one per ``*/last.pt``."""
    runs = []
    for last in sorted(Path(root).glob(f"*/{LAST}")):
        checkpoint = Checkpoint.load(last)
        runs.append(TrainingRun(sampler=checkpoint.config.sampler, seed=checkpoint.config.seed, epoch=checkpoint.epoch,
                                best_epoch=checkpoint.best_epoch, best=last.parent / BEST, last=last,
                                kept=tuple(sorted(last.parent.glob("epoch*.pt")))))
    return TrainingRuns(Path(root), tuple(runs))


# --------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint loaded for inference; ``embed_paths`` embeds image files (cached by the caller)."""

    config: TrainConfig
    net: Any = field(repr=False)
    backbone: Backbone = field(repr=False)
    metric: str = "euclidean_l2"

    def embed_inputs(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """(N, D) L2-normalised embeddings of model inputs (descriptors or crops, as the backbone eats)."""
        import torch

        out = []
        self.net.eval()
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                out.append(self.net(to_tensor(x[i:i + batch_size], self.backbone.input)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config.embedding_dim), np.float32)

    def embed_paths(self, paths: Sequence[Path], *, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) embeddings and statuses (:mod:`crowdkit.bias.descriptors` codes) of image files.

        Projection head: the shared dlib descriptors (centre fallback when no
        face). Image backbones: MTCNN margin crops of each image, the central
        box when no face is found.
        """
        if self.backbone.input == "dlib":
            found = describe_photos(list(paths), progress=progress)
            return self.embed_inputs(found.embeddings).astype(np.float32), found.status
        chips, status = _centred_chips(paths, self.backbone.image_size, progress=progress)
        return self.embed_inputs(chips).astype(np.float32), status


def _centred_chips(paths: Sequence[Path], size: int, *, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from tqdm.auto import tqdm

    from crowdkit.engine.align import margin_crop
    from crowdkit.engine.detect import get_detector

    det = get_detector("mtcnn")
    chips, status = [], []
    for path in tqdm(paths, desc="MTCNN crops", unit="img", disable=not show_progress(progress)):
        image = read_image(path)
        boxes = [face.box for face in det.detect(image)]
        if boxes:
            box, code = boxes[nearest_centre(boxes, image.shape)], FACE_FOUND
        else:
            box, code = centre_box(image.shape), CENTRE_FALLBACK
        chips.append(resize_square(margin_crop(image, box), size))
        status.append(code)
    return np.stack(chips), np.asarray(status, dtype=np.int8)


def load_model(path: str | os.PathLike, *, device: str = "cpu") -> TrainedModel:
    """Load a checkpoint written by :func:`crowdkit.bias.train.train` (``best.pt``, ``last.pt`` or ``epochNNN.pt``)."""
    checkpoint = Checkpoint.load(path, device=device)
    spec = BACKBONES.create(checkpoint.config.backbone)
    net = embedding_net(spec, checkpoint.config.embedding_dim)
    net.load_state_dict(checkpoint.model_state)
    net.to(device).eval()
    return TrainedModel(checkpoint.config, net, spec)
