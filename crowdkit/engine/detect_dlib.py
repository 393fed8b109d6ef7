"""Detectors whose landmarks come from dlib's 68-point shape predictor: dlib HOG, dlib MMOD, OpenCV Haar.

None of these finds landmarks itself; :class:`DlibLandmarks` adds the five the
aligner needs. Built by name through :func:`crowdkit.engine.detect.get_detector`.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from crowdkit.common.exceptions import ConfigError, WeightsMissingError
from crowdkit.engine.detection import Detection, Detector, positive_int, same_size_groups

# --------------------------------------------------------------------------- landmarks from dlib

_PREDICTORS: dict[str, Any] = {}


def forget_shape_predictors() -> None:
    """Drop the shape predictors loaded in this process (the next landmarking loads them again)."""
    _PREDICTORS.clear()


def _shape_predictor(path: str) -> Any:
    """dlib's shape predictor in ``path``, loaded once per process, on first use."""
    if path not in _PREDICTORS:
        import dlib

        _PREDICTORS[path] = dlib.shape_predictor(path)
    return _PREDICTORS[path]


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

    The predictor (95 MB) is loaded once per process and shared, on the first
    face it is asked about: a search that reuses recorded detections never loads it.
    The file must be present at construction (a missing one fails before any work).
    """

    def __init__(self) -> None:
        import dlib

        from crowdkit.common import weights

        self._path = str(weights.require("dlib-shape68"))
        self._rectangle = dlib.rectangle

    def _predictor(self, image: np.ndarray, rectangle: Any) -> Any:
        return _shape_predictor(self._path)(image, rectangle)

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


#: How dlib's HOG box for a face sits relative to YuNet's box of the same face, as fractions of
#: YuNet's width (x) and height (y): centre shift right and down, and the side of HOG's square box
#: as the mean of ``side_per_width`` × width and ``side_per_height`` × height. Medians over the 1,239
#: LFW deep-funneled photos (of 1,500 drawn with numpy default_rng(1) from the images outside the
#: View-2 pairs) where each detector found exactly one face; see :func:`measure_hog_offsets`.
YUNET_TO_HOG = {"shift_x": 0.030, "shift_y": 0.065, "side_per_width": 1.12, "side_per_height": 0.84}


def hog_style_box(box: Sequence[float], offsets: dict[str, float] = YUNET_TO_HOG) -> tuple[float, float, float, float]:
    """The square box dlib's HOG detector would have drawn around the face YuNet boxed as ``box``.

    dlib's 5-point shape predictor was trained on HOG boxes; YuNet's are taller
    and sit higher. Given YuNet's box unchanged, the chips it places move enough
    to cost LFW accuracy (0.9872 against 0.9887 with this mapping, 6,000
    View-2 pairs, euclidean distance).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2 + offsets["shift_x"] * width
    cy = (y1 + y2) / 2 + offsets["shift_y"] * height
    half = (offsets["side_per_width"] * width + offsets["side_per_height"] * height) / 4
    return cx - half, cy - half, cx + half, cy + half


def measure_hog_offsets(images: Sequence[np.ndarray], detector: Detector) -> dict[str, float]:
    """:data:`YUNET_TO_HOG` measured afresh: medians over the images where both detectors find exactly one face."""
    import dlib

    hog = dlib.get_frontal_face_detector()
    rows = []
    for image in images:
        found, rects = detector.detect(image), list(hog(image, 0))
        if len(found) == 1 and len(rects) == 1:
            (x1, y1, x2, y2), r = found[0].box, rects[0]
            width, height, side = x2 - x1, y2 - y1, r.right() + 1 - r.left()
            shift_x = ((r.left() + r.right() + 1) - (x1 + x2)) / 2 / width
            shift_y = ((r.top() + r.bottom() + 1) - (y1 + y2)) / 2 / height
            rows.append((shift_x, shift_y, side / width, side / height))
    if not rows:
        raise ValueError("no image had exactly one face for both detectors; nothing to measure")
    medians = np.median(np.array(rows), axis=0)
    return {**dict(zip(YUNET_TO_HOG, (float(v) for v in medians))), "n": len(rows)}


class DlibChips:
    """dlib's own 150-px chip of a boxed face: its 5-point shape predictor, then ``get_face_chip`` (padding 0.25).

    The chip the dlib ResNet was trained on, placed exactly as dlib's
    ``face_recognition`` examples place it.
    """

    size = 150

    def __init__(self) -> None:
        import dlib

        from crowdkit.common import weights

        self._predictor = _shape_predictor(str(weights.require("dlib-shape5")))
        self._dlib = dlib

    def __call__(self, image: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """(150, 150, 3) uint8 chip of the face in ``box`` (x1, y1, x2, y2) of RGB ``image``."""
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        shape = self._predictor(image, self._dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
        return np.asarray(self._dlib.get_face_chip(image, shape, size=self.size, padding=0.25))


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

        self.upsample = positive_int("upsample", upsample, minimum=0)
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

        self.upsample = positive_int("upsample", upsample, minimum=0)
        self.batch_size = positive_int("batch_size", batch_size)
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
        for indices in same_size_groups(images).values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                found = self._detector([images[i] for i in chunk], self.upsample, batch_size=len(chunk))
                for i, faces in zip(chunk, found):
                    results[i] = self._convert(images[i], faces)
        return results


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
        self.min_neighbors = positive_int("min_neighbors", min_neighbors, minimum=0)
        self.min_size = positive_int("min_size", min_size)
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
