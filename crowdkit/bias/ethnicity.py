"""Ethnicity classifier (UTKFace's five race categories) and the SQLite lookup table built with it.

The study labels every training identity with the prediction of a classifier
trained on UTKFace, then stratifies FaceNet's mini-batches by those labels.
Those labels are **predictions with a measured error**, not facts about a
person; every table this module writes records which classifier made them.

Two backends share one interface (:class:`EthnicityClassifier`), chosen by name
from :data:`CLASSIFIERS`:

``"probe"`` (CPU default)
    Multinomial logistic regression on 128-d dlib ResNet face embeddings
    (dlib's own pipeline, :mod:`crowdkit.bias.descriptors`). Embeddings are cached
    by image content and shared with the training and evaluation steps.
``"vgg16"`` (the study's architecture, for a GPU)
    ``torchvision.models.vgg16(weights=None)`` with a 5-class head, Adam,
    per-epoch checkpoints, early stopping on validation accuracy.

Both save without pickle: a folder holding ``classifier.json`` (name, version,
classes, training-data checksum, options) and ``model.npz`` (probe
coefficients) or ``model.pt`` (a torch ``state_dict``, loaded with
``weights_only=True``).

Example::

    >>> from crowdkit.common.datasets import load_utkface, split_stratified
    >>> from crowdkit.bias.ethnicity import get_classifier, evaluate_classifier
    >>> train, test = split_stratified(load_utkface(), seed=0)     # doctest: +SKIP
    >>> clf = get_classifier("probe").fit(train.paths, train.labels)  # doctest: +SKIP
    >>> evaluate_classifier(test.labels, clf.predict_proba(test.paths)).accuracy  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from crowdkit import __version__
from crowdkit.common import config
from crowdkit.common.datasets import RACE_NAMES
from crowdkit.bias.descriptors import describe_photos
from crowdkit.common.exceptions import ConfigError, DataNotFoundError, LookupTableMismatchError
from crowdkit.common.io import atomic_path, read_image, sha256_file, write_json_atomic
from crowdkit.common.registry import Registry

logger = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = RACE_NAMES
PROBA_COLUMNS: tuple[str, ...] = tuple(f"p_{c.lower()}" for c in CLASSES)
META_FILE = "classifier.json"

# --------------------------------------------------------------------------- classifiers


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
    def load(cls, folder: str | os.PathLike) -> "EthnicityClassifier":
        """Load any saved classifier (the backend is read from ``classifier.json``)."""
        folder = Path(folder)
        meta_file = folder / META_FILE
        if not meta_file.is_file():
            raise DataNotFoundError(f"{folder} holds no {META_FILE}; is it a folder written by EthnicityClassifier.save()?")
        meta = json.loads(meta_file.read_text())
        backend = CLASSIFIERS.get(meta["classifier"])
        if meta.get("classifier_version") != backend.version:
            raise ConfigError(
                f"{folder} was saved by {meta['classifier']} version {meta.get('classifier_version')}, "
                f"this crowdkit has version {backend.version}; retrain and save it again"
            )
        if tuple(meta["classes"]) != CLASSES:
            raise ConfigError(f"{folder} has classes {meta['classes']}, expected {list(CLASSES)}")
        model = backend(**meta.get("options", {}))
        model._load_weights(folder)
        model.checksum = meta["training_checksum"]
        model.trained_on = int(meta.get("trained_on", 0))
        return model

    @abstractmethod
    def _save_weights(self, folder: Path) -> None: ...

    @abstractmethod
    def _load_weights(self, folder: Path) -> None: ...


CLASSIFIERS: Registry[EthnicityClassifier] = Registry("ethnicity classifier")


def get_classifier(name: str = "probe", **options: Any) -> EthnicityClassifier:
    """A new, unfitted classifier by name (``"probe"`` or ``"vgg16"``)."""
    return CLASSIFIERS.create(name, **options)


def load_classifier(folder: str | os.PathLike) -> EthnicityClassifier:
    return EthnicityClassifier.load(folder)


def _check_labels(paths: Sequence, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if len(paths) != len(labels):
        raise ConfigError(f"{len(paths)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise ConfigError("no training images")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise ConfigError(f"labels must be race codes 0–{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    return labels


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@CLASSIFIERS.register("probe")
class ProbeClassifier(EthnicityClassifier):
    """Multinomial logistic regression on dlib face embeddings (standardised).

    Parameters
    ----------
    C
        Inverse regularisation strength (sklearn's ``C``).
    balanced
        ``class_weight="balanced"``: weight classes inversely to their frequency.
    """

    name = "probe"
    version = "2"  # 2: descriptors from crowdkit.bias.descriptors (HOG, then MTCNN)

    def __init__(self, *, C: float = 1.0, balanced: bool = True) -> None:
        super().__init__()
        self.C = float(C)
        self.balanced = bool(balanced)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None

    def options(self) -> dict[str, Any]:
        return {"C": self.C, "balanced": self.balanced}

    def fit(self, paths, labels, **_: Any) -> "ProbeClassifier":
        labels = _check_labels(paths, labels)
        return self.fit_features(describe_photos(paths).embeddings, labels, checksum=training_checksum(paths, labels))

    def fit_features(self, X: np.ndarray, labels: np.ndarray, *, checksum: str) -> "ProbeClassifier":
        """Fit on precomputed embeddings (N, 128); ``checksum`` identifies the training data."""
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels, dtype=np.int64)
        missing = sorted(set(range(len(CLASSES))) - set(labels.tolist()))
        if missing:
            raise ConfigError(f"training labels lack class(es) {[CLASSES[i] for i in missing]}; every class needs examples")
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-8
        model = LogisticRegression(C=self.C, class_weight="balanced" if self.balanced else None, max_iter=5000)
        model.fit((X - self.mean_) / self.scale_, labels)
        self.coef_ = model.coef_.astype(np.float64)
        self.intercept_ = model.intercept_.astype(np.float64)
        self.checksum = checksum
        self.trained_on = len(labels)
        return self

    def predict_features(self, X: np.ndarray) -> np.ndarray:
        if self.coef_ is None:
            raise ConfigError("probe classifier is not fitted; call fit() or load() first")
        X = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        return _softmax(X @ self.coef_.T + self.intercept_)

    def predict(self, paths) -> Prediction:
        features = describe_photos(paths)
        return Prediction(self.predict_features(features.embeddings), features.has_face, detects_faces=True)

    def _save_weights(self, folder: Path) -> None:
        with atomic_path(folder / "model.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, mean=self.mean_, scale=self.scale_, coef=self.coef_, intercept=self.intercept_)

    def _load_weights(self, folder: Path) -> None:
        with np.load(folder / "model.npz", allow_pickle=False) as data:
            self.mean_, self.scale_ = data["mean"], data["scale"]
            self.coef_, self.intercept_ = data["coef"], data["intercept"]


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
        from tqdm.auto import tqdm

        labels = _check_labels(paths, labels)
        paths = [Path(p) for p in paths]
        if validation is None and max_steps is None:
            from sklearn.model_selection import train_test_split

            idx_train, idx_val = train_test_split(np.arange(len(paths)), test_size=0.1, random_state=self.seed, stratify=labels)
            validation = ([paths[i] for i in idx_val], labels[idx_val])
            paths, labels_fit = [paths[i] for i in idx_train], labels[idx_train]
        else:
            labels_fit = labels
        self.checksum = training_checksum(paths, labels_fit)
        self.trained_on = len(labels_fit)
        self.model = self._build()
        optimiser = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
        start, best_acc, best_state, stale = 0, -1.0, None, 0
        if ckpt is not None and (ckpt / "last.pt").is_file():
            state = torch.load(ckpt / "last.pt", map_location=self._torch_device(), weights_only=True)
            self.model.load_state_dict(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            start, best_acc, stale = int(state["epoch"]) + 1, float(state["best_acc"]), int(state["stale"])
            logger.info("vgg16: resumed from %s at epoch %d", ckpt / "last.pt", start)
        rng = np.random.default_rng(self.seed)
        steps = 0
        for epoch in range(start, self.epochs):
            self.model.train()
            order = rng.permutation(len(paths))
            losses = []
            batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            for batch in tqdm(batches, desc=f"vgg16 epoch {epoch + 1}/{self.epochs}", disable=not progress, leave=False):
                x = self._tensor([paths[i] for i in batch], flip=rng.random(len(batch)) < 0.5)
                y = torch.from_numpy(labels_fit[batch]).to(x.device)
                optimiser.zero_grad()
                loss = loss_fn(self.model(x), y)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
            record = {"epoch": epoch, "loss": float(np.mean(losses))}
            if validation is not None:
                val_pred = self._proba(validation[0]).argmax(axis=1)
                record["val_accuracy"] = float((val_pred == np.asarray(validation[1])).mean())
                if record["val_accuracy"] > best_acc:
                    best_acc, stale = record["val_accuracy"], 0
                    best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
                    if ckpt is not None:
                        ckpt.mkdir(parents=True, exist_ok=True)
                        with atomic_path(ckpt / "best.pt") as tmp:
                            torch.save(best_state, tmp)
                else:
                    stale += 1
            self.history.append(record)
            logger.info("vgg16: %s", record)
            if ckpt is not None:
                ckpt.mkdir(parents=True, exist_ok=True)
                with atomic_path(ckpt / "last.pt") as tmp:
                    torch.save({"model": self.model.state_dict(), "optimiser": optimiser.state_dict(), "epoch": epoch,
                                "best_acc": best_acc, "stale": stale}, tmp)
            if (max_steps is not None and steps >= max_steps) or stale >= self.patience:
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        elif ckpt is not None and (ckpt / "best.pt").is_file():  # resumed after the last improvement
            self.model.load_state_dict(torch.load(ckpt / "best.pt", map_location=self._torch_device(), weights_only=True))
        return self

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


def default_classifier_dir(classifier: str = "probe", *, seed: int = 0, max_train_per_class: int | None = None) -> Path:
    """Where :func:`ensure_classifier` keeps a classifier trained on UTKFace's seeded 70% split."""
    size = "all" if max_train_per_class is None else f"{int(max_train_per_class)}pc"
    return config.cache_dir("ethnicity", "classifiers") / f"{classifier}-seed{int(seed)}-{size}"


def ensure_classifier(classifier: str = "probe", *, seed: int = 0, max_train_per_class: int | None = None,
                      test_size: float = 0.3, retrain: bool = False, **options: Any) -> EthnicityClassifier:
    """Load the classifier saved in :func:`default_classifier_dir`, or train it on UTKFace and save it.

    Training uses :func:`crowdkit.common.datasets.split_stratified` (``test_size``, ``seed``) and, with
    ``max_train_per_class``, a seeded per-class subsample of the training side. Notebooks
    downstream (training, evaluation) call this to get the same classifier the ethnicity
    chapter measured.
    """
    from crowdkit.common.datasets import load_utkface, split_stratified, subsample_per_class

    folder = default_classifier_dir(classifier, seed=seed, max_train_per_class=max_train_per_class)
    model = get_classifier(classifier, **options)
    meta_file = folder / META_FILE
    if not retrain and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta.get("classifier_version") != model.version:  # saved by an older crowdkit: stale, not an error
            logger.info("%s holds %s version %s, this crowdkit has version %s; retraining", folder, classifier,
                        meta.get("classifier_version"), model.version)
        else:
            saved = load_classifier(folder)
            if saved.options() == model.options():
                return saved
            logger.info("%s holds a %s classifier with other options (%s); retraining", folder, classifier,
                        saved.options())
    train, _ = split_stratified(load_utkface(), test_size=test_size, seed=seed)
    if max_train_per_class is not None:
        train = subsample_per_class(train, max_train_per_class, seed=seed)
    model.fit(train.paths, train.labels)
    model.save(folder)
    return model


def default_lookup_path(dataset: str = "celeba", *, classifier: str = "probe", seed: int = 0) -> Path:
    """The conventional lookup-table file for ``dataset`` labelled by ``classifier`` (under the cache folder)."""
    return config.cache_dir("ethnicity", "lookup") / f"{dataset}-{classifier}-seed{int(seed)}.sqlite"


#: Sizes per book profile: images per class to fit on (None: the whole 70% split), test images per
#: class (None: the whole 30% split), CelebA identities in the lookup table (None: all), images per identity.
PROFILES: dict[str, dict[str, int | None]] = {
    "quick": {"max_train_per_class": 40, "max_test_per_class": 20, "max_identities": 30, "max_images": 5},
    "default": {"max_train_per_class": None, "max_test_per_class": None, "max_identities": None, "max_images": 10},
    "full": {"max_train_per_class": None, "max_test_per_class": None, "max_identities": None, "max_images": 10},
}


def profile_settings(profile: str = "default") -> dict[str, int | None]:
    """The size knobs of a book profile (``quick``, ``default``, ``full``)."""
    try:
        return dict(PROFILES[profile])
    except KeyError:
        raise ConfigError(f"unknown profile {profile!r}; known profiles: {', '.join(PROFILES)}") from None


def ensure_lookup_table(db_path: str | os.PathLike, identities: Mapping[str, Sequence[str | os.PathLike]],
                        classifier: EthnicityClassifier, *, max_images: int = 10, seed: int = 0,
                        progress: bool = True) -> Path:
    """Build the lookup table unless ``db_path`` already holds one made by ``classifier`` with the same
    ``max_images``, ``seed`` and identities; returns ``db_path``."""
    db_path = Path(db_path)
    if db_path.is_file():
        try:
            meta = check_lookup_table(db_path, classifier)
        except LookupTableMismatchError:
            meta = None
        if meta and meta.get("seed") == str(seed) and meta.get("max_images") == str(max_images):
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
                have = {row[0] for row in con.execute("SELECT identity FROM identities")}
            if have == {str(k) for k, v in identities.items() if v}:
                return db_path
    build_lookup_table(db_path, identities, classifier, max_images=max_images, seed=seed, overwrite=True, progress=progress)
    return db_path


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, eq=False)
class ClassifierReport:
    """Accuracy, balanced accuracy, per-class precision/recall/F1/support and the confusion matrix.

    ``per_class`` is a DataFrame indexed by class name; ``confusion`` a DataFrame
    with true classes as rows and predicted classes as columns (counts).
    """

    n: int
    accuracy: float
    balanced_accuracy: float
    per_class: Any
    confusion: Any

    def summary(self) -> dict[str, float]:
        return {"n": self.n, "accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "error_rate": 1.0 - self.accuracy, "macro_f1": float(self.per_class["f1-score"].mean())}


def evaluate_classifier(y_true: Sequence[int] | np.ndarray, proba: np.ndarray, *, classes: Sequence[str] = CLASSES) -> ClassifierReport:
    """Score predictions: ``y_true`` int (N,), ``proba`` float (N, C) (argmax is the prediction)."""
    import pandas as pd
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, classification_report, confusion_matrix

    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ConfigError(f"proba must have shape ({len(y_true)}, {len(classes)}), got {proba.shape}")
    y_pred = proba.argmax(axis=1)
    labels = list(range(len(classes)))
    report = classification_report(y_true, y_pred, labels=labels, target_names=list(classes), output_dict=True, zero_division=np.nan)
    per_class = pd.DataFrame({c: report[c] for c in classes}).T[["precision", "recall", "f1-score", "support"]]
    per_class["support"] = per_class["support"].astype(int)
    confusion = pd.DataFrame(confusion_matrix(y_true, y_pred, labels=labels), index=pd.Index(classes, name="true"),
                             columns=pd.Index(classes, name="predicted"))
    return ClassifierReport(len(y_true), float(accuracy_score(y_true, y_pred)),
                            float(balanced_accuracy_score(y_true, y_pred)), per_class, confusion)


# --------------------------------------------------------------------------- lookup table (SQLite)

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE identities (
    identity TEXT PRIMARY KEY, image_count INTEGER NOT NULL, sampled_count INTEGER NOT NULL, path TEXT NOT NULL,
    label TEXT NOT NULL, confidence REAL NOT NULL, faces_found INTEGER,
    {", ".join(f"{c} REAL NOT NULL" for c in PROBA_COLUMNS)});
CREATE TABLE images (
    identity TEXT NOT NULL REFERENCES identities(identity), path TEXT NOT NULL,
    {", ".join(f"{c} REAL NOT NULL" for c in PROBA_COLUMNS)},
    predicted TEXT NOT NULL, has_face INTEGER, PRIMARY KEY (identity, path));
"""


@dataclass(frozen=True)
class LookupTableInfo:
    """What :func:`build_lookup_table` wrote."""

    db_path: Path
    identities: int
    images: int
    images_without_face: int
    meta: Mapping[str, str]


def sample_images(paths: Sequence[Path], identity: str, *, max_images: int, seed: int) -> list[Path]:
    """Up to ``max_images`` of an identity's images, a seeded choice that depends only on (seed, identity, paths)."""
    ordered = sorted(Path(p) for p in paths)
    if len(ordered) <= max_images:
        return ordered
    stream = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "little")
    rng = np.random.default_rng([seed, stream])
    return [ordered[i] for i in sorted(rng.choice(len(ordered), size=max_images, replace=False))]


def read_lookup_meta(db_path: str | os.PathLike) -> dict[str, str]:
    db_path = Path(db_path)
    if not db_path.is_file():
        raise DataNotFoundError(f"lookup table {db_path} does not exist; build it with build_lookup_table()")
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
        return dict(con.execute("SELECT key, value FROM meta").fetchall())


def check_lookup_table(db_path: str | os.PathLike, classifier: EthnicityClassifier | Mapping[str, str]) -> dict[str, str]:
    """Raise :class:`LookupTableMismatchError` unless ``db_path`` was built by ``classifier``; returns its meta."""
    meta = read_lookup_meta(db_path)
    wanted = classifier.fingerprint if isinstance(classifier, EthnicityClassifier) else dict(classifier)
    differs = {k: (meta.get(k), v) for k, v in wanted.items() if meta.get(k) != v}
    if differs:
        detail = "; ".join(f"{k}: table has {have!r}, asked for {want!r}" for k, (have, want) in differs.items())
        raise LookupTableMismatchError(
            f"lookup table {db_path} was built with a different classifier ({detail}). Rebuild it with "
            "build_lookup_table(..., overwrite=True) or ask for the classifier it was built with."
        )
    return meta


def build_lookup_table(db_path: str | os.PathLike, identities: Mapping[str, Sequence[str | os.PathLike]],
                       classifier: EthnicityClassifier, *, max_images: int = 10, seed: int = 0,
                       folders: Mapping[str, str | os.PathLike] | None = None, overwrite: bool = False,
                       progress: bool = True) -> LookupTableInfo:
    """Label every identity with the classifier's mean class probabilities over up to ``max_images`` images.

    Writes an SQLite file with tables ``identities`` (one row per identity: all-image
    count, sampled count, folder, argmax label of the mean probabilities and that
    probability as ``confidence``, the mean ``p_*``), ``images`` (per sampled image:
    ``p_*``, predicted label, ``has_face``; NULL when the classifier runs no detector)
    and ``meta`` (classifier name, version, training checksum, seed, max_images,
    created, crowdkit version). The file is built in a temporary file and moved into
    place, so a rebuild with the same inputs yields the same rows and a crash leaves
    the old table. An existing table made by a different classifier raises
    :class:`LookupTableMismatchError` unless ``overwrite=True``.
    """
    from tqdm.auto import tqdm

    db_path = Path(db_path)
    if max_images < 1:
        raise ConfigError(f"max_images must be at least 1, got {max_images}")
    if db_path.exists() and not overwrite:
        check_lookup_table(db_path, classifier)
    empty = [k for k, v in identities.items() if not v]
    if empty:
        logger.warning("lookup table: %d identit(ies) have no images and are left out: %s", len(empty), empty[:10])
    chosen = {k: sample_images(list(v), str(k), max_images=max_images, seed=seed) for k, v in identities.items() if v}
    if not chosen:
        raise ConfigError("no identity has any image; nothing to put in the lookup table")
    flat = [p for ps in chosen.values() for p in ps]
    prediction = classifier.predict(flat)
    proba, has_face = prediction.proba, prediction.has_face
    meta = {**classifier.fingerprint, "seed": str(seed), "max_images": str(max_images), "crowdkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "classes": ",".join(CLASSES)}
    image_rows, identity_rows = [], []
    start = 0
    for identity, paths in tqdm(chosen.items(), desc="lookup table", disable=not progress):
        block = proba[start:start + len(paths)]
        faces = has_face[start:start + len(paths)]
        for p, row, face in zip(paths, block, faces):
            image_rows.append((str(identity), str(p), *map(float, row), CLASSES[int(row.argmax())],
                               int(face) if prediction.detects_faces else None))
        mean = block.mean(axis=0)
        folder = Path(folders[identity]) if folders and identity in folders else Path(os.path.commonpath([str(Path(p).parent) for p in identities[identity]]))
        identity_rows.append((str(identity), len(identities[identity]), len(paths), str(folder), CLASSES[int(mean.argmax())],
                              float(mean.max()), int(faces.sum()) if prediction.detects_faces else None, *map(float, mean)))
        start += len(paths)
    with atomic_path(db_path) as tmp:
        with sqlite3.connect(tmp) as con:
            con.executescript(_SCHEMA)
            con.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            con.executemany(f"INSERT INTO identities VALUES ({', '.join('?' * (7 + len(CLASSES)))})", identity_rows)
            con.executemany(f"INSERT INTO images VALUES ({', '.join('?' * (4 + len(CLASSES)))})", image_rows)
        con.close()
    no_face = int((~has_face).sum()) if prediction.detects_faces else 0
    if no_face:
        logger.warning("lookup table: no face detected in %d of %d images; the whole image was classified", no_face, len(flat))
    return LookupTableInfo(db_path, len(identity_rows), len(image_rows), no_face, meta)


def read_lookup_table(db_path: str | os.PathLike, *, classifier: EthnicityClassifier | Mapping[str, str] | None = None,
                      table: str = "identities"):
    """The ``identities`` (or ``images``) table as a DataFrame; with ``classifier``, check it made the table first."""
    import pandas as pd

    if table not in {"identities", "images", "meta"}:
        raise ConfigError(f"table must be 'identities', 'images' or 'meta', got {table!r}")
    if classifier is not None:
        check_lookup_table(db_path, classifier)
    else:
        read_lookup_meta(db_path)
    with sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True) as con:
        order = "identity" if table == "identities" else ("identity, path" if table == "images" else "key")
        frame = pd.read_sql_query(f"SELECT * FROM {table} ORDER BY {order}", con)
    return frame


def lookup_labels(db_path: str | os.PathLike, *, classifier: EthnicityClassifier | Mapping[str, str] | None = None) -> dict[str, str]:
    """identity → predicted label, from a lookup table (the input of the stratified sampler)."""
    frame = read_lookup_table(db_path, classifier=classifier)
    return dict(zip(frame["identity"], frame["label"]))
