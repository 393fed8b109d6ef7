"""The ethnicity classifier's interface: what every backend predicts, saves and records.

A classifier predicts UTKFace's five race categories (:data:`CLASSES`) from
face images. Its predictions are **estimates with a measured error**, never
facts about a person; :attr:`EthnicityClassifier.fingerprint` is what a lookup
table records so that it is always known which classifier made its labels.

Backends register in :data:`CLASSIFIERS` (:mod:`crowdkit.bias.probe`,
:mod:`crowdkit.bias.vgg16`); :mod:`crowdkit.bias.ethnicity` creates, loads and
trains them by name. Each saves without pickle: a folder holding
``classifier.json`` (:data:`META_FILE`: name, version, classes, training-data
checksum, options) and its weights.
"""
from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from crowdkit import __version__
from crowdkit.common.datasets import RACE_NAMES
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import sha256_file, write_json_atomic
from crowdkit.common.registry import Registry

CLASSES: tuple[str, ...] = RACE_NAMES
PROBA_COLUMNS: tuple[str, ...] = tuple(f"p_{c.lower()}" for c in CLASSES)
META_FILE = "classifier.json"


@dataclass(frozen=True, eq=False)
class Prediction:
    """Class probabilities float (N, 5) in :data:`CLASSES` order and the face-detection flag per image.

    ``has_face`` is bool (N,); backends that run no detector (vgg16 sees the
    whole crop) set ``detects_faces=False`` and ``has_face`` all True.
    """

    proba: np.ndarray
    has_face: np.ndarray
    detects_faces: bool

    @property
    def labels(self) -> np.ndarray:
        return self.proba.argmax(axis=1)


def training_checksum(paths: Sequence[str | os.PathLike], labels: Sequence[int]) -> str:
    """sha256 over the sorted (file sha256, label) pairs a classifier was fitted on."""
    items = sorted(f"{sha256_file(p)}:{int(y)}" for p, y in zip(paths, labels))
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


class EthnicityClassifier(ABC):
    """Predicts UTKFace's five race categories from face images (paths)."""

    name: ClassVar[str]
    version: ClassVar[str]
    classes: tuple[str, ...] = CLASSES
    #: True when the backend classifies dlib descriptors (:meth:`predict_features`), so callers
    #: holding the shared descriptors of :mod:`crowdkit.bias.descriptors` need not embed again.
    reads_descriptors: ClassVar[bool] = False

    def __init__(self) -> None:
        self.checksum: str = ""
        self.trained_on: int = 0

    # -- fitting and predicting
    @abstractmethod
    def fit(self, paths: Sequence[str | os.PathLike], labels: Sequence[int] | np.ndarray, **options: Any) -> "EthnicityClassifier":
        """Fit on images and race codes 0–4; returns self."""

    @abstractmethod
    def predict(self, paths: Sequence[str | os.PathLike]) -> Prediction:
        """Probabilities and face flags for each image."""

    def predict_proba(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """float (N, 5), rows sum to 1, columns in :data:`CLASSES` order."""
        return self.predict(paths).proba

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        """Probabilities (N, 5) from dlib descriptors (N, 128); only where :attr:`reads_descriptors` is True."""
        raise ConfigError(f"the {self.name} classifier reads images, not dlib descriptors; use predict_proba(paths)")

    # -- identity and persistence
    @property
    def fingerprint(self) -> dict[str, str]:
        """What a lookup table records to know which classifier made it."""
        return {"classifier": self.name, "classifier_version": self.version, "training_checksum": self.checksum,
                "classifier_options": json.dumps(self.options(), sort_keys=True)}

    def options(self) -> dict[str, Any]:
        return {}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``classifier.json`` and the weights into ``folder``; returns the folder."""
        if not self.checksum:
            raise ConfigError(f"{self.name} classifier is not fitted; call fit() before save()")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_weights(folder)
        write_json_atomic(
            folder / META_FILE,
            {**self.fingerprint, "classes": list(self.classes), "trained_on": self.trained_on,
             "options": self.options(), "crowdkit_version": __version__,
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        )
        return folder

    @classmethod
    def from_saved(cls, folder: Path, meta: Mapping[str, Any]) -> "EthnicityClassifier":
        """This backend rebuilt from a folder :meth:`save` wrote, given its parsed ``classifier.json``.

        Checking that the folder belongs to this backend and version is
        :func:`crowdkit.bias.ethnicity.load_classifier`'s job.
        """
        model = cls(**meta.get("options", {}))
        model._load_weights(folder)
        model.checksum = meta["training_checksum"]
        model.trained_on = int(meta.get("trained_on", 0))
        return model

    @abstractmethod
    def _save_weights(self, folder: Path) -> None: ...

    @abstractmethod
    def _load_weights(self, folder: Path) -> None: ...


CLASSIFIERS: Registry[EthnicityClassifier] = Registry("ethnicity classifier")


def check_labels(paths: Sequence, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """``labels`` as int64 race codes, checked against ``paths`` (same length, not empty, codes 0–4)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(paths) != len(labels):
        raise ConfigError(f"{len(paths)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise ConfigError("no training images")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise ConfigError(f"labels must be race codes 0–{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    return labels

