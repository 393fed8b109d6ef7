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
