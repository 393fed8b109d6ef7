"""Figures the notebooks share: detections drawn on a photo, thumbnail grids, distance strips.

Each function draws with matplotlib (imported lazily) and returns the Figure
(or the Axes it drew on), so a notebook shows it and a script can save it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from crowdkit.engine.detection import Detection

#: Colours of the five landmarks (eyes, nose, mouth corners), in Detection.landmarks order.
LANDMARK_COLOURS = ("#1f77b4", "#1f77b4", "#2ca02c", "#d62728", "#d62728")


def draw_detections(
    image: np.ndarray,
    detections: Sequence["Detection"],
    *,
    ax: "Axes | None" = None,
    title: str | None = None,
    box_colour: str = "#ffcc00",
    show_scores: bool = False,
) -> "Axes":
    """Show ``image`` (RGB uint8) with each detection's box and five landmarks.

    Returns the Axes drawn on (a new figure's when ``ax`` is None).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 6 * image.shape[0] / max(1, image.shape[1])))
    ax.imshow(image)
    linewidth = max(1.0, image.shape[1] / 400)
    for det in detections:
        x1, y1, x2, y2 = det.box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=box_colour, linewidth=linewidth))
        points = np.asarray(det.landmarks)
        ax.scatter(points[:, 0], points[:, 1], s=6 * linewidth, c=list(LANDMARK_COLOURS), zorder=3)
        if show_scores:
            ax.text(x1, y1 - 2, f"{det.score:.2f}", color=box_colour, fontsize=7, va="bottom")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return ax


def thumbnail_grid(
    images: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    *,
    ncols: int = 8,
    size: float = 1.5,
    highlight: Sequence[bool] | None = None,
    highlight_colour: str = "#2ca02c",
    title: str | None = None,
) -> "Figure":
    """Images in a grid, each with an optional caption; ``highlight`` frames chosen ones in colour.

    Parameters
    ----------
    images : RGB uint8 arrays (any sizes)
    captions : one string per image (may hold newlines)
    ncols : columns; rows follow from ``len(images)``
    size : inches per thumbnail
    """
    import matplotlib.pyplot as plt

    count = len(images)
    ncols = max(1, min(ncols, count or 1))
    nrows = max(1, -(-count // ncols))
    caption_room = 0.35 if captions is not None else 0.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + caption_room)), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index >= count:
            continue
        ax.imshow(images[index])
        if captions is not None:
            ax.set_title(captions[index], fontsize=7)
        if highlight is not None and highlight[index]:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(highlight_colour)
                spine.set_linewidth(3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def distance_strip(
    distances: Sequence[float],
    labels: Sequence[Any],
    *,
    threshold: float,
    metric: str = "cosine",
    ax: "Axes | None" = None,
    title: str | None = None,
) -> "Axes":
    """Sorted distances as points coloured by ``labels`` (e.g. same person or not), with the threshold line."""
    import matplotlib.pyplot as plt

    distances = np.asarray(distances, dtype=float)
    labels = np.asarray(labels)
    order = np.argsort(distances)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    for value in sorted(set(labels.tolist()), key=str):
        chosen = np.flatnonzero(labels[order] == value)
        ax.scatter(chosen, distances[order][chosen], s=14, label=str(value))
    ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("gallery faces, sorted by distance")
    ax.set_ylabel(f"{metric} distance to the query")
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax
