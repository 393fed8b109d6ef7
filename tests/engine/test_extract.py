"""Face extraction with a manifest of its detections, and the search reusing them (real LFW photos, Haar)."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from crowdkit.common.exceptions import DatasetFormatError
from crowdkit.common.io import read_image, sha256_file
from crowdkit.engine import faces
from crowdkit.engine.backends import resolve_embedder
from crowdkit.engine.detect_dlib import OpenCVHaarDetector
from crowdkit.engine.extract import extract_faces
from crowdkit.engine.manifest import MANIFEST_NAME, read_manifest
from crowdkit.engine.pipeline import detect_and_embed


class CountingHaar(OpenCVHaarDetector):
    """The real Haar detector, counting the images it is asked to detect faces in."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.images = 0

    def detect_batch(self, images):
        self.images += len(images)
        return super().detect_batch(images)


class RefusingHaar(OpenCVHaarDetector):
    """A real Haar detector that must not be run."""

    def detect_batch(self, images):
        raise AssertionError(f"the detector ran on {len(images)} image(s)")


@pytest.fixture(scope="module")
def lfw_photos(lfw_dir: Path, tmp_path_factory) -> Path:
    """Three photos each of four LFW people (sub-folder per person), copied."""
    root = tmp_path_factory.mktemp("lfw")
    people = [p for p in sorted(lfw_dir.iterdir()) if p.is_dir() and len(list(p.glob("*.jpg"))) >= 4][:4]
    for person in people:
        for photo in sorted(person.glob("*.jpg"))[:3]:
            (root / person.name).mkdir(exist_ok=True)
            shutil.copy(photo, root / person.name / photo.name)
    return root


@pytest.fixture(scope="module")
def query(lfw_dir: Path, lfw_photos: Path) -> Path:
    first = sorted(p.name for p in lfw_photos.iterdir())[0]
    return sorted((lfw_dir / first).glob("*.jpg"))[3]  # the same person, not in the gallery


@pytest.fixture(scope="module")
def embedder():
    return resolve_embedder("dlib")


@pytest.fixture()
def extracted(lfw_photos, tmp_path, isolated_home):
    faces.forget()
    return extract_faces(lfw_photos, tmp_path / "crops", detector=CountingHaar(), progress=False)


def test_crops_and_manifest_with_landmarks_inside_the_crops(extracted, lfw_photos):
    assert extracted.images == 12
    assert len(extracted.faces) >= 10  # Haar finds (almost) every deep-funneled face
    rows = read_manifest(extracted.folder)
    assert [r.file for r in rows] == [f.file for f in extracted.faces]
    for row in rows:
        path = extracted.folder / row.file
        assert path.parent.parent == extracted.folder  # the person's sub-folder is kept
        assert sha256_file(path) == row.sha256
        assert row.detector == "opencv" and Path(row.source).is_file() and row.frame == 0
        height, width = read_image(path).shape[:2]
        x1, y1, x2, y2 = row.box
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert row.landmarks.shape == (5, 2)
        assert (row.landmarks >= 0).all() and (row.landmarks[:, 0] < width).all() and (row.landmarks[:, 1] < height).all()
        assert row.landmarks[0, 0] < row.landmarks[1, 0]  # image-left eye left of the image-right eye


def test_a_rerun_rewrites_nothing_that_did_not_change(extracted, lfw_photos):
    before = {p: p.stat().st_mtime_ns for p in extracted.folder.rglob("*.jpg")}
    again = extract_faces(lfw_photos, extracted.folder, detector="opencv", progress=False)
    assert [(r.file, r.sha256) for r in again.faces] == [(r.file, r.sha256) for r in extracted.faces]
    assert {p: p.stat().st_mtime_ns for p in extracted.folder.rglob("*.jpg")} == before
    assert not list(extracted.folder.glob(".*part*"))  # no temporary files left


def test_find_reuses_the_recorded_detections(extracted, query, embedder, tmp_path, caplog):
    # The same crops without the manifest: every crop is detected again.
    plain = tmp_path / "plain"
    shutil.copytree(extracted.folder, plain, ignore=shutil.ignore_patterns(MANIFEST_NAME))
    redetecting = CountingHaar()
    redetected = faces.find([query], plain, detector=redetecting, model=embedder, progress=False).to_frame()
    assert redetecting.images == len(extracted.faces) + 1

    faces.forget()
    counting = CountingHaar()
    with caplog.at_level(logging.INFO, logger="crowdkit.engine.pipeline"):
        reused = faces.find([query], extracted.folder, detector=counting, model=embedder, progress=False).to_frame()
    assert counting.images == 0  # the gallery from the manifest; the query photo from the detection cache
    assert f"reused {len(extracted.faces)} recorded detection" in caplog.text
    assert len(reused) == len(extracted.faces)
    by_name = lambda table, root: dict(zip((str(Path(s).relative_to(root)) for s in table["source"]),  # noqa: E731
                                           table["distance"]))
    ours, theirs = by_name(reused, extracted.folder), by_name(redetected, plain)
    assert ours.keys() <= theirs.keys()
    # Haar on a crop finds nearly the same box, so the landmarks and the distances barely move.
    assert np.allclose([ours[k] for k in ours], [theirs[k] for k in ours], atol=0.02)
    # The decisions follow: the query person's crops match.
    first = sorted(p.name for p in extracted.folder.iterdir() if p.is_dir())[0]
    person = reused["source"].map(lambda s: Path(s).parent.name)
    assert reused.loc[person == first, "decision"].any()

    # No detector at all for a gallery fully described by its manifest.
    faces.forget()
    gallery = detect_and_embed(extracted.folder, detector=RefusingHaar(), embedder=embedder, progress=False)
    assert len(gallery) == len(extracted.faces)
    np.testing.assert_allclose(
        gallery.embeddings, detect_and_embed(extracted.folder, detector=CountingHaar(), embedder=embedder,
                                                   progress=False).embeddings, atol=1e-5)


def test_a_modified_crop_is_detected_again(extracted, embedder):
    import cv2

    target = extracted.folder / extracted.faces[0].file
    image = cv2.imread(str(target))
    cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 70])  # other bytes, same face
    faces.forget()
    counting = CountingHaar()
    gallery = detect_and_embed(extracted.folder, detector=counting, embedder=embedder, progress=False)
    assert counting.images == 1
    assert len(gallery) >= len(extracted.faces) - 1


def test_a_manifest_of_another_detector_is_not_used(extracted, embedder):
    path = extracted.manifest
    document = json.loads(path.read_text())
    for row in document["faces"]:
        row["detector"] = "mtcnn"
    path.write_text(json.dumps(document))
    faces.forget()
    counting = CountingHaar()
    detect_and_embed(extracted.folder, detector=counting, embedder=embedder, progress=False)
    assert counting.images == len(extracted.faces)


@pytest.mark.parametrize("damage, message", [
    (lambda doc: "{not json", "not JSON"),
    (lambda doc: json.dumps({"faces": []}), "format"),
    (lambda doc: json.dumps({**doc, "version": 99}), "version 99"),
    (lambda doc: json.dumps({**doc, "faces": [{**doc["faces"][0], "file": "../../etc/passwd"}]}), "relative path"),
    (lambda doc: json.dumps({**doc, "faces": [{**doc["faces"][0], "landmarks": [[1, 2]] * 4}]}), "5 [x, y]"),
    (lambda doc: json.dumps({**doc, "faces": [{**doc["faces"][0], "box": [0, 0, "NaN", 1]}]}), "finite"),
    (lambda doc: json.dumps({**doc, "faces": [{k: v for k, v in doc["faces"][0].items() if k != "sha256"}]}),
     "'sha256'"),
    (lambda doc: "[" * 100_000 + "]" * 100_000, "manifest"),
])
def test_a_damaged_manifest_is_a_clear_error_and_the_search_detects_instead(
    extracted, embedder, caplog, damage, message
):
    path = extracted.manifest
    path.write_text(damage(json.loads(path.read_text())))
    with pytest.raises(DatasetFormatError, match="not a valid crowdkit face manifest") as error:
        read_manifest(extracted.folder)
    assert message in str(error.value)

    faces.forget()
    counting = CountingHaar()
    with caplog.at_level(logging.WARNING):
        gallery = detect_and_embed(extracted.folder, detector=counting, embedder=embedder, progress=False)
    assert "ignoring the face manifest" in caplog.text
    assert counting.images == len(extracted.faces) and len(gallery) >= len(extracted.faces) - 1


def test_cli_extract(lfw_photos, tmp_path, isolated_home, capsys):
    from crowdkit.cli import main

    assert main(["extract", "--gallery", str(lfw_photos), "--out", str(tmp_path / "out"), "--detector", "opencv"]) == 0
    assert "face crop(s) from 12 image(s)" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "out")) >= 10
    assert main(["extract", "--gallery", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2


def test_an_unchanged_gallery_is_remembered_in_the_process_and_a_changed_one_is_not(extracted, embedder):
    import cv2

    faces.forget()
    first = detect_and_embed(extracted.folder, detector="opencv", embedder=embedder, progress=False)
    second = detect_and_embed(extracted.folder, detector=RefusingHaar(), embedder=embedder, progress=False)
    assert second.embeddings is first.embeddings and second.faces == first.faces  # no per-file work at all
    source = extracted.folder / extracted.faces[0].file
    cv2.imwrite(str(source.with_name("new.jpg")), cv2.imread(str(source))[:, ::-1])  # a mirrored, new crop
    counting = CountingHaar()
    again = detect_and_embed(extracted.folder, detector=counting, embedder=embedder, progress=False)
    assert again is not first and counting.images == 1 and again.images == first.images + 1


def test_find_with_a_named_detector_gives_what_an_instance_gives_and_names_errors(extracted, query, embedder, fixtures_dir):
    from crowdkit.common.exceptions import NoFaceError, UnknownBackendError

    faces.forget()
    expected = faces.find([query], extracted.folder, detector=CountingHaar(), model=embedder, progress=False).to_frame()
    faces.forget()
    # batch_size=4: the 12 crops make 3 batches, enough for the embedder's warm-up to start first
    result = faces.find([query], extracted.folder, detector="opencv", model=embedder, batch_size=4, progress=False)
    table = result.to_frame()
    assert result.detector == "opencv"
    assert list(table["source"]) == list(expected["source"])
    np.testing.assert_allclose(table["distance"], expected["distance"], atol=1e-6)

    white = fixtures_dir / "faceapi_js" / "test" / "images" / "white.png"
    faces.forget()
    with pytest.raises(NoFaceError, match=r"white\.png.*'opencv'"):
        faces.find([white], extracted.folder, detector="opencv", model=embedder, batch_size=4, progress=False)
    with pytest.raises(UnknownBackendError):
        faces.find([query], extracted.folder, detector="haar", model=embedder, batch_size=4, progress=False)
