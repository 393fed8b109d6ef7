"""The CPU default ethnicity classifier: multinomial logistic regression on dlib face descriptors.

The descriptors come from the shared photo pipeline
(:func:`crowdkit.bias.descriptors.describe_photos`, cached by image content and
shared with the training and evaluation steps), standardised per dimension.
Saved as ``model.npz`` (mean, scale, coefficients, intercept) beside
``classifier.json``.

Example
-------
>>> from crowdkit.bias.ethnicity import get_classifier
>>> probe = get_classifier("probe").fit(train.paths, train.labels)   # doctest: +SKIP
>>> probe.predict(test.paths).proba.shape                             # doctest: +SKIP
(N, 5)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from crowdkit.bias.classifier import CLASSES, CLASSIFIERS, EthnicityClassifier, Prediction, check_labels, training_checksum
from crowdkit.bias.descriptors import describe_photos
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import atomic_path


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits (N, C), shifted by each row's maximum for stability."""
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
    version = "3"  # 3: descriptors from crowdkit.bias.descriptors (YuNet, dlib chip, torch ResNet)
    reads_descriptors = True

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
        labels = check_labels(paths, labels)
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
        return softmax(X @ self.coef_.T + self.intercept_)

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
