"""Face alignment: five landmarks onto an embedder's template, and facenet-style margin crops.

:func:`align_face` finds the similarity transform (rotation, uniform scale,
translation: no shear) that best maps a face's five landmarks onto a
template's five points in the least-squares sense (Umeyama 1991) and warps the
image with it::

    >>> from crowdkit.engine.align import align_face, TEMPLATES
    >>> chip = align_face(image, detection.landmarks, "arcface")   # doctest: +SKIP
    >>> chip.shape
    (112, 112, 3)

Templates (:data:`TEMPLATES`), all in ArcFace landmark order (image-left eye,
image-right eye, nose tip, image-left and image-right mouth corner):

``arcface`` (112 px)
    insightface's standard ``arcface_dst``, the template ArcFace models were trained on.
``dlib`` (150 px)
    where ``dlib.get_face_chip(image, shape, size=150, padding=0.25)`` puts
    these five points: dlib's mean face shape (``mean_face_shape_x/y`` in
    dlib/image_transforms/interpolation.h, the reference ``get_face_chip_details``
    maps 68-point shapes onto) at 150 px with 25 % padding. The dlib ResNet
    embedder was trained on such chips.
``facenet`` (160 px)
    where facenet-pytorch's MTCNN landmarks fall, on average, in a
    ``margin_crop`` (margin 44, 182 px, centre 160 px) of its own boxes:
    the crop davidsandberg/facenet trained its models on. Measured on 500
    LFW photos (see :func:`_mean_margin_crop_landmarks`).

:func:`margin_crop` reproduces davidsandberg/facenet's
``align_dataset_mtcnn.py`` crop with the training settings the bias study uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from crowdkit.common.exceptions import ConfigError, InvalidImageError
from crowdkit.common.io import ensure_rgb


@dataclass(frozen=True, eq=False)
class FaceTemplate:
    """Where the five landmarks go in an aligned ``size`` × ``size`` chip.

    Attributes
    ----------
    size : int
        Side of the square chip, in pixels.
    points : ndarray, float32, shape (5, 2)
        ``(x, y)`` targets in ArcFace order. Read-only.
    """

    size: int
    points: np.ndarray

    def __post_init__(self) -> None:
        points = np.array(self.points, dtype=np.float32).reshape(5, 2)
        points.setflags(write=False)
        if int(self.size) < 1:
            raise ConfigError(f"a template's size must be ≥ 1, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "points", points)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FaceTemplate):
            return NotImplemented
        return self.size == other.size and np.array_equal(self.points, other.points)

    def __hash__(self) -> int:
        return hash((self.size, self.points.tobytes()))

    def scaled(self, size: int) -> "FaceTemplate":
        """The same template for a ``size`` × ``size`` chip."""
        return FaceTemplate(size, self.points * (size / self.size))


def _dlib_template(size: int = 150, padding: float = 0.25) -> np.ndarray:
    # dlib's mean face shape (points 17-67 of the 68-point markup, unit square),
    # only the points the five landmarks need: eyes 36-47, nose tip 30, mouth corners 48 and 54.
    eye_left_x = [0.121737, 0.187122, 0.265825, 0.334606, 0.260918, 0.182743]  # points 36-41
    eye_left_y = [0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077]
    eye_right_x = [0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335]  # points 42-47
    eye_right_y = [0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099]
    unit = np.array([
        [np.mean(eye_left_x), np.mean(eye_left_y)],
        [np.mean(eye_right_x), np.mean(eye_right_y)],
        [0.490127, 0.515625],  # point 30, nose tip
        [0.254149, 0.780233],  # point 48, mouth corner
        [0.726104, 0.780233],  # point 54, mouth corner
    ])
    # get_face_chip_details: chip = (padding + unit) / (2 * padding + 1) * size
    return (padding + unit) / (2 * padding + 1) * size


#: insightface's ``arcface_dst`` (python-package/insightface/utils/face_align.py).
ARCFACE_POINTS = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
])

#: Mean facenet-pytorch MTCNN landmarks inside margin_crop(margin=44, crop_size=182, output_size=160)
#: of its own box, over the first photo of 500 LFW identities (numpy default_rng(0) choice of the
#: sorted identity folders, min_face_size 20); see _mean_margin_crop_landmarks.
FACENET_POINTS = np.array([
    [53.5, 65.4],
    [109.7, 64.3],
    [82.2, 91.3],
    [58.0, 115.2],
    [107.5, 114.3],
])

TEMPLATES: dict[str, FaceTemplate] = {
    "arcface": FaceTemplate(112, ARCFACE_POINTS),
    "dlib": FaceTemplate(150, _dlib_template(150, 0.25)),
    "facenet": FaceTemplate(160, FACENET_POINTS),
}


def get_template(template: str | FaceTemplate) -> FaceTemplate:
    if isinstance(template, FaceTemplate):
        return template
    try:
        return TEMPLATES[template]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown face template {template!r}; known templates: {', '.join(sorted(TEMPLATES))}"
        ) from None


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity transform (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Least squares over the point pairs, without reflection (Umeyama 1991). In
    the plane that problem has a closed form: writing the centred points as
    complex numbers, the rotation and scale are the single complex factor
    ``z = Σ conj(src) · dst / Σ |src|²`` (what Umeyama's SVD gives, at half
    its cost per face).

    Parameters
    ----------
    src, dst : array (N, 2)
        Corresponding points, N ≥ 2.

    Returns
    -------
    ndarray, float64, shape (2, 3)
        ``M`` such that ``dst ≈ src @ M[:, :2].T + M[:, 2]``; ready for ``cv2.warpAffine``.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise InvalidImageError(f"need two equal-length sets of ≥ 2 points, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    sx, sy = (src - src_mean).T
    dx, dy = (dst - dst_mean).T
    norm = float(sx @ sx + sy @ sy)
    if not np.isfinite(norm) or norm < 1e-12 * len(src):
        raise InvalidImageError("the landmarks are all at one point (or not finite); cannot align the face")
    a = float(sx @ dx + sy @ dy) / norm  # scale · cos(angle)
    b = float(sx @ dy - sy @ dx) / norm  # scale · sin(angle)
    matrix = np.array([[a, -b, 0.0], [b, a, 0.0]])
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, template: str | FaceTemplate = "arcface") -> np.ndarray:
    """Warp the face with these five landmarks onto ``template``.

    Parameters
    ----------
    image : ndarray, uint8, shape (H, W, 3)
        RGB image (greyscale and RGBA are converted).
    landmarks : array, shape (5, 2)
        ArcFace-order landmarks, e.g. ``Detection.landmarks``.
    template : str or FaceTemplate
        ``"arcface"``, ``"dlib"``, ``"facenet"`` or a custom template.

    Returns
    -------
    ndarray, uint8, shape (size, size, 3)
        The aligned chip; pixels outside the image are black.
    """
    import cv2

    image = ensure_rgb(image)
    template = get_template(template)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (5, 2):
        raise InvalidImageError(f"expected 5 landmarks of shape (5, 2), got {landmarks.shape}")
    matrix = similarity_transform(landmarks, template.points)
    return cv2.warpAffine(image, matrix, (template.size, template.size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_faces(image: np.ndarray, landmarks: Sequence[np.ndarray], template: str | FaceTemplate = "arcface") -> np.ndarray:
    """:func:`align_face` for several faces of one image; (N, size, size, 3) uint8, N may be 0."""
    template = get_template(template)
    chips = [align_face(image, points, template) for points in landmarks]
    if not chips:
        return np.zeros((0, template.size, template.size, 3), dtype=np.uint8)
    return np.stack(chips)


def margin_box(box: Sequence[float], image_shape: Sequence[int], *, margin: float = 44) -> tuple[int, int, int, int]:
    """The crop box of :func:`margin_crop`: ``box`` grown by ``margin / 2`` px on each side, clipped."""
    height, width = int(image_shape[0]), int(image_shape[1])
    # align_dataset_mtcnn.py casts the detector's box to int32 before adding the margin.
    x1, y1, x2, y2 = (int(v) for v in np.asarray(box, dtype=np.float64).astype(np.int32)[:4])
    half = margin / 2
    return (int(max(x1 - half, 0)), int(max(y1 - half, 0)), int(min(x2 + half, width)), int(min(y2 + half, height)))


def margin_crop(image: np.ndarray, box: Sequence[float], *, margin: float = 44, crop_size: int = 182,
                output_size: int = 160) -> np.ndarray:
    """davidsandberg/facenet's training crop: box + margin, resized to ``crop_size``, centre ``output_size``.

    As ``align_dataset_mtcnn.py --image_size 182 --margin 44`` followed by the
    centre crop to 160 px that facenet's training (without random crops) and
    evaluation apply:

    1. grow ``box`` by ``margin / 2`` pixels on every side, clip to the image;
    2. resize that region to ``crop_size`` × ``crop_size`` (bilinear; the aspect
       ratio is not kept, as in the original);
    3. take the central ``output_size`` × ``output_size`` pixels.

    Parameters
    ----------
    image : ndarray, uint8, shape (H, W, 3)
    box : 4 numbers
        ``(x1, y1, x2, y2)`` in pixels, e.g. ``Detection.box``.
    margin : float
        Total margin in pixels of the *original* image (default 44).
    crop_size : int
        Side the margin crop is resized to (default 182).
    output_size : int
        Side of the centre crop returned (default 160; ≤ ``crop_size``).

    Returns
    -------
    ndarray, uint8, shape (output_size, output_size, 3)
    """
    import cv2

    image = ensure_rgb(image)
    if not 1 <= int(output_size) <= int(crop_size):
        raise ConfigError(f"need 1 ≤ output_size ≤ crop_size, got output_size={output_size}, crop_size={crop_size}")
    if margin < 0:
        raise ConfigError(f"margin must be ≥ 0 pixels, got {margin}")
    x1, y1, x2, y2 = margin_box(box, image.shape, margin=margin)
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise InvalidImageError(f"box {tuple(box)} lies outside the {image.shape[1]}×{image.shape[0]} image")
    region = image[y1:y2, x1:x2]
    scaled = cv2.resize(region, (int(crop_size), int(crop_size)), interpolation=cv2.INTER_LINEAR)
    offset = (int(crop_size) - int(output_size)) // 2
    return np.ascontiguousarray(scaled[offset:offset + int(output_size), offset:offset + int(output_size)])


def _mean_margin_crop_landmarks(images: Sequence[np.ndarray], detector, *, margin: float = 44,
                                crop_size: int = 182, output_size: int = 160) -> np.ndarray:
    """Mean position of the top face's landmarks inside its :func:`margin_crop` (how FACENET_POINTS was measured).

    ``detector`` is a :class:`crowdkit.engine.detection.Detector` (facenet-pytorch's MTCNN for FACENET_POINTS).
    """
    rows = []
    for image in images:
        faces = detector.detect(image)
        if not faces:
            continue
        face = faces[0]
        x1, y1, x2, y2 = margin_box(face.box, image.shape, margin=margin)
        scale = np.array([crop_size / (x2 - x1), crop_size / (y2 - y1)])
        offset = (crop_size - output_size) // 2
        rows.append((face.landmarks - np.array([x1, y1])) * scale - offset)
    if not rows:
        raise InvalidImageError("no face found in any image")
    return np.mean(rows, axis=0)
