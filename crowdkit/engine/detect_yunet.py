"""YuNet, OpenCV Zoo's small face detector, shipped inside crowdkit (no download, MIT licence).

``cv2.FaceDetectorYN`` runs the 230 KB ONNX model in ``crowdkit/engine/models/``
(provenance and licence in the README there) and returns, per face, a box, a
score and five landmarks — so no landmark predictor is needed for alignment.
Built by name through :func:`crowdkit.engine.detect.get_detector`::

    >>> from crowdkit.engine.detect import get_detector
    >>> detector = get_detector("yunet")                        # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from crowdkit.common.exceptions import ConfigError, WeightsMissingError
from crowdkit.engine.detection import Detection, Detector, positive_int

#: The model file inside the package, and its published sha256.
YUNET_MODEL = Path(__file__).resolve().parent / "models" / "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


@lru_cache(maxsize=4)
def _checked_model(path: str) -> str:
    """The model's path once its bytes match the published sha256 (checked once per process)."""
    file = Path(path)
    if not file.is_file():
        raise WeightsMissingError(f"YuNet's model {file} is missing; it ships inside crowdkit "
                                  "(crowdkit/engine/models/): reinstall the package or restore the file from git")
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if digest != YUNET_SHA256:
        raise WeightsMissingError(f"{file} is not the YuNet 2023-03 release (sha256 {digest[:12]}…, expected "
                                  f"{YUNET_SHA256[:12]}…): restore it from git")
    return str(file)


class YuNetDetector(Detector):
    """OpenCV's YuNet (``cv2.FaceDetectorYN``): boxes, scores and five native landmarks.

    Parameters
    ----------
    score_threshold : float
        Faces scoring below are dropped (default 0.6; OpenCV Zoo's demo uses 0.9).
    nms_threshold : float
        IoU above which overlapping boxes are merged by non-maximum suppression (default 0.3).
    upscale : float
        The image is enlarged by this factor before detection (default 1.0):
        YuNet finds faces from about 10 px; 2.0 reaches faces half that size.
    top_k : int
        Most candidates kept before suppression (default 5000).
    """

    name = "yunet"
    _option_names = ("score_threshold", "nms_threshold", "upscale")

    def __init__(self, *, score_threshold: float = 0.6, nms_threshold: float = 0.3, upscale: float = 1.0,
                 top_k: int = 5000) -> None:
        for option, value in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold)):
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"option {option} must be in [0, 1], got {value!r}")
        if not 0.25 <= float(upscale) <= 8.0:
            raise ConfigError(f"option upscale must be between 0.25 and 8, got {upscale!r}")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.upscale = float(upscale)
        self.top_k = positive_int("top_k", top_k)
        import cv2

        if not hasattr(cv2, "FaceDetectorYN"):
            raise ConfigError(f"detector 'yunet' needs OpenCV ≥ 4.8 with FaceDetectorYN (found {cv2.__version__})")
        self._cv2 = cv2
        self._model = cv2.FaceDetectorYN.create(_checked_model(str(YUNET_MODEL)), "", (320, 320),
                                                self.score_threshold, self.nms_threshold, self.top_k)

    def _detect(self, image: np.ndarray) -> list[Detection]:
        cv2 = self._cv2
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self.upscale != 1.0:
            bgr = cv2.resize(bgr, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        height, width = bgr.shape[:2]
        self._model.setInputSize((width, height))
        _, faces = self._model.detect(bgr)
        if faces is None:
            return []
        faces = np.asarray(faces, dtype=np.float32).reshape(-1, 15) / np.float32(self.upscale)
        faces[:, 14] *= self.upscale  # the score is not a coordinate
        faces = faces[np.isfinite(faces).all(axis=1)]  # a non-finite row (seen once, on a blank image) is no face
        detections = []
        for row in faces:
            x, y, w, h = row[:4]
            # YuNet's order: the subject's right eye (image-left) first — already ArcFace order.
            detections.append(Detection((x, y, x + w, y + h), float(row[14]), row[4:14].reshape(5, 2)))
        return detections


def install_yunet_for_deepface() -> Path:
    """Copy the shipped YuNet model where deepface's ``"yunet"`` detector looks for it, so it runs offline.

    deepface would otherwise download the same file (``face_detection_yunet_2023mar.onnx``)
    from OpenCV Zoo on first use. Idempotent; returns the copy's path.
    """
    import shutil

    from crowdkit.common.io import atomic_path
    from crowdkit.common.weights import deepface_weights_dir

    source = Path(_checked_model(str(YUNET_MODEL)))
    target = deepface_weights_dir() / source.name
    if not (target.is_file() and target.stat().st_size == source.stat().st_size):
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    return target
