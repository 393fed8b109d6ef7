"""The study's ethnicity classifier: VGG16 from random initialisation with a 5-class head (for a GPU).

Adam, per-epoch checkpoints (``last.pt``, ``best.pt``; resumed when present),
early stopping on validation accuracy. Saved as ``model.pt`` (a torch
``state_dict``, loaded with ``weights_only=True``) beside ``classifier.json``.
On a CPU only a smoke run (a few images, ``max_steps=1``, ``input_size=64``)
is practical.

Example
-------
>>> from crowdkit.bias.ethnicity import get_classifier
>>> clf = get_classifier("vgg16", device="cuda").fit(train.paths, train.labels)   # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from crowdkit.bias.classifier import CLASSES, CLASSIFIERS, EthnicityClassifier, Prediction, check_labels, training_checksum
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import atomic_path, read_image, show_progress

logger = logging.getLogger(__name__)


@dataclass
class _FitProgress:
    """The mutable state of one :meth:`VGG16Classifier.fit` (what ``last.pt`` saves)."""

    start: int = 0
    best_acc: float = -1.0
    stale: int = 0
    steps: int = 0
    best_state: dict | None = None


@CLASSIFIERS.register("vgg16")
class VGG16Classifier(EthnicityClassifier):
    """The study's classifier: VGG16 (random init) with a 5-class head, trained with Adam.

    Meant for a GPU (``device="cuda"``); on a CPU only a smoke run (a few images,
    ``max_steps=1``, ``input_size=64``) is practical.

    Parameters
    ----------
    input_size
        Square input side in pixels (224 in the study; VGG16's adaptive pooling accepts smaller).
    lr, batch_size, epochs, patience
        Adam learning rate, mini-batch size, epoch budget, epochs without a
        validation-accuracy gain before stopping.
    device
        ``"cuda"``, ``"cpu"`` or ``None`` (CUDA when available).
    """

    name = "vgg16"
    version = "1"

    def __init__(self, *, input_size: int = 224, lr: float = 1e-4, batch_size: int = 32, epochs: int = 30,
                 patience: int = 5, device: str | None = None, seed: int = 0) -> None:
        super().__init__()
        self.input_size, self.lr, self.batch_size = int(input_size), float(lr), int(batch_size)
        self.epochs, self.patience, self.seed = int(epochs), int(patience), int(seed)
        self.device = device
        self.model = None
        self.history: list[dict[str, float]] = []

    def options(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "lr": self.lr, "batch_size": self.batch_size,
                "epochs": self.epochs, "patience": self.patience, "seed": self.seed}

    def _torch_device(self):
        import torch

        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _build(self):
        import torch
        from torchvision.models import vgg16

        torch.manual_seed(self.seed)
        model = vgg16(weights=None)
        model.classifier[6] = torch.nn.Linear(model.classifier[6].in_features, len(CLASSES))
        return model.to(self._torch_device())

    def _tensor(self, paths: Sequence, *, flip: np.ndarray | None = None):
        import torch
        import torch.nn.functional as F

        images = [read_image(p) for p in paths]
        batch = torch.stack([torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1) for im in images]) if len(
            {im.shape for im in images}) == 1 else None
        if batch is None:  # different sizes: resize one by one
            batch = torch.cat([F.interpolate(torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float(),
                                             size=(self.input_size,) * 2, mode="bilinear", align_corners=False) for im in images])
        batch = batch.float()
        if batch.shape[-1] != self.input_size or batch.shape[-2] != self.input_size:
            batch = F.interpolate(batch, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        if flip is not None and flip.any():
            batch[torch.from_numpy(flip)] = batch[torch.from_numpy(flip)].flip(-1)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
        return ((batch - mean) / std).to(self._torch_device())

    def fit(self, paths, labels, *, validation: tuple[Sequence, Sequence[int]] | None = None,
            checkpoint_dir: str | os.PathLike | None = None, max_steps: int | None = None, progress: bool = True,
            **_: Any) -> "VGG16Classifier":
        """Train with Adam; early stopping on validation accuracy (a 10% stratified hold-out unless given).

        ``checkpoint_dir`` receives ``last.pt`` (model + optimiser + epoch) after every
        epoch and ``best.pt``; an existing ``last.pt`` there is resumed. ``max_steps``
        caps the optimiser steps (smoke tests).
        """
        import torch

        paths, labels_fit, validation = self._hold_out(paths, labels, validation, max_steps)
        self.checksum = training_checksum(paths, labels_fit)
        self.trained_on = len(labels_fit)
        self.model = self._build()
        optimiser = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        run = self._resume(ckpt, optimiser)
        rng = np.random.default_rng(self.seed)
        for epoch in range(run.start, self.epochs):
            record = {"epoch": epoch, "loss": self._train_epoch(paths, labels_fit, optimiser, rng, run, epoch,
                                                                max_steps=max_steps, progress=progress)}
            if validation is not None:
                record["val_accuracy"] = float((self._proba(validation[0]).argmax(axis=1)
                                                == np.asarray(validation[1])).mean())
                self._track_best(run, record["val_accuracy"], ckpt)
            self.history.append(record)
            logger.info("vgg16: %s", record)
            self._save_last(ckpt, optimiser, epoch, run)
            if (max_steps is not None and run.steps >= max_steps) or run.stale >= self.patience:
                break
        self._restore_best(run, ckpt)
        return self

    def _hold_out(self, paths, labels, validation, max_steps):
        """(training paths, their labels, validation): a seeded 10 % stratified hold-out unless one is given."""
        labels = check_labels(paths, labels)
        paths = [Path(p) for p in paths]
        if validation is not None or max_steps is not None:
            return paths, labels, validation
        from sklearn.model_selection import train_test_split

        idx_train, idx_val = train_test_split(np.arange(len(paths)), test_size=0.1, random_state=self.seed, stratify=labels)
        return [paths[i] for i in idx_train], labels[idx_train], ([paths[i] for i in idx_val], labels[idx_val])

    def _resume(self, ckpt: Path | None, optimiser: Any) -> "_FitProgress":
        import torch

        if ckpt is None or not (ckpt / "last.pt").is_file():
            return _FitProgress()
        state = torch.load(ckpt / "last.pt", map_location=self._torch_device(), weights_only=True)
        self.model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        run = _FitProgress(start=int(state["epoch"]) + 1, best_acc=float(state["best_acc"]), stale=int(state["stale"]))
        logger.info("vgg16: resumed from %s at epoch %d", ckpt / "last.pt", run.start)
        return run

    def _train_epoch(self, paths, labels, optimiser, rng, run: "_FitProgress", epoch: int, *,
                     max_steps: int | None, progress: bool) -> float:
        """One pass in a seeded order with random horizontal flips; returns the mean loss."""
        import torch
        from tqdm.auto import tqdm

        loss_fn = torch.nn.CrossEntropyLoss()
        self.model.train()
        order = rng.permutation(len(paths))
        losses = []
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc=f"vgg16 epoch {epoch + 1}/{self.epochs}", disable=not show_progress(progress), leave=False):
            x = self._tensor([paths[i] for i in batch], flip=rng.random(len(batch)) < 0.5)
            y = torch.from_numpy(labels[batch]).to(x.device)
            optimiser.zero_grad()
            loss = loss_fn(self.model(x), y)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            run.steps += 1
            if max_steps is not None and run.steps >= max_steps:
                break
        return float(np.mean(losses))

    def _track_best(self, run: "_FitProgress", accuracy: float, ckpt: Path | None) -> None:
        import torch

        if not accuracy > run.best_acc:
            run.stale += 1
            return
        run.best_acc, run.stale = accuracy, 0
        run.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        if ckpt is not None:
            ckpt.mkdir(parents=True, exist_ok=True)
            with atomic_path(ckpt / "best.pt") as tmp:
                torch.save(run.best_state, tmp)

    def _save_last(self, ckpt: Path | None, optimiser: Any, epoch: int, run: "_FitProgress") -> None:
        import torch

        if ckpt is None:
            return
        ckpt.mkdir(parents=True, exist_ok=True)
        with atomic_path(ckpt / "last.pt") as tmp:
            torch.save({"model": self.model.state_dict(), "optimiser": optimiser.state_dict(), "epoch": epoch,
                        "best_acc": run.best_acc, "stale": run.stale}, tmp)

    def _restore_best(self, run: "_FitProgress", ckpt: Path | None) -> None:
        import torch

        if run.best_state is not None:
            self.model.load_state_dict(run.best_state)
        elif ckpt is not None and (ckpt / "best.pt").is_file():  # resumed after the last improvement
            self.model.load_state_dict(torch.load(ckpt / "best.pt", map_location=self._torch_device(), weights_only=True))

    def _proba(self, paths: Sequence) -> np.ndarray:
        import torch

        if self.model is None:
            raise ConfigError("vgg16 classifier is not fitted; call fit() or load() first")
        self.model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(paths), self.batch_size):
                out.append(torch.softmax(self.model(self._tensor(paths[i:i + self.batch_size])), dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(CLASSES)))

    def predict(self, paths) -> Prediction:
        proba = self._proba([Path(p) for p in paths])
        return Prediction(proba, np.ones(len(proba), dtype=bool), detects_faces=False)

    def _save_weights(self, folder: Path) -> None:
        import torch

        with atomic_path(folder / "model.pt") as tmp:
            torch.save(self.model.state_dict(), tmp)

    def _load_weights(self, folder: Path) -> None:
        import torch

        self.model = self._build()
        self.model.load_state_dict(torch.load(folder / "model.pt", map_location=self._torch_device(), weights_only=True))
