"""The detector contract: :class:`Detection` (one face) and the :class:`Detector` base class.

Every backend (the registry and the list of backends are in
:mod:`crowdkit.engine.detect`) returns, per image, a list of
:class:`Detection` (possibly empty, never ``None``) sorted by score, highest
first, with boxes clipped to the image and five landmarks in ArcFace order
(image-left eye, image-right eye, nose tip, image-left mouth corner,
image-right mouth corner). The base class checks the input and clips, filters
and sorts the output; a backend only turns one RGB image into raw detections.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from crowdkit.common.exceptions import ConfigError, InvalidImageError
from crowdkit.common.io import ensure_rgb

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


def finish_detections(raw: list[Detection], shape: tuple[int, ...]) -> list[Detection]:
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


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer ≥ ``minimum``; else a ConfigError naming option ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"option {name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)



# --------------------------------------------------------------------------- interface

class Detector(ABC):
    """A face detector. Build one with :func:`crowdkit.engine.detect.get_detector`; the model loads in the constructor.

    Subclasses implement :meth:`_detect` (one RGB image in, raw detections
    out) and may override :meth:`_detect_many` to batch natively; this class
    checks the input and clips, filters and sorts the output.

    Capabilities every detector has (the pipeline uses them directly):

    ``name``
        the registry name.
    :attr:`options`
        the options that decide which faces are found (listed in ``_option_names``).
    :attr:`cache_id`
        name plus options: part of every cache key and of the face manifest.
    """

    name: str = ""
    #: Attributes that change which faces are found (not batch size or device).
    _option_names: tuple[str, ...] = ()

    @property
    def options(self) -> dict[str, Any]:
        """The options that decide the detections: what a cache key for them must include."""
        return {name: getattr(self, name) for name in self._option_names}

    @property
    def cache_id(self) -> str:
        """Name plus options, e.g. ``"opencv(min_neighbors=5,min_size=20,scale_factor=1.1)"``.

        What decides which faces a detector finds (batch size and device change
        speed, not results): part of every cache key of its detections.
        """
        options = self.options
        if options:
            return self.name + "(" + ",".join(f"{k}={options[k]!r}" for k in sorted(options)) + ")"
        return self.name

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in one RGB ``uint8`` image (H, W, 3); score-descending, possibly empty."""
        image = ensure_rgb(image)
        return finish_detections(self._detect(image), image.shape)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """:meth:`detect` for each image (backends that batch natively override :meth:`_detect_many`)."""
        checked = [ensure_rgb(image) for image in images]
        if not checked:
            return []
        raw = self._detect_many(checked)
        return [finish_detections(found, image.shape) for found, image in zip(raw, checked)]

    @abstractmethod
    def _detect(self, image: np.ndarray) -> list[Detection]:
        """Raw detections in one checked RGB image."""

    def _detect_many(self, images: list[np.ndarray]) -> list[list[Detection]]:
        return [self._detect(image) for image in images]

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({options})"


def same_size_groups(images: list[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    """Image shape → the indices of the images of that shape (backends batch same-size frames)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(image.shape, []).append(index)
    return groups

