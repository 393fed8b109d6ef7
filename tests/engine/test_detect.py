"""crowdkit.engine.detect on real photos from the data folder, and on tiny synthetic edge cases."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdkit.engine.detect import DETECTORS, get_detector
from crowdkit.engine.detection import Detection, Detector
from crowdkit.common.exceptions import ConfigError, InvalidImageError, UnknownBackendError, WeightsMissingError
from crowdkit.common.io import read_image

FAST = ["mtcnn", "dlib-hog", "opencv"]
_CACHE: dict[str, Detector] = {}


def detector(name: str) -> Detector:
    """One instance per backend for the whole session (model loads are the slow part)."""
    if name not in _CACHE:
        _CACHE[name] = get_detector(name)
    return _CACHE[name]


@pytest.fixture(scope="module")
def two_people(examples_dir: Path) -> np.ndarray:
    return read_image(examples_dir / "two_people.jpg")


@pytest.fixture(scope="module")
def group(fixtures_dir: Path) -> np.ndarray:
    """faceapi_js' faces.jpg: six frontal faces, 70-130 px tall, in a 710×473 photo."""
    return read_image(fixtures_dir / "faceapi_js" / "test" / "images" / "faces.jpg")


@pytest.fixture(scope="module")
def obama_small(examples_dir: Path) -> np.ndarray:
    return read_image(examples_dir / "obama_small.jpg")


def assert_sane(faces: list[Detection], image: np.ndarray, *, min_side: float, max_side: float) -> None:
    height, width = image.shape[:2]
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)
    for face in faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert min_side <= face.width <= max_side and min_side <= face.height <= max_side
        assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
        xs, ys = face.landmarks[:, 0], face.landmarks[:, 1]
        assert np.all((xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)), (face.box, face.landmarks)
        left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def centres(faces: list[Detection]) -> np.ndarray:
    return np.array([[(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2] for f in faces])


@pytest.mark.parametrize("name", FAST)
def test_two_people(name: str, two_people: np.ndarray) -> None:
    faces = detector(name).detect(two_people)
    assert len(faces) == 2
    assert_sane(faces, two_people, min_side=100, max_side=300)
    # one face on each side of the photo
    assert sorted(c[0] < two_people.shape[1] / 2 for c in centres(faces)) == [False, True]


@pytest.mark.parametrize("name", FAST)
def test_group_photo(name: str, group: np.ndarray) -> None:
    faces = detector(name).detect(group)
    assert 5 <= len(faces) <= 8  # six people; allow one miss or two extras, not a flood
    assert_sane(faces, group, min_side=50, max_side=200)


@pytest.mark.parametrize("name", ["dlib-hog", "opencv"])
def test_backends_agree_with_mtcnn_on_where_the_faces_are(name: str, group: np.ndarray) -> None:
    reference = detector("mtcnn").detect(group)
    faces = detector(name).detect(group)
    ref_centres = centres(reference)
    for face, centre in zip(faces, centres(faces)):
        nearest = np.linalg.norm(ref_centres - centre, axis=1).argmin()
        assert np.linalg.norm(ref_centres[nearest] - centre) < 0.5 * face.width
        # the dlib 68-point landmarks land where MTCNN puts its own: within 15 % of the face size
        assert np.abs(reference[nearest].landmarks - face.landmarks).max() < 0.15 * face.width


@pytest.mark.parametrize("name", FAST)
def test_blank_and_tiny_images_have_no_faces(name: str) -> None:
    assert detector(name).detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert detector(name).detect(np.zeros((8, 8, 3), np.uint8)) == []


@pytest.mark.parametrize("name", FAST)
def test_grey_and_rgba_inputs(name: str, two_people: np.ndarray) -> None:
    import cv2

    grey = cv2.cvtColor(two_people, cv2.COLOR_RGB2GRAY)
    assert len(detector(name).detect(grey)) == 2
    rgba = np.dstack([two_people, np.full(two_people.shape[:2], 255, np.uint8)])
    assert len(detector(name).detect(rgba)) == 2


@pytest.mark.parametrize("bad", [
    np.zeros((64, 64, 3), np.float32),
    np.zeros((64, 64, 2), np.uint8),
    np.zeros((2, 64, 64, 3), np.uint8),
    np.zeros((0, 64, 3), np.uint8),
    [[0, 0], [0, 0]],
])
def test_wrong_dtype_or_shape_is_a_clear_error(bad) -> None:
    with pytest.raises(InvalidImageError) as caught:
        detector("opencv").detect(bad)
    assert isinstance(caught.value, ValueError)  # also catchable as a ValueError
    assert "expected" in str(caught.value) or "empty" in str(caught.value)


def test_mtcnn_batch_matches_single_images(two_people: np.ndarray, group: np.ndarray) -> None:
    mtcnn = detector("mtcnn")
    mirrored = np.ascontiguousarray(two_people[:, ::-1])
    batch = mtcnn.detect_batch([two_people, group, mirrored])  # two same-size images go in one batch
    assert [len(found) for found in batch] == [2, len(mtcnn.detect(group)), 2]
    single = mtcnn.detect(two_people)
    np.testing.assert_allclose([f.box for f in batch[0]], [f.box for f in single], atol=1.0)
    np.testing.assert_allclose([f.box for f in batch[2]], [f.box for f in mtcnn.detect(mirrored)], atol=1.0)
    # the mirrored photo's boxes are (about) the originals mirrored
    width = two_people.shape[1]
    flipped = sorted((width - f.box[2], width - f.box[0]) for f in batch[2])
    np.testing.assert_allclose(flipped, sorted((f.box[0], f.box[2]) for f in single), atol=15.0)
    assert mtcnn.detect_batch([]) == []


def test_dlib_hog_batch(two_people: np.ndarray) -> None:
    found = detector("dlib-hog").detect_batch([two_people, np.zeros((50, 50, 3), np.uint8)])
    assert [len(f) for f in found] == [2, 0]


def test_min_face_size_option(group: np.ndarray) -> None:
    # faces in the group photo are 80-130 px wide: a 300 px minimum shrinks them below P-Net's 12 px
    assert get_detector("mtcnn", min_face_size=300).detect(group) == []
    # an image smaller than min_face_size has no pyramid at all (facenet-pytorch itself would crash)
    assert get_detector("mtcnn", min_face_size=40).detect(group[:30, :30]) == []


def test_detection_is_frozen_and_read_only() -> None:
    face = Detection((1, 2, 30, 40), 0.9, np.arange(10).reshape(5, 2))
    assert face == Detection((1.0, 2.0, 30.0, 40.0), 0.9, np.arange(10.0).reshape(5, 2))
    assert face != Detection((1, 2, 30, 40), 0.9, np.zeros((5, 2)))
    assert len({face, Detection((1, 2, 30, 40), 0.9, np.arange(10).reshape(5, 2))}) == 1
    assert face.box == (1.0, 2.0, 30.0, 40.0) and face.width == 29.0 and face.height == 38.0
    assert face.landmarks.dtype == np.float32
    with pytest.raises(ValueError):
        face.landmarks[0, 0] = 5
    with pytest.raises(AttributeError):
        face.score = 1.0  # type: ignore[misc]


def test_options_name_what_decides_the_detections() -> None:
    assert detector("mtcnn").options == {"min_face_size": 20, "thresholds": (0.6, 0.7, 0.7), "factor": 0.709}
    assert get_detector("dlib-hog", upsample=0).options == {"upsample": 0, "threshold": 0.0}
    assert "min_neighbors=5" in repr(detector("opencv"))


def test_cache_id_is_the_name_and_the_options_that_decide_the_detections() -> None:
    assert detector("mtcnn").cache_id == "mtcnn(factor=0.709,min_face_size=20,thresholds=(0.6, 0.7, 0.7))"
    assert get_detector("dlib-hog", upsample=0).cache_id == "dlib-hog(threshold=0.0,upsample=0)"
    assert get_detector("dlib-mmod", batch_size=2).cache_id == get_detector("dlib-mmod", batch_size=4).cache_id


def test_unknown_backend_and_bad_options() -> None:
    assert {"retinaface", "mtcnn", "dlib-hog", "dlib-mmod", "opencv"} <= set(DETECTORS.names())
    with pytest.raises(UnknownBackendError, match="mtcnn"):
        get_detector("yolo")
    with pytest.raises(ConfigError):
        get_detector("mtcnn", min_face_size=0)
    with pytest.raises(ConfigError):
        get_detector("mtcnn", thresholds=(0.6, 0.7))
    with pytest.raises(ConfigError):
        get_detector("dlib-hog", upsample=-1)
    with pytest.raises(ConfigError, match="no_such_option"):
        get_detector("opencv", no_such_option=3)


def test_dlib_mmod_on_a_single_face(obama_small: np.ndarray) -> None:
    # MMOD's CNN takes 2-9 s on this small photo here (a minute on two_people.jpg);
    # upsample=0 still finds a ~110 px face.
    mmod = get_detector("dlib-mmod", upsample=0)
    faces = mmod.detect(obama_small)
    assert len(faces) == 1
    assert_sane(faces, obama_small, min_side=60, max_side=200)
    reference = detector("mtcnn").detect(obama_small)[0]
    assert np.linalg.norm(centres(faces)[0] - centres([reference])[0]) < 0.25 * reference.width
    assert mmod.detect(np.zeros((120, 160, 3), np.uint8)) == []


def test_retinaface_without_weights_says_what_to_do(isolated_home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "deepface_home"))
    monkeypatch.setenv("CROWDKIT_ALLOW_DOWNLOAD", "0")
    with pytest.raises(WeightsMissingError) as caught:
        get_detector("retinaface")
    message = str(caught.value)
    assert "retinaface.h5" in message
    assert str(tmp_path / "deepface_home" / ".deepface" / "weights") in message
    assert "mtcnn" in message  # the offline alternative


@pytest.mark.slow
def test_retinaface_plumbing_with_random_weights(tmp_path: Path, monkeypatch, obama_small: np.ndarray) -> None:
    """PLUMBING CHECK ONLY: random weights saved as retinaface.h5, so the real loading path runs offline.

    The detections of a random network mean nothing; this only shows that the
    detector finds the file where retina-face looks, loads it, runs and returns a list.
    """
    home = tmp_path / "deepface_home"
    weights_dir = home / ".deepface" / "weights"
    weights_dir.mkdir(parents=True)
    monkeypatch.setenv("DEEPFACE_HOME", str(home))
    monkeypatch.setenv("CROWDKIT_ALLOW_DOWNLOAD", "0")

    from retinaface.model import retinaface_model

    with monkeypatch.context() as patch:  # build the architecture without the download step
        patch.setattr(retinaface_model, "load_weights", lambda model: model)
        retinaface_model.build_model().save_weights(str(weights_dir / "retinaface.h5"))

    # no upscaling: the package would otherwise run ResNet-50 at 1024 px (tens of seconds here)
    retina = get_detector("retinaface", threshold=0.99, allow_upscaling=False)
    image = obama_small[:120, :160]
    faces = retina.detect(image)
    assert isinstance(faces, list) and all(isinstance(f, Detection) for f in faces)
    assert all(0 <= f.box[0] < f.box[2] <= 160 and 0 <= f.box[1] < f.box[3] <= 120 for f in faces)
    assert retina.detect_batch([image, image]).__len__() == 2


def test_hog_style_box_offsets_hold_on_other_lfw_photos(lfw_dir):
    """YUNET_TO_HOG, fitted on 1,239 LFW photos, measured again on 120 others (every 97th image)."""
    from crowdkit.common.io import read_image
    from crowdkit.engine.detect_dlib import YUNET_TO_HOG, hog_style_box, measure_hog_offsets

    photos = sorted(lfw_dir.glob("*/*.jpg"))[5::97][:120]
    measured = measure_hog_offsets([read_image(p) for p in photos], get_detector("yunet"))
    assert measured["n"] > 90
    for key in ("shift_x", "shift_y"):
        assert abs(measured[key] - YUNET_TO_HOG[key]) < 0.03, (key, measured[key])
    for key in ("side_per_width", "side_per_height"):
        assert abs(measured[key] / YUNET_TO_HOG[key] - 1) < 0.05, (key, measured[key])
    x1, y1, x2, y2 = hog_style_box((100, 100, 200, 240))  # a tall YuNet box → a lower, square HOG box
    assert x2 - x1 == pytest.approx(y2 - y1) and (y1 + y2) / 2 > 170


def test_forget_drops_the_shape_predictor_so_a_cold_search_loads_it_again(two_people: np.ndarray, monkeypatch) -> None:
    import dlib

    from crowdkit.engine.backends import resolve_detector
    from crowdkit.engine.faces import forget

    loads = []
    real = dlib.shape_predictor

    def counting(path):
        loads.append(path)
        return real(path)

    monkeypatch.setattr(dlib, "shape_predictor", counting)
    forget()
    first = resolve_detector("opencv").detect(two_people)
    resolve_detector("opencv").detect(two_people)
    assert len(loads) == 1  # loaded once, on first use
    forget()
    again = resolve_detector("opencv").detect(two_people)
    assert len(loads) == 2
    np.testing.assert_allclose([d.landmarks for d in again], [d.landmarks for d in first])
