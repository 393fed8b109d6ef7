"""Box annotations: CVAT for video 1.1 (tracks), CVAT for images 1.1, MOT text.

The dataclasses below are the seam between the simulator, real CVAT exports
and validation. Readers and writers for each format live in this module too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


@dataclass(frozen=True)
class Box:
    """One annotated box in one frame, in pixels (x1, y1 top-left; x2, y2 bottom-right)."""

    frame: int
    x1: float
    y1: float
    x2: float
    y2: float
    outside: bool = False
    occluded: bool = False
    keyframe: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Track:
    """One object followed across frames (CVAT ``<track>``); ``attributes`` holds e.g. ``identity``."""

    id: int
    label: str
    boxes: tuple[Box, ...]
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Annotations:
    """A whole annotation file. For CVAT for images, each image is a frame and boxes form one-box tracks."""

    tracks: tuple[Track, ...]
    frame_count: int
    width: int
    height: int
    labels: tuple[str, ...] = ("face",)
    source: str = ""
    frame_names: Mapping[int, str] = field(default_factory=dict)
