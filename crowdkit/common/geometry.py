"""Box geometry: face boxes ``(x1, y1, x2, y2)`` in pixels, grown by a margin and cut out of images.

    >>> import numpy as np
    >>> crop_bounds((10, 10, 30, 50), (100, 80), margin=0.5)
    (0, 0, 40, 70)
    >>> crop_box(np.zeros((100, 80, 3), np.uint8), (10, 10, 30, 50), pad=0).shape
    (40, 20, 3)
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def crop_bounds(box: Sequence[float], shape: Sequence[int], *, margin: float) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` × its width/height on each side, rounded out and clipped to ``shape``.

    Parameters
    ----------
    box : (x1, y1, x2, y2) in pixels
    shape : the image's shape, (H, W, ...)
    margin : fraction of the box's width (height) added left and right (above and below)

    Returns
    -------
    (left, top, right, bottom) : ints with ``0 <= left``, ``right <= W``, ``0 <= top``, ``bottom <= H``;
        ``image[top:bottom, left:right]`` is the crop (empty when the box lies outside the image).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    height, width = int(shape[0]), int(shape[1])
    return (max(0, math.floor(x1 - dx)), max(0, math.floor(y1 - dy)),
            min(width, math.ceil(x2 + dx)), min(height, math.ceil(y2 + dy)))


def crop_box(image: np.ndarray, box: Sequence[float], *, pad: float = 0.15) -> np.ndarray:
    """The part of ``image`` inside ``box`` (x1, y1, x2, y2), enlarged by ``pad`` of its size on each side.

    Clipped to the image (see :func:`crop_bounds`); a degenerate box inside the image
    still gives one pixel, so a thumbnail can be drawn.
    """
    left, top, right, bottom = crop_bounds(box, image.shape, margin=pad)
    return image[top:max(bottom, top + 1), left:max(right, left + 1)]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` (N, 4) and ``b`` (M, 4), x1, y1, x2, y2 → (N, M); 0 where the union is empty."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)
