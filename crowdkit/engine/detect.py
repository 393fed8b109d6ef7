"""Face detection: one interface, five backends, five landmarks per face.

Every backend returns, per image, a list of :class:`Detection` (possibly
empty, never ``None``) sorted by score, highest first, with boxes clipped to
the image and five landmarks in ArcFace order (image-left eye, image-right
eye, nose tip, image-left mouth corner, image-right mouth corner)::

    >>> from crowdkit.engine.detect import get_detector
    >>> from crowdkit.common.io import read_image
    >>> detector = get_detector("mtcnn", min_face_size=16)      # doctest: +SKIP
    >>> faces = detector.detect(read_image("two_people.jpg"))   # doctest: +SKIP
    >>> [round(f.score, 2) for f in faces]                      # doctest: +SKIP
    [1.0, 1.0]

Backends (``DETECTORS.names()``):

``mtcnn``
    facenet-pytorch's MTCNN (weights ship inside the package). Native
    landmarks; batched over same-size frames. The crowd-study default.
``retinaface``
    the retina-face package (TensorFlow). Native landmarks. Its weights,
    ``retinaface.h5``, are downloaded on first use when
    ``CROWDKIT_ALLOW_DOWNLOAD=1``; offline a missing file fails at once.
``dlib-hog``
    dlib's frontal HOG + linear SVM detector. Fast, frontal faces only.
``dlib-mmod``
    dlib's MMOD CNN detector (face_recognition_models). Accurate but slow on
    a CPU (tens of seconds on a group photo).
``opencv``
    OpenCV's Haar cascade (``haarcascade_frontalface_default.xml``).

The three backends without landmarks get them from dlib's 68-point shape
predictor (see :class:`DlibLandmarks`). Scores are each backend's own: a
probability for MTCNN and RetinaFace, an SVM margin for HOG, a CNN confidence
for MMOD and a cascade level weight for OpenCV. Compare them only within one
backend.
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from crowdkit.common.exceptions import ConfigError, InvalidImageError, WeightsMissingError
from crowdkit.common.registry import Registry

logger = logging.getLogger(__name__)

#: Landmark names in the order of :attr:`Detection.landmarks` ("left" = image-left).
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, eq=False)
class Detection:
    """One face found in one image.

    Attributes
    ----------
    box : tuple of 4 floats
        ``(x1, y1, x2, y2)`` in pixels, clipped to the image.
    score : float
        The backend's confidence (not comparable across backends).
    landmarks : ndarray, float32, shape (5, 2)
        ``(x, y)`` of the image-left eye centre, image-right eye centre, nose
        tip, image-left and image-right mouth corners (ArcFace order). Read-only.
        A landmark may lie outside the image when the face is cut by the border.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in self.box)
        if len(box) != 4:
            raise InvalidImageError(f"a box has 4 numbers (x1, y1, x2, y2), got {self.box!r}")
        points = np.array(self.landmarks, dtype=np.float32).reshape(5, 2)
        points.setflags(write=False)
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "landmarks", points)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detection):
            return NotImplemented
        return (self.box, self.score) == (other.box, other.score) and np.array_equal(self.landmarks, other.landmarks)

    def __hash__(self) -> int:
        return hash((self.box, self.score, self.landmarks.tobytes()))

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


# --------------------------------------------------------------------------- input checks

def ensure_rgb(image: Any) -> np.ndarray:
    """Return ``image`` as a C-contiguous RGB ``uint8`` array of shape (H, W, 3).

    Greyscale (H, W) or (H, W, 1) is repeated over three channels and RGBA
    (H, W, 4) loses its alpha channel. Anything else raises
    :class:`~crowdkit.common.exceptions.InvalidImageError` saying what was expected.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(
            f"expected an RGB uint8 numpy array of shape (H, W, 3), got {type(image).__name__}; "
            "read files with crowdkit.common.io.read_image(path)"
        )
    if image.dtype != np.uint8:
        raise InvalidImageError(
            f"expected an image of dtype uint8, got {image.dtype}; convert with "
            "np.clip(image * 255, 0, 255).astype(np.uint8) for floats in [0, 1]"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InvalidImageError(
            f"expected an image of shape (H, W, 3) (RGB), (H, W) (grey) or (H, W, 4) (RGBA), got {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidImageError(f"the image is empty (shape {image.shape})")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def _finish(raw: list[Detection], shape: tuple[int, ...]) -> list[Detection]:
    """Clip boxes to the image, drop empty ones, sort by score (highest first)."""
    height, width = shape[:2]
    out = []
    for det in raw:
        x1, y1, x2, y2 = det.box
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        out.append(Detection((x1, y1, x2, y2), det.score, det.landmarks))
    out.sort(key=lambda d: d.score, reverse=True)
    return out


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"option {name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- interface

class Detector(ABC):
    """A face detector. Build one with :func:`get_detector`; the model loads in the constructor.

    Subclasses implement :meth:`_detect` (one RGB image in, raw detections
    out); this class checks the input and clips, filters and sorts the output.
    """

    name: str = ""
    #: Attributes that change which faces are found (not batch size or device).
    _option_names: tuple[str, ...] = ()

    @property
    def options(self) -> dict[str, Any]:
        """The options that decide the detections: what a cache key for them must include."""
        return {name: getattr(self, name) for name in self._option_names}

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one RGB ``uint8`` image (H, W, 3); score-descending, possibly empty."""
        image = ensure_rgb(image)
        return _finish(self._detect(image), image.shape)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` for each image (backends that batch natively override :meth:`_detect_many`)."""
        checked = [ensure_rgb(image) for image in images]
        if not checked:
            return []
        raw = self._detect_many(checked)
        return [_finish(found, image.shape) for found, image in zip(raw, checked)]

    @abstractmethod
    def _detect(self, image: np.ndarray) -> list[Detection]:
        """Raw detections in one checked RGB image."""

    def _detect_many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [self._detect(image) for image in images]

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({options})"


DETECTORS: Registry[Detector] = Registry("detector")


def get_detector(name: str, **options: Any) -> Detector:
    """Build the detector called ``name`` (see ``DETECTORS.names()``) with its keyword options.

    Raises :class:`~crowdkit.common.exceptions.UnknownBackendError` listing the known
    names, :class:`~crowdkit.common.exceptions.ConfigError` for a bad option and
    :class:`~crowdkit.common.exceptions.WeightsMissingError` when the model's file is
    missing offline.
    """
    try:
        return DETECTORS.create(name, **options)
    except TypeError as error:  # an option the backend does not take
        raise ConfigError(f"detector {name!r}: {error}") from None


def _same_size_groups(images: list[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.shape, []).append(index)
    return groups


# --------------------------------------------------------------------------- landmarks from dlib

_PREDICTORS: dict[str, Any] = {}


class DlibLandmarks:
    """Five ArcFace-order landmarks for a face box, from dlib's 68-point shape predictor.

    Why 68 points and not dlib's 5-point model: the 5-point model marks the
    two corners of each eye and the base of the nose, not the mouth, so the
    mouth corners would have to be guessed from the face's proportions, and
    the "nose" point sits ~15 % of the eye distance below the nose tip that
    the ArcFace and MTCNN templates use. The 68-point model gives every point
    the templates need directly: eye centres (mean of the six points around
    each eye, 36–41 and 42–47), nose tip (30) and mouth corners (48, 54).
    Measured on 150 LFW photos (HOG boxes), against MTCNN's own landmarks, in
    units of the eye distance: 0.053 mean error with the 68-point model, 0.122
    with the 5-point model plus geometrically estimated mouth corners (nose
    0.18, mouth corners 0.16-0.18). Chips aligned to the ``dlib`` template from
    these landmarks classify 119 LFW View-2 pairs as well as dlib's own
    ``get_face_chip`` does (all correct at 0.6).

    The predictor (95 MB) is loaded once per process and shared.
    """

    def __init__(self) -> None:
        import dlib

        from crowdkit.common import weights

        path = str(weights.require("dlib-shape68"))
        if path not in _PREDICTORS:
            _PREDICTORS[path] = dlib.shape_predictor(path)
        self._predictor = _PREDICTORS[path]
        self._rectangle = dlib.rectangle

    def __call__(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """(5, 2) float32 landmarks for the face in ``box`` (x1, y1, x2, y2) of RGB ``image``."""
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        # dlib rectangles include their right and bottom edges.
        shape = self._predictor(image, self._rectangle(x1, y1, x2 - 1, y2 - 1))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return np.stack([
            points[36:42].mean(axis=0),  # image-left eye (the person's right)
            points[42:48].mean(axis=0),  # image-right eye
            points[30],                  # nose tip
            points[48],                  # image-left mouth corner
            points[54],                  # image-right mouth corner
        ]).astype(np.float32)


# --------------------------------------------------------------------------- backends

@DETECTORS.register("mtcnn")
class MTCNNDetector(Detector):
    """facenet-pytorch's MTCNN (P-, R- and O-Net, weights shipped with the package).

    Parameters
    ----------
    min_face_size : int
        Smallest face searched for, in pixels (default 20; the crowd study uses ~16).
    thresholds : 3 floats
        Score thresholds of the three stages (default (0.6, 0.7, 0.7)).
    factor : float
        Image-pyramid scale step (default 0.709).
    device : str
        torch device (default ``"cpu"``).
    batch_size : int
        Most same-size frames sent to the network at once by :meth:`detect_batch`.
    """

    name = "mtcnn"
    _option_names = ("min_face_size", "thresholds", "factor")

    def __init__(self, *, min_face_size: int = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, device: str = "cpu", batch_size: int = 16) -> None:
        self.min_face_size = _positive_int("min_face_size", min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ConfigError(f"option thresholds must be 3 numbers in [0, 1], got {thresholds!r}")
        if not 0.0 < float(factor) < 1.0:
            raise ConfigError(f"option factor must be in (0, 1), got {factor!r}")
        self.factor = float(factor)
        self.batch_size = _positive_int("batch_size", batch_size)
        try:
            from facenet_pytorch import MTCNN
        except ImportError as error:
            raise ConfigError(
                f"detector 'mtcnn' needs facenet-pytorch ({error}); "
                "fix: pip install --no-deps facenet-pytorch==2.6.0"
            ) from None
        self._model = MTCNN(keep_all=True, select_largest=False, min_face_size=self.min_face_size,
                            thresholds=list(self.thresholds), factor=self.factor, device=device)

    @staticmethod
    def _convert(boxes: Any, probs: Any, points: Any) -> list[Detection]:
        if boxes is None or len(boxes) == 0:
            return []
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        points = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2)
        # MTCNN's landmarks are already in ArcFace order (image-left eye first).
        return [Detection(tuple(b), p, lm) for b, p, lm in zip(boxes, probs, points)]

    def _too_small(self, image: np.ndarray) -> bool:
        # MTCNN's image pyramid is empty (and facenet-pytorch crashes) below min_face_size.
        return min(image.shape[:2]) < self.min_face_size

    def _detect(self, image: np.ndarray) -> list[Detection]:
        if self._too_small(image):
            return []
        boxes, probs, points = self._model.detect(image, landmarks=True)
        return self._convert(boxes, probs, points)

    def _detect_many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        results: list[list[Detection]] = [[] for _ in images]
        for indices in _same_size_groups(images).values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                if len(chunk) == 1 or self._too_small(images[chunk[0]]):
                    for i in chunk:
                        results[i] = self._detect(images[i])
                    continue
                boxes, probs, points = self._model.detect(np.stack([images[i] for i in chunk]), landmarks=True)
                for i, b, p, lm in zip(chunk, boxes, probs, points):
                    results[i] = self._convert(b, p, lm)
        return results


@DETECTORS.register("dlib-hog")
class DlibHOGDetector(Detector):
    """dlib's frontal-face HOG detector; landmarks from :class:`DlibLandmarks`.

    Parameters
    ----------
    upsample : int
        Times the image is doubled before searching (default 1: faces from ~40 px).
    threshold : float
        SVM score threshold passed as dlib's ``adjust_threshold`` (default 0.0).
    """

    name = "dlib-hog"
    _option_names = ("upsample", "threshold")

    def __init__(self, *, upsample: int = 1, threshold: float = 0.0) -> None:
        import dlib

        self.upsample = _positive_int("upsample", upsample, minimum=0)
        self.threshold = float(threshold)
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = DlibLandmarks()

    def _detect(self, image: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(image, self.upsample, self.threshold)
        out = []
        for rect, score in zip(rects, scores):
            box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            out.append(Detection(box, score, self._landmarks(image, box)))
        return out


@DETECTORS.register("dlib-mmod")
class DlibMMODDetector(Detector):
    """dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``); landmarks from :class:`DlibLandmarks`.

    Slow on a CPU: seconds for a small photo, tens of seconds for a large group photo.

    Parameters
    ----------
    upsample : int
        Times the image is doubled before searching (default 1).
    batch_size : int
        Same-size frames sent to the network at once by :meth:`detect_batch`.
    """

    name = "dlib-mmod"
    _option_names = ("upsample",)

    def __init__(self, *, upsample: int = 1, batch_size: int = 8) -> None:
        import dlib

        from crowdkit.common import weights

        self.upsample = _positive_int("upsample", upsample, minimum=0)
        self.batch_size = _positive_int("batch_size", batch_size)
        self._detector = dlib.cnn_face_detection_model_v1(str(weights.require("dlib-mmod")))
        self._landmarks = DlibLandmarks()

    def _convert(self, image: np.ndarray, found: Any) -> list[Detection]:
        out = []
        for item in found:
            rect = item.rect
            box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            out.append(Detection(box, item.confidence, self._landmarks(image, box)))
        return out

    def _detect(self, image: np.ndarray) -> list[Detection]:
        return self._convert(image, self._detector(image, self.upsample))

    def _detect_many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        results: list[list[Detection]] = [[] for _ in images]
        for indices in _same_size_groups(images).values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                found = self._detector([images[i] for i in chunk], self.upsample, batch_size=len(chunk))
                for i, faces in zip(chunk, found):
                    results[i] = self._convert(images[i], faces)
        return results


@DETECTORS.register("opencv")
class OpenCVHaarDetector(Detector):
    """OpenCV's Haar cascade ``haarcascade_frontalface_default.xml``; landmarks from :class:`DlibLandmarks`.

    Parameters
    ----------
    scale_factor : float
        Pyramid step (default 1.1).
    min_neighbors : int
        Overlapping hits a face needs (default 5; lower finds more, and more false faces).
    min_size : int
        Smallest face in pixels (default 20).
    """

    name = "opencv"
    _option_names = ("scale_factor", "min_neighbors", "min_size")
    CASCADE = "haarcascade_frontalface_default.xml"

    def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 20) -> None:
        import cv2

        if not float(scale_factor) > 1.0:
            raise ConfigError(f"option scale_factor must be > 1, got {scale_factor!r}")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = _positive_int("min_neighbors", min_neighbors, minimum=0)
        self.min_size = _positive_int("min_size", min_size)
        folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
        path = os.path.join(folder, self.CASCADE)
        if not os.path.isfile(path):
            raise WeightsMissingError(
                f"OpenCV's Haar cascade {self.CASCADE} is not in {folder or 'cv2.data'} "
                f"(OpenCV {cv2.__version__}; 5.x wheels ship none). Fix: pip install "
                "opencv-python-headless==4.11.0.86 (and keep every OpenCV wheel on that version), "
                "or use detector 'mtcnn' or 'dlib-hog'."
            )
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise WeightsMissingError(f"OpenCV could not load the cascade {path}; reinstall opencv-python-headless")
        self._cv2 = cv2
        self._landmarks = DlibLandmarks()

    def _detect(self, image: np.ndarray) -> list[Detection]:
        grey = self._cv2.cvtColor(image, self._cv2.COLOR_RGB2GRAY)
        rects, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True,
        )
        out = []
        for (x, y, w, h), weight in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            box = (float(x), float(y), float(x + w), float(y + h))
            out.append(Detection(box, weight, self._landmarks(image, box)))
        return out


@DETECTORS.register("retinaface")
class RetinaFaceDetector(Detector):
    """The retina-face package's RetinaFace (ResNet-50, TensorFlow).

    Needs ``retinaface.h5`` in ``$DEEPFACE_HOME/.deepface/weights/``; see
    ``crowdkit weights status``. Offline, a missing file raises
    :class:`~crowdkit.common.exceptions.WeightsMissingError` before TensorFlow is imported.

    Parameters
    ----------
    threshold : float
        Face score threshold (default 0.9, the package's).
    allow_upscaling : bool
        Let the package rescale images so the short side is 1024 px (default True, the
        package's). On this project's 2-core CPU one forward pass at that size takes
        tens of seconds; ``False`` keeps the image's own size.
    """

    name = "retinaface"
    _option_names = ("threshold", "allow_upscaling")

    def __init__(self, *, threshold: float = 0.9, allow_upscaling: bool = True) -> None:
        from crowdkit.common import weights

        if not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"option threshold must be in [0, 1], got {threshold!r}")
        self.threshold = float(threshold)
        self.allow_upscaling = bool(allow_upscaling)
        # Before TensorFlow is imported: legacy Keras, the folder the package reads
        # its weights from, and triton imported first (see weights.prepare_tensorflow).
        weights.prepare_tensorflow()
        path = weights.require("retinaface")  # fails fast offline, before the TF import
        if path.parent != weights.deepface_weights_dir():
            raise WeightsMissingError(f"retina-face reads {weights.deepface_weights_dir()}, but the file is at {path}")

        import tensorflow as tf
        from retinaface import RetinaFace
        from retinaface.model import retinaface_model

        try:
            network = retinaface_model.build_model()
        except ValueError as error:
            if "KerasTensor" not in str(error):
                raise
            raise ConfigError(
                "retina-face cannot build its model under Keras 3: TensorFlow was imported before "
                "TF_USE_LEGACY_KERAS=1 was set. Fix: export TF_USE_LEGACY_KERAS=1 before starting Python "
                "(or set it before anything imports tensorflow, e.g. the mtcnn package)."
            ) from None
        # Our own model (not the package's global singleton), wrapped as the package does.
        self._model = tf.function(
            network, input_signature=(tf.TensorSpec(shape=[None, None, None, 3], dtype=np.float32),)
        )
        self._detect_faces = RetinaFace.detect_faces

    def _detect(self, image: np.ndarray) -> list[Detection]:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        found = self._detect_faces(bgr, threshold=self.threshold, model=self._model,
                                   allow_upscaling=self.allow_upscaling)
        if not isinstance(found, dict):
            return []
        out = []
        for face in found.values():
            marks = face["landmarks"]
            # retina-face names landmarks from the person's side: its "right_eye" is
            # the image-left eye (the network's first point, as in insightface), and
            # "mouth_right" the image-left mouth corner. Contract order is image-left first.
            points = [marks["right_eye"], marks["left_eye"], marks["nose"], marks["mouth_right"], marks["mouth_left"]]
            out.append(Detection(tuple(face["facial_area"]), face["score"], np.array(points, dtype=np.float32)))
        return out
