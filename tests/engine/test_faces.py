"""The face pipeline on real photos: find, verify, caching, and bad input."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from crowdkit.engine import faces
from crowdkit.common.exceptions import (
    AmbiguousFaceError,
    ConfigError,
    EmptyGalleryError,
    ImageReadError,
    NoFaceError,
    VideoReadError,
)


@pytest.fixture(scope="module")
def detector():
    return faces.resolve_detector("mtcnn")


@pytest.fixture(scope="module")
def embedder():
    return faces.resolve_embedder("dlib")


def _shrunk_copy(src: Path, dst: Path, longest: int = 480) -> Path:
    """The same real photo at most ``longest`` px wide or high (MTCNN on 1,200-px photos takes seconds each)."""
    import cv2

    image = cv2.imread(str(src), cv2.IMREAD_COLOR)
    scale = min(1.0, longest / max(image.shape[:2]))
    small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    dst.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dst), small, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return dst


@pytest.fixture(scope="module")
def photos(examples_dir: Path, tmp_path_factory) -> Path:
    """knn_examples (5 people; train: 9 photos, test: a 10th Obama photo) and two_people.jpg, shrunk."""
    root = tmp_path_factory.mktemp("photos")
    knn = examples_dir / "knn_examples"
    for src in sorted((knn / "train").rglob("*.jp*g")):
        _shrunk_copy(src, root / "train" / src.relative_to(knn / "train"))
    _shrunk_copy(knn / "test" / "obama1.jpg", root / "obama1.jpg")
    _shrunk_copy(examples_dir / "two_people.jpg", root / "two_people.jpg")
    return root


@pytest.fixture(scope="module")
def train_dir(photos: Path) -> Path:
    return photos / "train"


@pytest.fixture(scope="module")
def obama_query(photos: Path) -> Path:
    # A photo of Obama that is not in the train folders.
    return photos / "obama1.jpg"


class Counting:
    """A real backend that counts the images (or chips) it is asked to process."""

    def __init__(self, inner, method: str) -> None:
        self._inner, self._method, self.calls = inner, method, 0
        self.name = inner.name
        for attribute in ("template", "dim", "thresholds", "version", "default_metric"):
            if hasattr(inner, attribute):
                setattr(self, attribute, getattr(inner, attribute))
        self.cache_id = faces._detector_id(inner) if method == "detect_batch" else None

    def detect_batch(self, images):
        self.calls += len(images)
        return self._inner.detect_batch(images)

    def embed(self, chips):
        self.calls += len(chips)
        return self._inner.embed(chips)


def _cache_files(home: Path) -> dict[str, int]:
    root = home / "cache" / "faces"
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_find_picks_out_obama_and_a_second_run_only_reads_the_cache(
    isolated_home, detector, embedder, train_dir, obama_query
):
    faces.forget()
    det, emb = Counting(detector, "detect_batch"), Counting(embedder, "embed")
    table = faces.find([obama_query], train_dir, detector=det, model=emb, progress=False)

    assert list(table.columns) == list(faces.FIND_COLUMNS)
    assert table.attrs["threshold_source"] == "default"
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

    files = _cache_files(isolated_home)
    assert len(files) >= 2 * 10  # detections and embeddings, one entry per image

    # Second run, nothing remembered in memory: everything comes from the disk cache.
    faces.forget()
    again = faces.find([obama_query], train_dir, detector=det, model=emb, progress=False)
    assert det.calls == first_images and emb.calls == first_chips
    assert _cache_files(isolated_home) == files  # nothing rewritten
    np.testing.assert_allclose(again["distance"], table["distance"], atol=1e-6)


def test_several_query_photos_take_the_closest(isolated_home, detector, embedder, train_dir, examples_dir, obama_query):
    biden = train_dir / "biden" / "biden.jpg"
    table = faces.find([obama_query, biden], train_dir, detector=detector, model=embedder, progress=False)
    person = table["source"].map(lambda s: Path(s).parent.name)
    assert table.loc[person == "biden", "closest_query"].eq(str(biden)).all()
    best = table.loc[table.groupby("source")["distance"].idxmin()]
    assert best.loc[best["source"].map(lambda s: Path(s).parent.name) == "obama", "closest_query"].eq(str(obama_query)).all()
    best = table.loc[table.groupby("source")["distance"].idxmin()]
    assert best.loc[best["source"].map(lambda s: Path(s).parent.name).isin(["obama", "biden"]), "decision"].all()


def test_given_threshold_is_recorded(isolated_home, detector, embedder, train_dir, obama_query):
    table = faces.find([obama_query], train_dir / "obama", detector=detector, model=embedder,
                       metric="euclidean", threshold=0.01, progress=False)
    assert table.attrs["threshold_source"] == "given"
    assert (table["threshold"] == 0.01).all() and not table["decision"].any()


def test_verify_same_and_different_people(isolated_home, detector, embedder, train_dir, obama_query):
    same = faces.verify(obama_query, train_dir / "obama" / "obama2.jpg", model=embedder, detector=detector)
    other = faces.verify(obama_query, train_dir / "biden" / "biden.jpg", model=embedder, detector=detector)
    assert same.verified and not other.verified
    assert same.distance < other.distance
    assert set(same.to_dict()) == {"distance", "threshold", "verified"}


def test_detect_and_embed_returns_aligned_chips(isolated_home, detector, embedder, train_dir):
    result = faces.detect_and_embed(train_dir / "biden", detector=detector, embedder=embedder,
                                    return_chips=True, progress=False)
    assert len(result) == 2 and result.images == 2
    assert result.embeddings.shape == (2, embedder.dim) and result.embeddings.dtype == np.float32
    assert result.chips.dtype == np.uint8 and result.chips.shape[0] == 2 and result.chips.shape[3] == 3


# --------------------------------------------------------------------------- bad input

def test_unreadable_file_in_a_gallery_is_skipped_and_reported(isolated_home, detector, embedder, train_dir, tmp_path,
                                                              obama_query, caplog):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(train_dir / "obama" / "obama2.jpg", gallery / "obama2.jpg")
    (gallery / "broken.jpg").write_bytes(b"this is not a JPEG")
    with caplog.at_level(logging.WARNING, logger="crowdkit.engine.faces"):
        table = faces.find([obama_query], gallery, detector=detector, model=embedder, progress=False)
    assert len(table) == 1 and table["decision"].all()
    assert len(table.attrs["skipped"]) == 1 and "broken.jpg" in table.attrs["skipped"][0]
    assert "broken.jpg" in caplog.text and "skipped 1 unreadable" in caplog.text


def test_gallery_of_only_unreadable_files_is_an_error(isolated_home, detector, embedder, tmp_path):
    gallery = tmp_path / "bad"
    gallery.mkdir()
    (gallery / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(EmptyGalleryError, match="a.png"):
        faces.detect_and_embed(gallery, detector=detector, embedder=embedder, progress=False)


def test_empty_gallery_folder_is_an_error_naming_it(isolated_home, detector, embedder, tmp_path):
    gallery = tmp_path / "empty"
    (gallery / "sub").mkdir(parents=True)
    (gallery / "notes.txt").write_text("no images here")
    with pytest.raises(EmptyGalleryError, match=str(gallery)):
        faces.detect_and_embed(gallery, detector=detector, embedder=embedder, progress=False)


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
    all_faces = faces.detect_and_embed([photo], detector=detector, embedder=embedder, progress=False)
    assert chosen.faces[0].area == max(f.area for f in all_faces.faces)
    with pytest.raises(AmbiguousFaceError, match=r"two_people\.jpg shows 2 faces"):
        faces.embed_query(photo, detector=detector, embedder=embedder, on_many="refuse")


def test_corrupt_video_gallery_is_an_error(isolated_home, detector, embedder, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError):
        faces.detect_and_embed(video, detector=detector, embedder=embedder, progress=False)


def test_bad_options_fail_before_any_work(isolated_home, detector, embedder, train_dir, obama_query):
    with pytest.raises(ConfigError, match="unknown metric"):
        faces.find([obama_query], train_dir, detector=detector, model=embedder, metric="manhattan")
    with pytest.raises(ConfigError, match="on_many"):
        faces.embed_query(obama_query, detector=detector, embedder=embedder, on_many="first")
    with pytest.raises(ConfigError, match="stride"):
        faces.detect_and_embed(train_dir, detector=detector, embedder=embedder, stride=0)


def test_video_gallery_uses_every_nth_frame_and_caches_per_frame(isolated_home, detector, embedder, examples_dir):
    clip = examples_dir / "short_hamilton_clip.mp4"  # 275 frames, 640×360
    faces.forget()
    result = faces.detect_and_embed(clip, detector=detector, embedder=embedder, stride=100, progress=False)
    assert result.images == 3  # frames 0, 100, 200
    assert len(result) >= 2
    assert {f.frame for f in result.faces} <= {0, 100, 200}
    assert all(f.source == str(clip) for f in result.faces)
    assert len(_cache_files(isolated_home)) == 2 * 3  # detections + embeddings per frame


def test_a_second_search_in_the_same_process_still_skips_the_unreadable_file(isolated_home, detector, embedder,
                                                                              train_dir, tmp_path):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(train_dir / "biden" / "biden.jpg", gallery / "biden.jpg")
    (gallery / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    for _ in range(2):
        result = faces.detect_and_embed(gallery, detector=detector, embedder=embedder, progress=False)
        assert result.images == 1 and len(result.skipped) == 1
