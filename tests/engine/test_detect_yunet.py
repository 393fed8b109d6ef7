"""YuNet, the detector that ships inside crowdkit: real photos, its landmarks' order, a damaged model file."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError, WeightsMissingError
from crowdkit.common.io import read_image
from crowdkit.engine import detect_yunet
from crowdkit.engine.detect import DETECTORS, get_detector


@pytest.fixture(scope="module")
def group_photo() -> np.ndarray:
    return read_image(config.data_path("fixtures", "faceapi_js", "test", "images", "faces.jpg"))


def test_the_model_ships_in_the_package_with_its_published_hash():
    assert detect_yunet.YUNET_MODEL.is_file()
    assert detect_yunet.YUNET_MODEL.stat().st_size == 232_589
    assert "yunet" in DETECTORS.names()


def test_finds_every_face_of_the_group_photo_with_landmarks_in_arcface_order(group_photo):
    faces = get_detector("yunet").detect(group_photo)
    assert len(faces) == 6
    for face in faces:
        left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # image-left first
        assert left_eye[1] < nose[1] < mouth_left[1]
        x1, y1, x2, y2 = face.box
        assert x1 <= nose[0] <= x2 and y1 <= nose[1] <= y2
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)


def test_upscaling_reaches_faces_too_small_at_native_size(group_photo):
    small = cv2.resize(group_photo, None, fx=0.08, fy=0.08, interpolation=cv2.INTER_AREA)  # faces ~8 px
    native = get_detector("yunet").detect(small)
    enlarged = get_detector("yunet", upscale=3.0).detect(small)
    assert len(enlarged) > len(native)
    for face in enlarged:  # boxes come back in the small image's coordinates
        assert face.box[2] <= small.shape[1] and face.box[3] <= small.shape[0]


def test_no_face_is_an_empty_list():
    assert get_detector("yunet").detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_a_damaged_model_file_is_refused_with_the_fix(tmp_path, monkeypatch):
    damaged = tmp_path / "face_detection_yunet_2023mar.onnx"
    damaged.write_bytes(detect_yunet.YUNET_MODEL.read_bytes()[:-10])
    monkeypatch.setattr(detect_yunet, "YUNET_MODEL", damaged)
    with pytest.raises(WeightsMissingError, match="restore it from git"):
        get_detector("yunet")


def test_options_out_of_range_are_refused():
    with pytest.raises(ConfigError, match="score_threshold"):
        get_detector("yunet", score_threshold=1.5)
    with pytest.raises(ConfigError, match="upscale"):
        get_detector("yunet", upscale=0)


def test_the_shipped_model_is_installed_for_deepface_offline(tmp_path, monkeypatch):
    from crowdkit.engine.detect_yunet import YUNET_MODEL, install_yunet_for_deepface

    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    target = install_yunet_for_deepface()
    assert target == tmp_path / ".deepface" / "weights" / "face_detection_yunet_2023mar.onnx"
    assert target.read_bytes() == YUNET_MODEL.read_bytes()
    stamp = target.stat().st_mtime_ns
    assert install_yunet_for_deepface() == target and target.stat().st_mtime_ns == stamp  # left alone
