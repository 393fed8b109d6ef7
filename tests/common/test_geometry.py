"""Box geometry: a box grown by a margin, clipped to the image, cut out."""
from __future__ import annotations

import numpy as np

from crowdkit.common.geometry import crop_bounds, crop_box


def test_crop_box_clips_to_the_image():
    image = np.arange(100 * 80 * 3, dtype=np.uint8).reshape(100, 80, 3)
    assert crop_box(image, (10, 10, 30, 50), pad=0).shape == (40, 20, 3)
    assert crop_box(image, (-5, 90, 200, 120), pad=0).shape[:2] == (10, 80)


def test_crop_box_of_a_degenerate_box_is_one_pixel():
    image = np.zeros((100, 80, 3), dtype=np.uint8)
    assert crop_box(image, (10.2, 20.2, 10.2, 20.2), pad=0).shape == (1, 1, 3)
    assert crop_box(image, (10, 20, 10, 20), pad=0.5).shape == (1, 1, 3)


def test_crop_bounds_round_out_and_clip():
    assert crop_bounds((10.5, 10.5, 20.5, 30.5), (100, 80), margin=0) == (10, 10, 21, 31)
    assert crop_bounds((10, 10, 30, 50), (100, 80), margin=0.5) == (0, 0, 40, 70)
    assert crop_bounds((-5, 90, 200, 120), (100, 80), margin=0.2) == (0, 84, 80, 100)
