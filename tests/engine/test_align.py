"""crowdkit.engine.align: templates, the similarity transform, aligned chips that dlib's ResNet recognises, margin crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdkit.engine.align import (
    TEMPLATES,
    FaceTemplate,
    align_face,
    align_faces,
    margin_box,
    margin_crop,
    similarity_transform,
)
from crowdkit.engine.detect import get_detector
from crowdkit.engine.detection import Detection
from crowdkit.common.exceptions import ConfigError, InvalidImageError
from crowdkit.common.io import read_image


@pytest.fixture(scope="module")
def mtcnn():
    return get_detector("mtcnn")


@pytest.fixture(scope="module")
def dlib_models():
    """dlib's ResNet embedder and 5-point predictor, straight from face_recognition_models."""
    import dlib

    from crowdkit.common import weights

    return (dlib.face_recognition_model_v1(str(weights.require("dlib-resnet"))),
            dlib.shape_predictor(str(weights.require("dlib-shape5"))))


def central_face(faces: list[Detection], image: np.ndarray) -> Detection:
    """The face nearest the image centre (LFW photos are centred on their subject)."""
    centre = np.array(image.shape[1::-1]) / 2
    return min(faces, key=lambda f: np.linalg.norm(np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2]) - centre))


def test_templates() -> None:
    assert {name: t.size for name, t in TEMPLATES.items()} == {"arcface": 112, "dlib": 150, "facenet": 160}
    np.testing.assert_allclose(TEMPLATES["arcface"].points[0], [38.2946, 51.6963], atol=1e-4)
    for template in TEMPLATES.values():
        left_eye, right_eye, nose, mouth_left, mouth_right = template.points
        assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
        assert np.all((template.points > 0) & (template.points < template.size))
        assert not template.points.flags.writeable
    # dlib's chip at 25 % padding: the eyes sit ~53 px apart in a 150 px chip
    eyes = TEMPLATES["dlib"].points[:2]
    assert 50 < np.linalg.norm(eyes[1] - eyes[0]) < 56
    assert TEMPLATES["arcface"].scaled(224).size == 224
    assert TEMPLATES["arcface"] == FaceTemplate(112, TEMPLATES["arcface"].points.copy())
    assert len({TEMPLATES["arcface"], FaceTemplate(112, TEMPLATES["arcface"].points)}) == 1


def test_similarity_transform_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = np.deg2rad(23.0), 1.7, np.array([12.0, -7.5])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rotation.T + shift
    matrix = similarity_transform(src, dst)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_similarity_transform_is_the_least_squares_similarity_for_noisy_points() -> None:
    """No nearby rotation, scale or shift fits real (noisy) landmarks better."""
    rng = np.random.default_rng(3)
    src = rng.uniform(30, 120, (5, 2))
    dst = 0.8 * src[:, ::-1] + rng.normal(0, 3.0, (5, 2)) + 40  # a swap of axes: mirrored, then noise

    def residual(a, b, tx, ty):
        predicted = src @ np.array([[a, -b], [b, a]]).T + [tx, ty]
        return float(((predicted - dst) ** 2).sum())

    matrix = similarity_transform(src, dst)
    a, b, tx, ty = matrix[0, 0], matrix[1, 0], matrix[0, 2], matrix[1, 2]
    np.testing.assert_allclose(matrix[:, :2], [[a, -b], [b, a]])  # a rotation and a scale, no shear
    best = residual(a, b, tx, ty)
    for step in rng.normal(0, 1e-3, (200, 4)):
        assert residual(a + step[0], b + step[1], tx + step[2], ty + step[3]) >= best


def test_similarity_transform_never_mirrors() -> None:
    src = TEMPLATES["arcface"].points.astype(float)
    mirrored = src * [-1, 1]
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_similarity_transform_rejects_degenerate_points() -> None:
    with pytest.raises(InvalidImageError):
        similarity_transform(np.ones((5, 2)), TEMPLATES["arcface"].points)
    with pytest.raises(InvalidImageError):
        similarity_transform(np.full((5, 2), np.nan), TEMPLATES["arcface"].points)


def test_align_face_is_the_identity_on_template_points() -> None:
    image = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    chip = align_face(image, TEMPLATES["arcface"].points, "arcface")
    np.testing.assert_array_equal(chip, image)


@pytest.mark.parametrize("name", ["arcface", "dlib", "facenet"])
def test_aligned_chip_puts_the_landmarks_on_the_template(name: str, mtcnn, examples_dir: Path) -> None:
    image = read_image(examples_dir / "obama.jpg")
    face = mtcnn.detect(image)[0]
    template = TEMPLATES[name]
    chip = align_face(image, face.landmarks, name)
    assert chip.shape == (template.size, template.size, 3) and chip.dtype == np.uint8
    assert chip.mean() > 20  # the face, not the black border, fills the chip
    matrix = similarity_transform(face.landmarks, template.points)
    mapped = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - template.points).max() < 0.06 * template.size
    # the eye line is level in the chip
    (lx, ly), (rx, ry) = mapped[:2]
    assert abs(ry - ly) < 0.03 * template.size and rx > lx


def test_facenet_template_is_where_mtcnn_sees_the_landmarks(mtcnn, examples_dir: Path) -> None:
    """FACENET_POINTS were measured with MTCNN, so MTCNN run again on a facenet chip finds them there."""
    image = read_image(examples_dir / "obama.jpg")
    chip = align_face(image, mtcnn.detect(image)[0].landmarks, "facenet")
    again = get_detector("mtcnn", min_face_size=40).detect(chip)
    assert again, "no face in the aligned chip"
    assert np.abs(again[0].landmarks - TEMPLATES["facenet"].points).max() < 0.05 * 160


def test_align_faces_batches_and_handles_none(two_people: np.ndarray, mtcnn) -> None:
    faces = mtcnn.detect(two_people)
    chips = align_faces(two_people, [f.landmarks for f in faces], "dlib")
    assert chips.shape == (2, 150, 150, 3)
    assert align_faces(two_people, [], "arcface").shape == (0, 112, 112, 3)


@pytest.fixture(scope="module")
def two_people(examples_dir: Path) -> np.ndarray:
    return read_image(examples_dir / "two_people.jpg")


def test_bad_template_and_landmarks() -> None:
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ConfigError, match="arcface"):
        align_face(image, TEMPLATES["arcface"].points, "vggface")
    with pytest.raises(InvalidImageError):
        align_face(image, np.zeros((68, 2)), "arcface")
    with pytest.raises(InvalidImageError):
        align_face(image.astype(np.float32), TEMPLATES["arcface"].points, "arcface")


def _lfw_pairs(lfw_dir: Path, count: int) -> list[tuple[Path, Path, bool]]:
    lines = (lfw_dir.parent / "pairs.txt").read_text().splitlines()[1:]

    def path(name: str, number: str) -> Path:
        return lfw_dir / name / f"{name}_{int(number):04d}.jpg"

    same = [line.split("\t") for line in lines[:count]]
    different = [line.split("\t") for line in lines[300:300 + count]]
    return ([(path(n, i), path(n, j), True) for n, i, j in same]
            + [(path(a, i), path(b, j), False) for a, i, b, j in different])


def test_dlib_template_chips_are_recognised_by_dlibs_resnet(lfw_dir: Path, mtcnn, dlib_models) -> None:
    """Same-person LFW pairs (View 2, fold 1) fall under dlib's 0.6 threshold, different people over it."""
    resnet, _ = dlib_models

    def embed(path: Path) -> np.ndarray:
        image = read_image(path)
        chip = align_face(image, central_face(mtcnn.detect(image), image).landmarks, "dlib")
        return np.array(resnet.compute_face_descriptor(chip))

    same, different = [], []
    for a, b, is_same in _lfw_pairs(lfw_dir, 8):
        (same if is_same else different).append(np.linalg.norm(embed(a) - embed(b)))
    assert max(same) < 0.6 < min(different), (same, different)
    assert np.mean(different) - np.mean(same) > 0.25


def test_dlib_template_matches_dlibs_own_face_chip(lfw_dir: Path, dlib_models) -> None:
    """Our chip and dlib.get_face_chip (5-point shape) give nearly the same dlib embedding."""
    import dlib

    resnet, shape5 = dlib_models
    hog = get_detector("dlib-hog")
    for name in ["Aaron_Peirsol", "George_W_Bush", "Serena_Williams"]:
        image = read_image(lfw_dir / name / f"{name}_0001.jpg")
        face = central_face(hog.detect(image), image)
        x1, y1, x2, y2 = (int(v) for v in face.box)
        theirs = dlib.get_face_chip(image, shape5(image, dlib.rectangle(x1, y1, x2 - 1, y2 - 1)), size=150, padding=0.25)
        ours = align_face(image, face.landmarks, "dlib")
        distance = np.linalg.norm(np.array(resnet.compute_face_descriptor(ours))
                                  - np.array(resnet.compute_face_descriptor(theirs)))
        assert distance < 0.25, (name, distance)  # same-person pairs are typically 0.3-0.5 apart


def test_margin_box_and_crop_follow_facenets_recipe() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    image[:, :, 0] = (np.arange(400)[None, :] % 256).astype(np.uint8)
    image[:, :, 1] = (np.arange(300)[:, None] % 256).astype(np.uint8)
    box = (100.7, 80.2, 200.9, 190.5)
    assert margin_box(box, image.shape, margin=44) == (78, 58, 222, 212)  # int() first, then ±22
    crop = margin_crop(image, box)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    import cv2

    expected = cv2.resize(image[58:212, 78:222], (182, 182), interpolation=cv2.INTER_LINEAR)[11:171, 11:171]
    np.testing.assert_array_equal(crop, expected)


def test_margin_crop_clips_at_the_border_and_checks_sizes() -> None:
    image = np.full((100, 120, 3), 7, np.uint8)
    assert margin_box((-5, -5, 40, 50), image.shape, margin=44) == (0, 0, 62, 72)
    assert margin_box((90, 60, 130, 110), image.shape, margin=44) == (68, 38, 120, 100)
    assert margin_crop(image, (90, 60, 130, 110), crop_size=100, output_size=80).shape == (80, 80, 3)
    with pytest.raises(ConfigError):
        margin_crop(image, (10, 10, 50, 50), crop_size=100, output_size=120)
    with pytest.raises(InvalidImageError):
        margin_crop(image, (500, 500, 600, 600), margin=0)


def test_margin_crop_of_a_real_face_keeps_it_centred(mtcnn, examples_dir: Path) -> None:
    image = read_image(examples_dir / "obama.jpg")
    face = mtcnn.detect(image)[0]
    crop = margin_crop(image, face.box)
    again = mtcnn.detect(crop)
    assert again
    centre = np.array([(again[0].box[0] + again[0].box[2]) / 2, (again[0].box[1] + again[0].box[3]) / 2])
    assert np.abs(centre - 80).max() < 16
