"""The SQLite lookup table: rows and SQL, idempotent rebuilds, another classifier refused, labels with their error."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from crowdkit.bias.classifier import CLASSES, PROBA_COLUMNS
from crowdkit.bias.ethnicity import get_classifier
from crowdkit.bias.lookup import (
    build_lookup_table,
    ensure_lookup_table,
    lookup_labels,
    read_lookup_table,
    sample_images,
)
from crowdkit.common.datasets import load_celeba
from crowdkit.common.exceptions import ConfigError, DataNotFoundError, LookupTableMismatchError


@pytest.fixture(scope="module")
def celeba_few():
    identities = load_celeba().identities
    return {k: identities[k] for k in list(identities)[:6]}


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


def test_lookup_table_carries_the_thesis_columns(probe, celeba_few, tmp_path):
    db = tmp_path / "lookup.sqlite"
    build_lookup_table(db, celeba_few, probe, max_images=5, seed=0, progress=False)
    ours = read_lookup_table(db)
    thesis = read_lookup_table(db, table="thesis_identities")
    assert list(thesis.columns) == ["id", "classname", "no_of_imgs", "race", "path", "count"]
    assert thesis["id"].tolist() == list(range(1, 7)) and thesis["classname"].tolist() == list(celeba_few)
    by_name = ours.set_index("identity")
    for row in thesis.itertuples():
        assert row.no_of_imgs == by_name.loc[row.classname, "image_count"] == len(celeba_few[row.classname])
        assert CLASSES[row.race] == by_name.loc[row.classname, "label"]
        assert row.path == by_name.loc[row.classname, "path"] and row.count == 0
    with sqlite3.connect(db) as con:  # the same rows as a view, for anyone opening the file
        view = con.execute("SELECT id, classname, race FROM thesis_identities ORDER BY id").fetchall()
    assert view == list(thesis[["id", "classname", "race"]].itertuples(index=False, name=None))
