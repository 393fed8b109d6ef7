"""Plot helpers draw what they are given (Agg backend, no display)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from crowdkit.engine import plots  # noqa: E402
from crowdkit.engine.detection import Detection  # noqa: E402


def test_draw_detections_adds_one_box_and_five_points_per_face():
    image = np.zeros((100, 120, 3), dtype=np.uint8)
    faces = [Detection((10, 10, 50, 60), 0.9, np.full((5, 2), 30.0)), Detection((60, 20, 100, 70), 0.8, np.full((5, 2), 80.0))]
    ax = plots.draw_detections(image, faces, title="two", show_scores=True)
    assert len(ax.patches) == 2 and len(ax.collections) == 2
    assert all(len(c.get_offsets()) == 5 for c in ax.collections)
    assert ax.get_title() == "two"


def test_thumbnail_grid_layout_captions_and_highlight():
    images = [np.full((20, 20, 3), i * 20, dtype=np.uint8) for i in range(5)]
    fig = plots.thumbnail_grid(images, [f"#{i}" for i in range(5)], ncols=3, highlight=[True, False, False, False, True])
    axes = fig.axes
    assert len(axes) == 6  # 2 rows x 3 columns, the last one empty
    assert [ax.get_title() for ax in axes[:5]] == ["#0", "#1", "#2", "#3", "#4"]
    assert axes[0].axison and not axes[1].axison and not axes[5].images
