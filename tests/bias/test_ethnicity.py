"""Ethnicity classifier (probe on real UTKFace faces, vgg16 smoke run), evaluation, SQLite lookup table."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from crowdkit.bias import descriptors
from crowdkit.common.datasets import load_celeba, load_utkface, split_stratified, subsample_per_class
from crowdkit.bias.ethnicity import (
    CLASSES,
    CLASSIFIERS,
    PROBA_COLUMNS,
    EthnicityClassifier,
    build_lookup_table,
    default_classifier_dir,
    ensure_classifier,
    ensure_lookup_table,
    evaluate_classifier,
    get_classifier,
    load_classifier,
    lookup_labels,
    read_lookup_table,
    sample_images,
)
from crowdkit.common.exceptions import ConfigError, DataNotFoundError, LookupTableMismatchError, UnknownBackendError


@pytest.fixture(scope="module")
def split():
    """A small class-balanced subset of the seeded 70/30 split (its embeddings are cached after the first run)."""
    train, test = split_stratified(load_utkface(), test_size=0.3, seed=0)
    return subsample_per_class(train, 20, seed=0), subsample_per_class(test, 10, seed=0)


@pytest.fixture(scope="module")
def probe(split):
    train, _ = split
    return get_classifier("probe").fit(train.paths, train.labels)


@pytest.fixture(scope="module")
def celeba_few():
    identities = load_celeba().identities
    return {k: identities[k] for k in list(identities)[:6]}


# --------------------------------------------------------------------------- classifier


def test_registry_lists_both_backends():
    assert CLASSIFIERS.names() == ["probe", "vgg16"]
    with pytest.raises(UnknownBackendError, match="probe, vgg16"):
        get_classifier("resnet")


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
        EthnicityClassifier.load(folder)
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


@pytest.mark.slow
def test_vgg16_smoke_one_step_on_cpu(tmp_path):
    """A plumbing check of the study's architecture: 5 images, 1 Adam step at 64 px. Not a result."""
    images = subsample_per_class(load_utkface(), 1, seed=0)
    clf = get_classifier("vgg16", input_size=64, batch_size=5, epochs=1, device="cpu")
    clf.fit(images.paths, images.labels, max_steps=1, progress=False, checkpoint_dir=tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "last.pt").is_file()
    proba = clf.predict_proba(images.paths)
    assert proba.shape == (5, 5) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert clf.predict(images.paths).detects_faces is False
    loaded = load_classifier(clf.save(tmp_path / "vgg16"))
    assert loaded.options() == clf.options()
    assert np.allclose(loaded.predict_proba(images.paths), proba, atol=1e-6)


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


# --------------------------------------------------------------------------- lookup table


def test_sample_images_is_seeded_and_per_identity():
    paths = [f"/x/{i:03d}.jpg" for i in range(30)]
    a = sample_images(paths, "7312", max_images=10, seed=0)
    assert len(a) == 10 == len(set(a)) and a == sorted(a)
    assert a == sample_images(list(reversed(paths)), "7312", max_images=10, seed=0)
    assert a != sample_images(paths, "7312", max_images=10, seed=1)
    assert a != sample_images(paths, "7313", max_images=10, seed=0)
    assert len(sample_images(paths[:4], "7312", max_images=10, seed=0)) == 4


def test_lookup_table_rows_and_sql(probe, celeba_few, tmp_path):
    db = tmp_path / "lookup.sqlite"
    info = build_lookup_table(db, celeba_few, probe, max_images=5, seed=0, progress=False)
    assert info.identities == 6 and info.images == 30
    table = read_lookup_table(db, classifier=probe)
    images = read_lookup_table(db, table="images")
    assert set(table["identity"]) == set(celeba_few)
    for row in table.itertuples():
        assert row.image_count == len(celeba_few[row.identity]) and row.sampled_count == 5
        own = images[images["identity"] == row.identity]
        mean = own[list(PROBA_COLUMNS)].mean().to_numpy()
        assert np.allclose([getattr(row, c) for c in PROBA_COLUMNS], mean)
        assert row.label == CLASSES[int(mean.argmax())] and row.confidence == pytest.approx(mean.max())
        assert row.faces_found == own["has_face"].sum()
    assert set(images["has_face"].unique()) <= {0, 1}
    assert info.images_without_face == int((images["has_face"] == 0).sum())
    with sqlite3.connect(db) as con:
        counts = dict(con.execute("SELECT label, COUNT(*) FROM identities GROUP BY label").fetchall())
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    assert sum(counts.values()) == 6
    assert meta["classifier"] == "probe" and meta["seed"] == "0" and meta["training_checksum"] == probe.checksum
    assert lookup_labels(db) == dict(zip(table["identity"], table["label"]))


def test_lookup_table_rebuild_is_idempotent(probe, celeba_few, tmp_path):
    db = tmp_path / "lookup.sqlite"
    build_lookup_table(db, celeba_few, probe, max_images=5, seed=0, progress=False)
    first = read_lookup_table(db), read_lookup_table(db, table="images")
    build_lookup_table(db, celeba_few, probe, max_images=5, seed=0, progress=False)
    second = read_lookup_table(db), read_lookup_table(db, table="images")
    for a, b in zip(first, second):
        assert a.equals(b)
    assert not list(tmp_path.glob(".lookup.sqlite.*"))  # no temp file left behind


def test_lookup_table_built_with_another_classifier(probe, split, celeba_few, tmp_path):
    train, _ = split
    db = tmp_path / "lookup.sqlite"
    build_lookup_table(db, celeba_few, probe, max_images=5, seed=0, progress=False)
    other = get_classifier("probe", C=0.01).fit(train.paths, train.labels)
    with pytest.raises(LookupTableMismatchError, match="classifier_options"):
        read_lookup_table(db, classifier=other)
    with pytest.raises(LookupTableMismatchError, match="overwrite=True"):
        build_lookup_table(db, celeba_few, other, max_images=5, seed=0, progress=False)
    build_lookup_table(db, celeba_few, other, max_images=5, seed=0, overwrite=True, progress=False)
    assert read_lookup_table(db, classifier=other)["identity"].tolist() == sorted(celeba_few)
    with pytest.raises(DataNotFoundError, match="build_lookup_table"):
        read_lookup_table(tmp_path / "missing.sqlite")


def test_lookup_table_bad_input(probe, tmp_path):
    with pytest.raises(ConfigError, match="no identity"):
        build_lookup_table(tmp_path / "t.sqlite", {"a": []}, probe, progress=False)
    with pytest.raises(ConfigError, match="max_images"):
        build_lookup_table(tmp_path / "t.sqlite", {"a": ["x.jpg"]}, probe, max_images=0, progress=False)
    assert not (tmp_path / "t.sqlite").exists()


def test_ensure_lookup_table_rebuilds_only_when_needed(probe, celeba_few, tmp_path):
    db = tmp_path / "lookup.sqlite"
    ensure_lookup_table(db, celeba_few, probe, max_images=5, seed=0, progress=False)
    stamp = db.stat().st_mtime_ns, db.stat().st_ino
    ensure_lookup_table(db, celeba_few, probe, max_images=5, seed=0, progress=False)
    assert (db.stat().st_mtime_ns, db.stat().st_ino) == stamp  # same classifier, same inputs: kept
    fewer = dict(list(celeba_few.items())[:3])
    ensure_lookup_table(db, fewer, probe, max_images=5, seed=0, progress=False)
    assert len(read_lookup_table(db)) == 3


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
