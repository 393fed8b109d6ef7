"""What decides a triplet-training run (:class:`TrainConfig`) and one row of its curve (:class:`EpochMetrics`).

Both are saved in every checkpoint (:mod:`crowdkit.bias.checkpoints`); a
run resumes only from a checkpoint whose config matches apart from the
fields in :attr:`TrainConfig.RESUMABLE`.

Example
-------
>>> TrainConfig(sampler="stratified", epochs=5).same_run(TrainConfig(epochs=30))
['sampler']
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Mapping

from crowdkit.bias.backbones import BACKBONES
from crowdkit.common import config as ck_config
from crowdkit.common.exceptions import ConfigError

#: The two arms of the study: FaceNet's random identity batches and the label-stratified ones.
SAMPLERS = ("random", "stratified")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (saved in every checkpoint).

    ``epochs``: the study used 30, 50 and 75. ``patience``: stop after this
    many epochs without a better validation accuracy (None: never).
    ``val_fraction``: share of identities held out for validation.
    ``device``: "auto" (cuda when available), "cpu" or "cuda".
    ``checkpoint_dir``: None → ``$CROWDKIT_HOME/runs/<backbone>-<sampler>-s<seed>``.
    ``keep_epochs``: also keep ``epochNNN.pt`` after these epochs (e.g. (30, 50, 75)
    to evaluate the study's three budgets from one 75-epoch run).
    """

    backbone: str = "projection"
    sampler: str = "random"
    epochs: int = 30
    batches_per_epoch: int = 10
    people_per_batch: int = 30
    images_per_person: int = 10
    embedding_dim: int = 128
    lr: float = 1e-3
    margin: float = 0.2
    seed: int = 0
    device: str = "auto"
    patience: int | None = None
    val_fraction: float = 0.2
    checkpoint_dir: str | None = None
    keep_epochs: tuple[int, ...] = ()

    #: Fields that may differ between an interrupted run and its resumption.
    RESUMABLE: ClassVar[tuple[str, ...]] = ("epochs", "patience", "device", "checkpoint_dir", "keep_epochs")

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            BACKBONES.get(self.backbone)  # raises, listing the known names
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be 'random' or 'stratified', got {self.sampler!r}")
        for name in ("epochs", "batches_per_epoch", "people_per_batch", "images_per_person", "embedding_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")

    def run_dir(self) -> Path:
        """The run's checkpoint folder."""
        if self.checkpoint_dir is not None:
            return Path(self.checkpoint_dir)
        return ck_config.home() / "runs" / f"{self.backbone}-{self.sampler}-s{self.seed}"

    def resolved_device(self) -> str:
        """``device`` with "auto" resolved: "cuda" when torch sees a GPU, else "cpu"."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def same_run(self, other: "TrainConfig") -> list[str]:
        """Names of fields (other than :attr:`RESUMABLE`) on which two configs differ."""
        return [f.name for f in fields(self) if f.name not in self.RESUMABLE
                and getattr(self, f.name) != getattr(other, f.name)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """The config saved in a checkpoint (``dataclasses.asdict``); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        if "keep_epochs" in kept:
            kept["keep_epochs"] = tuple(kept["keep_epochs"])
        return cls(**kept)


@dataclass(frozen=True)
class EpochMetrics:
    """One row of the training curve."""

    epoch: int
    loss: float
    active_fraction: float
    mined_triplets: float
    val_accuracy: float
    val_auc: float
    seconds: float
