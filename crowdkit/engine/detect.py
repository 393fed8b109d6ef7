"""Face detection by name: the registry of the six backends.

Every backend (a :class:`~crowdkit.engine.detection.Detector`) returns, per image, a list of :class:`Detection` (possibly
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

``yunet``
    OpenCV Zoo's YuNet through ``cv2.FaceDetectorYN``; its 230 KB model ships
    inside crowdkit (MIT licence). Native landmarks; fast on a CPU.
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
predictor (see :class:`crowdkit.engine.detect_dlib.DlibLandmarks`). Scores are each backend's own: a
probability for MTCNN and RetinaFace, an SVM margin for HOG, a CNN confidence
for MMOD and a cascade level weight for OpenCV. Compare them only within one
backend.
"""
from __future__ import annotations

from typing import Any

from crowdkit.common.exceptions import ConfigError
from crowdkit.common.registry import Registry
from crowdkit.engine.detect_dlib import DlibHOGDetector, DlibMMODDetector, OpenCVHaarDetector
from crowdkit.engine.detect_nets import MTCNNDetector, RetinaFaceDetector
from crowdkit.engine.detect_yunet import YuNetDetector
from crowdkit.engine.detection import Detector

#: The detector :func:`crowdkit.engine.faces.find` / ``verify`` and ``crowdkit find`` / ``verify`` use unless
#: told otherwise: chosen by the detector study (:mod:`crowdkit.crowd.detector_study`, the engine chapter).
DEFAULT_DETECTOR = "mtcnn"

#: Name → detector class, one entry per backend (``DETECTORS.names()``).
DETECTORS: Registry[Detector] = Registry("detector")
for backend in (YuNetDetector, MTCNNDetector, RetinaFaceDetector, DlibHOGDetector, DlibMMODDetector,
                OpenCVHaarDetector):
    DETECTORS.register(backend.name)(backend)
del backend


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
