"""Classifiers by name, their evaluation, and the classifier trained once on UTKFace and reused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crowdkit.bias import descriptors
from crowdkit.bias.classifier import CLASSES, CLASSIFIERS
from crowdkit.bias.ethnicity import (default_classifier_dir, ensure_classifier, evaluate_classifier, get_classifier,
                                     load_classifier)
from crowdkit.common.exceptions import ConfigError, UnknownBackendError


# --------------------------------------------------------------------------- classifier


def test_registry_lists_both_backends():
    assert CLASSIFIERS.names() == ["probe", "vgg16"]
    with pytest.raises(UnknownBackendError, match="probe, vgg16"):
        get_classifier("resnet")


# --------------------------------------------------------------------------- evaluation


def test_evaluate_classifier_known_values():
    y_true = np.array([0, 0, 0, 1, 1, 2, 3, 4, 4, 4])
    y_pred = np.array([0, 0, 1, 1, 1, 2, 0, 4, 4, 3])
    proba = np.eye(5)[y_pred] * 0.6 + 0.08
    report = evaluate_classifier(y_true, proba)
    assert report.n == 10 and report.accuracy == pytest.approx(0.7)
    recalls = [2 / 3, 1.0, 1.0, 0.0, 2 / 3]
    assert report.balanced_accuracy == pytest.approx(np.mean(recalls))
    assert list(report.confusion.index) == list(CLASSES) == list(report.confusion.columns)
    assert report.confusion.loc["White", "Black"] == 1 and report.confusion.to_numpy().sum() == 10
    assert report.per_class.loc["Indian", "recall"] == 0.0 and report.per_class.loc["Indian", "precision"] == 0.0
    assert report.per_class["support"].tolist() == [3, 2, 1, 1, 3]
    assert report.summary()["error_rate"] == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="shape"):
        evaluate_classifier(y_true, proba[:, :4])


def test_evaluate_classifier_undefined_precision_stays_undefined():
    report = evaluate_classifier([0, 1], np.array([[1, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=float))
    assert np.isnan(report.per_class.loc["Black", "precision"])  # nothing predicted Black: 0/0


# --------------------------------------------------------------------------- trained once, then loaded


@pytest.fixture(scope="module")
def real_feature_cache() -> Path:
    """The embedding cache in the real CROWDKIT_HOME (resolved before any test isolates the home)."""
    return descriptors.cache_file()


def test_ensure_classifier_trains_once_then_loads(real_feature_cache, isolated_home):
    # reuse the content-addressed embedding cache inside the isolated home, so nothing is re-embedded
    if real_feature_cache.is_file():
        shutil.copy(real_feature_cache, descriptors.cache_file())
    first = ensure_classifier("probe", seed=0, max_train_per_class=20)
    folder = default_classifier_dir("probe", seed=0, max_train_per_class=20)
    assert str(folder).startswith(str(isolated_home)) and (folder / "classifier.json").is_file()
    assert first.trained_on == 100
    again = ensure_classifier("probe", seed=0, max_train_per_class=20)
    assert again.fingerprint == first.fingerprint and np.array_equal(again.coef_, first.coef_)
    other = ensure_classifier("probe", seed=0, max_train_per_class=20, C=0.01)  # other options: retrained
    assert other.C == 0.01 and other.fingerprint != first.fingerprint
    assert load_classifier(folder).fingerprint == other.fingerprint


def test_ensure_classifier_retrains_one_saved_by_an_older_version(real_feature_cache, isolated_home):
    if real_feature_cache.is_file():
        shutil.copy(real_feature_cache, descriptors.cache_file())
    first = ensure_classifier("probe", seed=0, max_train_per_class=20)
    meta_file = default_classifier_dir("probe", seed=0, max_train_per_class=20) / "classifier.json"
    meta = json.loads(meta_file.read_text())
    meta["classifier_version"] = "0"  # as an older crowdkit wrote it
    meta_file.write_text(json.dumps(meta))
    again = ensure_classifier("probe", seed=0, max_train_per_class=20)  # retrained, not an error
    assert again.fingerprint == first.fingerprint
    assert json.loads(meta_file.read_text())["classifier_version"] == first.version


def test_measured_classifier_carries_its_error(real_feature_cache, isolated_home):
    """The quick profile's probe, measured on its held-out UTKFace subset; the note states the error it measured."""
    from crowdkit.bias.ethnicity import measure_classifier
    from crowdkit.bias.profiles import get_profile

    if real_feature_cache.is_file():
        shutil.copy(real_feature_cache, descriptors.cache_file())
    measured = measure_classifier(get_profile("quick"), "probe", seed=0)
    assert measured.n_fitted == 200 and measured.report.n == 100  # 40 and 20 per class
    assert measured.classifier.trained_on == measured.n_fitted
    assert measured.error_rate == pytest.approx(1 - measured.report.accuracy)
    note = measured.error_note()
    assert f"{measured.error_rate:.1%}" in note and "100 held-out UTKFace faces" in note
    assert "predictions" in note
    table = measured.summary_frame()
    assert table.loc["accuracy"].iloc[0] == round(measured.report.accuracy, 3)
    prose = measured.study_comparison()
    assert f"{measured.report.accuracy:.3f}" in prose and "0.48–0.52" in prose
    assert ("above" in prose) == (measured.report.accuracy > 0.52)
