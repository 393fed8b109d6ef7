"""The probe classifier on real UTKFace faces: better than chance, saved without pickle, deterministic."""
from __future__ import annotations

import json

import numpy as np
import pytest

from crowdkit.bias.classifier import CLASSES
from crowdkit.bias.ethnicity import evaluate_classifier, get_classifier, load_classifier
from crowdkit.common.exceptions import ConfigError, DataNotFoundError


def test_probe_predicts_real_faces_better_than_chance(probe, split):
    _, test = split
    prediction = probe.predict(test.paths)
    assert prediction.proba.shape == (50, 5)
    assert np.allclose(prediction.proba.sum(axis=1), 1.0)
    assert prediction.detects_faces and prediction.has_face.dtype == bool
    assert prediction.has_face.mean() > 0.9  # UTKFace crops: dlib HOG finds nearly all
    report = evaluate_classifier(test.labels, prediction.proba)
    assert report.accuracy > 0.4  # chance is 0.2; the full split is measured in the notebook


def test_probe_save_load_roundtrip_without_pickle(probe, split, tmp_path):
    _, test = split
    folder = probe.save(tmp_path / "probe")
    meta = json.loads((folder / "classifier.json").read_text())
    assert meta["classifier"] == "probe" and meta["classes"] == list(CLASSES)
    assert meta["training_checksum"] == probe.checksum and len(probe.checksum) == 64
    assert meta["trained_on"] == 100
    with np.load(folder / "model.npz", allow_pickle=False) as data:
        assert data["coef"].shape == (5, 128)
    loaded = load_classifier(folder)
    assert loaded.fingerprint == probe.fingerprint
    assert np.allclose(loaded.predict_proba(test.paths), probe.predict_proba(test.paths))


def test_load_rejects_other_versions_and_missing(probe, tmp_path):
    folder = probe.save(tmp_path / "probe")
    meta = json.loads((folder / "classifier.json").read_text())
    meta["classifier_version"] = "0"
    (folder / "classifier.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="version 0"):
        load_classifier(folder)
    with pytest.raises(DataNotFoundError, match="classifier.json"):
        load_classifier(tmp_path / "nothing")


def test_probe_bad_input(split):
    train, _ = split
    probe = get_classifier("probe")
    with pytest.raises(ConfigError, match="not fitted"):
        probe.predict_features(np.zeros((1, 128)))
    with pytest.raises(ConfigError, match="labels"):
        probe.fit(train.paths[:3], [0, 1])
    with pytest.raises(ConfigError, match="Others"):
        probe.fit_features(np.zeros((4, 128)), np.array([0, 1, 2, 3]), checksum="x")
    with pytest.raises(ConfigError, match="not fitted"):
        probe.save("unused")


def test_probe_is_deterministic(split, probe):
    train, _ = split
    again = get_classifier("probe").fit(train.paths, train.labels)
    assert np.array_equal(again.coef_, probe.coef_) and again.checksum == probe.checksum
    other = get_classifier("probe", C=0.01).fit(train.paths, train.labels)
    assert other.checksum == probe.checksum and other.fingerprint != probe.fingerprint
