"""Box annotations: CVAT for video 1.1 (tracks), CVAT for images 1.1, MOT text.

The dataclasses below are the seam between the simulator, real CVAT exports
and validation; the formats are read and written by :mod:`crowdkit.crowd.cvat`
and :mod:`crowdkit.crowd.mot` (:func:`crowdkit.crowd.annotation_files.read_annotations`
reads either).

Frame numbers are kept as the file states them: CVAT counts video frames from
0 (a task that starts at frame 10 with ``step=3`` names frames 10, 13, 16, …);
MOT counts from 1 and is shifted to 0 on reading so both line up with
:func:`crowdkit.engine.video.iter_frames`.

CVAT for video stores *keyframes*. Between two keyframes CVAT interpolates a
box linearly (coordinates only; ``occluded`` and attributes come from the
earlier keyframe); a box persists after its last keyframe to the end of the
task unless that keyframe says ``outside="1"``; nothing is drawn between an
``outside`` keyframe and the next one. :func:`boxes_in_frame` and
:func:`visible_boxes` apply exactly these rules.

Example::

    ann = read_cvat("annotations.xml")
    for track, box in boxes_in_frame(ann, 120):
        print(track.attributes.get("identity"), box.x1, box.y1, box.x2, box.y2)
"""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from crowdkit.common.exceptions import AnnotationError


@dataclass(frozen=True)
class Box:
    """One annotated box in one frame, in pixels (x1, y1 top-left; x2, y2 bottom-right).

    ``attributes`` holds only what differs from the track's own attributes;
    the effective attributes of a box are ``{**track.attributes, **box.attributes}``.
    Readers put an attribute on the track when every box of it has the same value.
    """

    frame: int
    x1: float
    y1: float
    x2: float
    y2: float
    outside: bool = False
    occluded: bool = False
    keyframe: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True)
class Track:
    """One object followed across frames (CVAT ``<track>``); ``attributes`` holds e.g. ``identity``.

    ``boxes`` are sorted by frame (readers guarantee it).
    """

    id: int
    label: str
    boxes: tuple[Box, ...]
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> str | None:
        return self.attributes.get("identity")


@dataclass(frozen=True)
class Annotations:
    """A whole annotation file. For CVAT for images, each image is a frame and boxes form one-box tracks.

    ``frame_count`` is the number of frames the task declares (CVAT ``<size>``),
    counted on the grid ``start_frame, start_frame + frame_step, …``.
    ``mode`` is ``"interpolation"`` for tracks (boxes persist and are
    interpolated between keyframes) or ``"annotation"`` (a box exists only in
    the frame that lists it: CVAT for images, MOT).
    """

    tracks: tuple[Track, ...]
    frame_count: int
    width: int
    height: int
    labels: tuple[str, ...] = ("face",)
    source: str = ""
    frame_names: Mapping[int, str] = field(default_factory=dict)
    start_frame: int = 0
    frame_step: int = 1
    mode: str = "interpolation"
    format: str = "cvat-video-1.1"
    ignored_shapes: Mapping[str, int] = field(default_factory=dict)
    frame_sizes: Mapping[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def stop_frame(self) -> int:
        """Last frame of the task (inclusive); ``start_frame - 1`` for an empty task."""
        return self.start_frame + (self.frame_count - 1) * self.frame_step

    @property
    def frames(self) -> range:
        """The frames the task covers."""
        return range(self.start_frame, self.stop_frame + 1, self.frame_step)

    def identities(self) -> list[str]:
        return sorted({t.identity for t in self.tracks if t.identity is not None})

    def tracks_of(self, identity: str) -> list[Track]:
        """Tracks whose ``identity`` attribute equals ``identity``."""
        return [t for t in self.tracks if t.identity == identity]


# --------------------------------------------------------------------------- visible boxes per frame


def _interpolate(a: Box, b: Box, frame: int) -> Box:
    t = (frame - a.frame) / (b.frame - a.frame)
    coords = [pa + (pb - pa) * t for pa, pb in zip(a.xyxy, b.xyxy)]
    return replace(a, frame=frame, x1=coords[0], y1=coords[1], x2=coords[2], y2=coords[3], keyframe=False)


def box_at(track: Track, frame: int, *, last_frame: int, mode: str = "interpolation") -> Box | None:
    """The track's visible box in ``frame`` (interpolated between keyframes), or ``None``.

    ``last_frame`` is the task's last frame: a box persists after its last
    keyframe up to it (unless that keyframe is ``outside``). With
    ``mode="annotation"`` only a box listed for exactly ``frame`` counts.
    """
    frames = [b.frame for b in track.boxes]
    i = bisect.bisect_right(frames, frame) - 1
    if i < 0:
        return None
    box = track.boxes[i]
    if box.frame == frame:
        return None if box.outside else box
    if mode != "interpolation" or box.outside:
        return None
    if i + 1 < len(track.boxes):
        return _interpolate(box, track.boxes[i + 1], frame)
    if frame <= last_frame:
        return replace(box, frame=frame, keyframe=False)
    return None


def _last_frame(ann: Annotations) -> int:
    if ann.frame_count > 0:
        return ann.stop_frame
    return max((b.frame for t in ann.tracks for b in t.boxes), default=-1)


def boxes_in_frame(ann: Annotations, frame: int) -> list[tuple[Track, Box]]:
    """The visible (not ``outside``) boxes in ``frame``, one per track, interpolated as CVAT does."""
    last = _last_frame(ann)
    found = []
    for track in ann.tracks:
        box = box_at(track, frame, last_frame=last, mode=ann.mode)
        if box is not None:
            found.append((track, box))
    return found


def visible_boxes(ann: Annotations, frames: Iterable[int] | None = None) -> dict[int, list[tuple[Track, Box]]]:
    """``boxes_in_frame`` for many frames at once: frame → visible (track, box) pairs.

    ``frames`` defaults to every frame of the task (``ann.frames``, or the
    frames boxes name if the task declares none). Frames without boxes are
    left out of the result.
    """
    if frames is None:
        frames = ann.frames if ann.frame_count > 0 else sorted({b.frame for t in ann.tracks for b in t.boxes})
    frames = sorted(set(frames))
    last = _last_frame(ann)
    result: dict[int, list[tuple[Track, Box]]] = {}
    for track in ann.tracks:
        keys = [b.frame for b in track.boxes]
        if not keys:
            continue
        lo = bisect.bisect_left(frames, keys[0])
        for frame in frames[lo:]:
            if frame > keys[-1] and (ann.mode != "interpolation" or track.boxes[-1].outside or frame > last):
                break
            box = box_at(track, frame, last_frame=last, mode=ann.mode)
            if box is not None:
                result.setdefault(frame, []).append((track, box))
    return dict(sorted(result.items()))

# --------------------------------------------------------------------------- checks and summaries


def validate_against_video(ann: Annotations, frame_count: int) -> None:
    """Raise :class:`AnnotationError` if ``ann`` names a frame the video (``frame_count`` frames) lacks."""
    last_box = max((b.frame for t in ann.tracks for b in t.boxes), default=-1)
    if last_box >= frame_count:
        raise AnnotationError(
            f"{ann.source or 'annotations'}: boxes name frame {last_box} but the video has {frame_count} frames "
            f"(0..{frame_count - 1}); are these the annotations of another video, or a trimmed copy?")
    if ann.frame_count > 0 and ann.stop_frame >= frame_count:
        raise AnnotationError(
            f"{ann.source or 'annotations'}: the task declares frames {ann.start_frame}..{ann.stop_frame} but the "
            f"video has {frame_count} frames; are these the annotations of another video?")


def summarize(ann: Annotations) -> dict:
    """Counts for a person to check a file: tracks, frames, boxes, labels, identities."""
    visible = visible_boxes(ann)
    per_label_boxes = Counter(t.label for t in ann.tracks for _ in t.boxes)
    per_label_tracks = Counter(t.label for t in ann.tracks)
    return {
        "source": ann.source,
        "format": ann.format,
        "width": ann.width,
        "height": ann.height,
        "frames": ann.frame_count,
        "start_frame": ann.start_frame,
        "frame_step": ann.frame_step,
        "annotated_frames": len(visible),
        "tracks": len(ann.tracks),
        "boxes": sum(len(t.boxes) for t in ann.tracks),
        "keyframes": sum(b.keyframe for t in ann.tracks for b in t.boxes),
        "visible_boxes": sum(len(v) for v in visible.values()),
        "occluded_boxes": sum(b.occluded for v in visible.values() for _, b in v),
        "labels": list(ann.labels),
        "tracks_per_label": dict(sorted(per_label_tracks.items())),
        "boxes_per_label": dict(sorted(per_label_boxes.items())),
        "identities": ann.identities(),
        "ignored_shapes": dict(sorted(ann.ignored_shapes.items())),
    }
