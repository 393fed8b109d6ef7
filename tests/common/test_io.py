"""Image format checks shared by every stage."""
from __future__ import annotations

import numpy as np

from crowdkit.common.io import ensure_rgb


def test_ensure_rgb_conversions() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert ensure_rgb(grey).shape == (3, 4, 3)
    np.testing.assert_array_equal(ensure_rgb(grey)[:, :, 2], grey)
    rgba = np.zeros((3, 4, 4), np.uint8)
    assert ensure_rgb(rgba).shape == (3, 4, 3)
    assert ensure_rgb(rgba).flags["C_CONTIGUOUS"]


def test_progress_bars_follow_the_request_and_tqdm_disable(monkeypatch):
    from crowdkit.common.io import show_progress

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert show_progress(True) and not show_progress(False)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # a book build: no bar even where a caller asks for one
    assert not show_progress(True)
