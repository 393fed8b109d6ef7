"""The ethnicity classifier by name: create, load, train once on UTKFace, and measure its error.

The study labels every training identity with the prediction of a classifier
trained on UTKFace, then stratifies FaceNet's mini-batches by those labels.
Those labels are **predictions with a measured error**, not facts about a
person: :func:`measure_classifier` measures the error on UTKFace's held-out
split, and every label table downstream carries it (:mod:`crowdkit.bias.lookup`).

Backends (:data:`crowdkit.bias.classifier.CLASSIFIERS`): ``"probe"`` (CPU
default, :mod:`crowdkit.bias.probe`) and ``"vgg16"`` (the study's
architecture, for a GPU, :mod:`crowdkit.bias.vgg16`).

Example::

    >>> from crowdkit.common.datasets import load_utkface, split_stratified
    >>> train, test = split_stratified(load_utkface(), seed=0)     # doctest: +SKIP
    >>> clf = get_classifier("probe").fit(train.paths, train.labels)  # doctest: +SKIP
    >>> evaluate_classifier(test.labels, clf.predict_proba(test.paths)).accuracy  # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from crowdkit.bias.classifier import CLASSES, CLASSIFIERS, META_FILE, EthnicityClassifier, Prediction
from crowdkit.bias.probe import ProbeClassifier
from crowdkit.bias.profiles import BiasProfile
from crowdkit.bias.vgg16 import VGG16Classifier
from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError, DataNotFoundError

logger = logging.getLogger(__name__)

#: The backends this module makes available by name (importing them registered them).
BACKENDS = (ProbeClassifier, VGG16Classifier)


def get_classifier(name: str = "probe", **options: Any) -> EthnicityClassifier:
    """A new, unfitted classifier by name (``"probe"`` or ``"vgg16"``)."""
    return CLASSIFIERS.create(name, **options)


def load_classifier(folder: str | os.PathLike) -> EthnicityClassifier:
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
    return backend.from_saved(folder, meta)


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


# --------------------------------------------------------------------------- the measured classifier

#: The validation accuracy the study reports for its VGG16 (lowest, highest).
STUDY_VALIDATION_ACCURACY = (0.48, 0.52)


@dataclass(frozen=True, eq=False)
class MeasuredClassifier:
    """A classifier and its error on UTKFace's held-out split: what every label it makes carries.

    ``n_train_split`` / ``n_test_split``: sizes of the seeded, deduplicated
    split; ``n_fitted`` / ``report.n``: the (profile-capped) images it was
    fitted on and measured on.
    """

    name: str
    classifier: EthnicityClassifier = field(repr=False)
    folder: Path
    n_train_split: int
    n_test_split: int
    n_fitted: int
    prediction: Prediction = field(repr=False)
    report: "ClassifierReport" = field(repr=False)

    @property
    def error_rate(self) -> float:
        return 1.0 - self.report.accuracy

    @property
    def n_test_without_face(self) -> int | None:
        """Held-out photos in which the classifier's detector found no face (None: it runs no detector)."""
        return int((~self.prediction.has_face).sum()) if self.prediction.detects_faces else None

    def summary_frame(self):
        """The headline numbers (n, accuracy, balanced accuracy, error rate, macro F1), rounded to 3 places."""
        import pandas as pd

        return pd.Series(self.report.summary()).round(3).to_frame(f"{self.name}, held-out")

    def describe(self) -> str:
        """Markdown: the split, what the classifier was fitted and measured on, photos without a face."""
        text = (f"Split: {self.n_train_split} train / {self.n_test_split} test; fitted on {self.n_fitted}, "
                f"measured on {self.report.n}. Classifier: `{config.display_path(self.folder)}`.")
        if self.n_test_without_face is not None:
            text += (f" No face detected in {self.n_test_without_face} of {self.report.n} test crops "
                     "(embedded from the central box).")
        return text

    def error_note(self) -> str:
        """Markdown: the labels are this classifier's predictions, with its measured error."""
        return (f"Labels below: predictions of the `{self.name}` classifier, wrong on "
                f"**{self.error_rate:.1%}** of {self.report.n} held-out UTKFace faces "
                f"(balanced accuracy {self.report.balanced_accuracy:.3f}).")

    def study_comparison(self) -> str:
        """Markdown: how far this classifier's accuracy is from the study's, and why."""
        low, high = STUDY_VALIDATION_ACCURACY
        gap = self.report.accuracy - high
        recall = self.report.per_class["recall"]
        return f'''
**How far from the study.** The study's VGG16 reached a validation accuracy of {low:.2f}–{high:.2f}.
This {self.name} classifier reaches **{self.report.accuracy:.3f}** accuracy and **{self.report.balanced_accuracy:.3f}**
balanced accuracy on {self.report.n} held-out, deduplicated faces, {abs(gap):.2f} {"above" if gap > 0 else "below"}
the study's upper value; its error rate is **{self.error_rate:.3f}**.

Why they differ: the probe starts from a network already trained on millions of face photos (dlib's ResNet),
so only a 5-class linear layer is learned here; the study trained all of VGG16's 138 M parameters from random
initialisation on UTKFace alone, which is far too little data for that many parameters (chance is 0.20 for
five classes). Our split is also deduplicated before splitting, which removes train/test leakage that would
*raise* accuracy (the study does not report doing so), and the classes here are nearly balanced, so accuracy
and balanced accuracy nearly agree. The weakest class is
**{recall.idxmin()}** (recall {recall.min():.2f}): "Others" is a
catch-all category with no shared appearance, and confusions between neighbouring categories are where the
predicted labels used below will be wrong.
'''


def measure_classifier(profile: BiasProfile, classifier: str = "probe", *, seed: int = 0, test_size: float = 0.3,
                       utkface: Any = None) -> MeasuredClassifier:
    """The profile's classifier (trained once, then loaded: :func:`ensure_classifier`) measured on the held-out split.

    The split is :func:`crowdkit.common.datasets.split_stratified` (``test_size``,
    ``seed``) of the deduplicated UTKFace (``utkface``, loaded when None); both
    sides are capped per class as the profile says.
    """
    from crowdkit.common.datasets import load_utkface, split_stratified, subsample_per_class

    train_full, test_full = split_stratified(utkface if utkface is not None else load_utkface(),
                                             test_size=test_size, seed=seed)
    cap_train, cap_test = profile.max_train_per_class, profile.max_test_per_class
    train = train_full if cap_train is None else subsample_per_class(train_full, cap_train, seed=seed)
    test = test_full if cap_test is None else subsample_per_class(test_full, cap_test, seed=seed)
    model = ensure_classifier(classifier, seed=seed, max_train_per_class=cap_train, test_size=test_size)
    prediction = model.predict(test.paths)
    return MeasuredClassifier(
        name=classifier, classifier=model, folder=default_classifier_dir(classifier, seed=seed,
                                                                          max_train_per_class=cap_train),
        n_train_split=len(train_full), n_test_split=len(test_full), n_fitted=len(train), prediction=prediction,
        report=evaluate_classifier(test.labels, prediction.proba))
