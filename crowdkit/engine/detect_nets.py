"""Neural detectors with their own five landmarks: facenet-pytorch's MTCNN and the retina-face package's RetinaFace.

Built by name through :func:`crowdkit.engine.detect.get_detector`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from crowdkit.common.exceptions import ConfigError, WeightsMissingError
from crowdkit.engine.detection import Detection, Detector, positive_int, same_size_groups

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
        self.min_face_size = positive_int("min_face_size", min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        if len(self.thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ConfigError(f"option thresholds must be 3 numbers in [0, 1], got {thresholds!r}")
        if not 0.0 < float(factor) < 1.0:
            raise ConfigError(f"option factor must be in (0, 1), got {factor!r}")
        self.factor = float(factor)
        self.batch_size = positive_int("batch_size", batch_size)
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
        for indices in same_size_groups(images).values():
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
