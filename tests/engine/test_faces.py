"""Searching on real photos: find (its typed result), verify, query photos, caching, and bad input."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from crowdkit.common.exceptions import AmbiguousFaceError, ConfigError, ImageReadError, NoFaceError
from crowdkit.engine import faces
from crowdkit.engine.detection import Detector
from crowdkit.engine.embedding import Embedder
from crowdkit.engine.pipeline import detect_and_embed


class CountingDetector(Detector):
    """A real detector that counts the images it is asked to detect faces in."""

    def __init__(self, inner: Detector) -> None:
        self._inner, self.calls, self.name = inner, 0, inner.name

    @property
    def cache_id(self) -> str:
        return self._inner.cache_id

    def detect_batch(self, images):
        self.calls += len(images)
        return self._inner.detect_batch(images)

    def _detect(self, image):
        return self._inner.detect(image)


class CountingEmbedder(Embedder):
    """A real embedder that counts the chips it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self._inner, self.calls = inner, 0
        for attribute in ("name", "template", "dim", "thresholds", "version", "default_metric", "workers",
                          "max_in_flight"):
            setattr(self, attribute, getattr(inner, attribute))

    def warm_up(self) -> None:
        self._inner.warm_up()

    def embed(self, chips):
        self.calls += len(chips)
        return self._inner.embed(chips)

    def _embed(self, chips):
        return self._inner.embed(chips)


def test_find_picks_out_obama_and_a_second_run_only_reads_the_cache(
    isolated_home, detector, embedder, train_dir, obama_query, cache_files
):
    faces.forget()
    det, emb = CountingDetector(detector), CountingEmbedder(embedder)
    result = faces.find([obama_query], train_dir, detector=det, model=emb, progress=False)
    table = result.to_frame()

    assert list(table.columns) == list(faces.FIND_COLUMNS)
    assert result.threshold_source == "default" and result.threshold == pytest.approx(embedder.thresholds["cosine"])
    assert result.queries == (str(obama_query),) and len(result.query_faces) == 1 and len(result) == len(table)
    assert table["threshold"].iloc[0] == pytest.approx(embedder.thresholds["cosine"])
    person = table["source"].map(lambda s: Path(s).parent.name)
    assert set(person) == {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
    # Every Obama photo matches (its best face: MTCNN also reports a weak second "face" in one of them);
    # nobody else does.
    assert table[person == "obama"].groupby("source")["decision"].any().all()
    assert not table.loc[person != "obama", "decision"].any()
    assert (table["x2"] > table["x1"]).all() and (table["y2"] > table["y1"]).all()
    assert set(table["closest_query"]) == {str(obama_query)}
    first_images, first_chips = det.calls, emb.calls
    assert first_images == 9 + 1 and first_chips == len(table) + 1  # gallery + the query photo (1 face)

    files = cache_files(isolated_home)
    assert len(files) >= 2 * 10  # detections and embeddings, one entry per image

    # Second run, nothing remembered in memory: everything comes from the disk cache.
    faces.forget()
    again = faces.find([obama_query], train_dir, detector=det, model=emb, progress=False).to_frame()
    assert det.calls == first_images and emb.calls == first_chips
    assert cache_files(isolated_home) == files  # nothing rewritten
    np.testing.assert_allclose(again["distance"], table["distance"], atol=1e-6)


def test_several_query_photos_take_the_closest(isolated_home, detector, embedder, train_dir, examples_dir, obama_query):
    biden = train_dir / "biden" / "biden.jpg"
    table = faces.find([obama_query, biden], train_dir, detector=detector, model=embedder, progress=False).to_frame()
    person = table["source"].map(lambda s: Path(s).parent.name)
    assert table.loc[person == "biden", "closest_query"].eq(str(biden)).all()
    best = table.loc[table.groupby("source")["distance"].idxmin()]
    assert best.loc[best["source"].map(lambda s: Path(s).parent.name) == "obama", "closest_query"].eq(str(obama_query)).all()
    best = table.loc[table.groupby("source")["distance"].idxmin()]
    assert best.loc[best["source"].map(lambda s: Path(s).parent.name).isin(["obama", "biden"]), "decision"].all()


def test_given_threshold_is_recorded(isolated_home, detector, embedder, train_dir, obama_query):
    result = faces.find([obama_query], train_dir / "obama", detector=detector, model=embedder,
                        metric="euclidean", threshold=0.01, progress=False)
    table = result.to_frame()
    assert result.threshold_source == "given" and result.threshold == 0.01 and result.metric == "euclidean"
    assert (table["threshold"] == 0.01).all() and not table["decision"].any()


def test_verify_same_and_different_people(isolated_home, detector, embedder, train_dir, obama_query):
    same = faces.verify(obama_query, train_dir / "obama" / "obama2.jpg", model=embedder, detector=detector)
    other = faces.verify(obama_query, train_dir / "biden" / "biden.jpg", model=embedder, detector=detector)
    assert same.verified and not other.verified
    assert same.distance < other.distance
    assert set(same.to_dict()) == {"distance", "threshold", "verified"}


# --------------------------------------------------------------------------- bad input

def test_unreadable_file_in_a_gallery_is_skipped_and_reported(isolated_home, detector, embedder, train_dir, tmp_path,
                                                              obama_query, caplog):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(train_dir / "obama" / "obama2.jpg", gallery / "obama2.jpg")
    (gallery / "broken.jpg").write_bytes(b"this is not a JPEG")
    with caplog.at_level(logging.WARNING, logger="crowdkit.engine.pipeline"):
        result = faces.find([obama_query], gallery, detector=detector, model=embedder, progress=False)
    table = result.to_frame()
    assert len(table) == 1 and table["decision"].all() and result.match_count == 1
    assert len(result.skipped) == 1 and "broken.jpg" in result.skipped[0]
    assert "broken.jpg" in caplog.text and "skipped 1 unreadable" in caplog.text


def test_query_without_a_face_names_file_and_detector(isolated_home, detector, embedder, fixtures_dir):
    white = fixtures_dir / "faceapi_js" / "test" / "images" / "white.png"
    with pytest.raises(NoFaceError, match=r"white\.png.*'mtcnn'.*another detector"):
        faces.embed_query(white, detector=detector, embedder=embedder)


def test_unreadable_query_is_an_error(isolated_home, detector, embedder, tmp_path):
    bad = tmp_path / "q.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(ImageReadError, match="q.jpg"):
        faces.embed_query(bad, detector=detector, embedder=embedder)
    with pytest.raises(ImageReadError, match="does not exist"):
        faces.embed_query(tmp_path / "missing.jpg", detector=detector, embedder=embedder)


def test_query_with_two_faces_largest_or_refuse(isolated_home, detector, embedder, photos, caplog):
    photo = photos / "two_people.jpg"
    with caplog.at_level(logging.WARNING, logger="crowdkit.engine.faces"):
        chosen = faces.embed_query(photo, detector=detector, embedder=embedder, on_many="largest")
    assert len(chosen) == 1 and chosen.embeddings.shape == (1, embedder.dim)
    assert "shows 2 faces; using the largest" in caplog.text and "ignoring 1 other" in caplog.text
    all_faces = detect_and_embed([photo], detector=detector, embedder=embedder, progress=False)
    assert chosen.faces[0].area == max(f.area for f in all_faces.faces)
    with pytest.raises(AmbiguousFaceError, match=r"two_people\.jpg shows 2 faces"):
        faces.embed_query(photo, detector=detector, embedder=embedder, on_many="refuse")


def test_bad_options_fail_before_any_work(isolated_home, detector, embedder, train_dir, obama_query):
    with pytest.raises(ConfigError, match="unknown metric"):
        faces.find([obama_query], train_dir, detector=detector, model=embedder, metric="manhattan")
    with pytest.raises(ConfigError, match="on_many"):
        faces.embed_query(obama_query, detector=detector, embedder=embedder, on_many="first")
    with pytest.raises(ConfigError, match="stride"):
        detect_and_embed(train_dir, detector=detector, embedder=embedder, stride=0)


def test_a_remembered_gallery_is_searched_again_when_a_photo_is_added_or_rewritten_in_place(
        isolated_home, detector, embedder, train_dir, obama_query, tmp_path, monkeypatch):
    import os

    from crowdkit.engine import listing

    gallery = tmp_path / "gallery"
    shutil.copytree(train_dir / "biden", gallery / "biden")
    shutil.copytree(train_dir / "rose_leslie", gallery / "rose_leslie")
    for folder in (gallery, gallery / "biden", gallery / "rose_leslie"):
        os.utime(folder, (1e9, 1e9))  # a gallery copied long ago: its listing is remembered
    monkeypatch.setattr(listing, "RACY_SECONDS", 0.0)
    faces.forget()
    first = faces.find([obama_query], gallery, detector=detector, model=embedder, progress=False).to_frame()
    assert not first["decision"].any()

    rose = sorted((gallery / "rose_leslie").glob("*.jp*g"))[0]
    shutil.copyfile(sorted((train_dir / "obama").glob("*.jp*g"))[0], rose)  # same name, same folder times
    for folder in (gallery, gallery / "rose_leslie"):
        os.utime(folder, (1e9, 1e9))
    rewritten = faces.find([obama_query], gallery, detector=detector, model=embedder, progress=False).to_frame()
    assert rewritten.loc[rewritten["source"] == str(rose), "decision"].any()

    added = gallery / "biden" / "obama_too.jpg"
    shutil.copyfile(sorted((train_dir / "obama").glob("*.jp*g"))[-1], added)
    again = faces.find([obama_query], gallery, detector=detector, model=embedder, progress=False).to_frame()
    assert again.loc[again["source"] == str(added), "decision"].any()
    assert len(again) > len(rewritten)
