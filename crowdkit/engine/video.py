"""Video frames, read straight from the file: nothing is written to disk.

    >>> from crowdkit.engine.video import video_info, iter_frames
    >>> info = video_info("clip.mp4")                          # doctest: +SKIP
    >>> for frame in iter_frames("clip.mp4", stride=5):       # doctest: +SKIP
    ...     faces = detector.detect(frame.image)

Frames that are skipped (``stride``, ``start``) are only grabbed, not
decoded to pixels, which is several times cheaper. A file that is missing,
empty, not a video, or truncated raises
:class:`~crowdkit.common.exceptions.VideoReadError` naming the file and what to check;
a video never silently yields no frames.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from crowdkit.common.exceptions import ConfigError, VideoReadError

logger = logging.getLogger(__name__)

#: Frames a stream may end short of its header's frame count before it counts as truncated
#: (containers often count one or two frames that cannot be decoded).
FRAME_COUNT_SLACK = 2

_CHECK = ("check that the file is a complete, playable video (e.g. `ffprobe FILE`) "
          "in a format OpenCV's FFmpeg backend reads (MP4/H.264, AVI, MKV, WebM)")


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says.

    Attributes
    ----------
    frame_count : int
        Frames in the stream (from the container; ≥ 1).
    fps : float
        Frames per second (0.0 when the container does not say).
    width, height : int
        Frame size in pixels.
    """

    frame_count: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Length in seconds (NaN when fps is unknown)."""
        return self.frame_count / self.fps if self.fps > 0 else float("nan")


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes
    ----------
    index : int
        0-based frame number in the video.
    timestamp : float
        ``index / fps`` in seconds (NaN when fps is unknown).
    image : ndarray, uint8, shape (H, W, 3)
        RGB pixels.
    """

    index: int
    timestamp: float
    image: np.ndarray = field(repr=False, compare=False)


def _open(path: str | os.PathLike) -> tuple[Any, VideoInfo, Path]:
    import cv2

    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"video {path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise VideoReadError(f"video {path} is empty (0 bytes); {_CHECK}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoReadError(f"OpenCV cannot open {path} as a video; {_CHECK}")
    info = VideoInfo(
        frame_count=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
        fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    if info.frame_count <= 0 or info.width <= 0 or info.height <= 0:
        capture.release()
        raise VideoReadError(
            f"video {path} reports {info.frame_count} frames of {info.width}×{info.height} px; {_CHECK}"
        )
    return capture, info, path


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame count, fps and size of the video at ``path``, checked by decoding its first frame.

    Raises
    ------
    VideoReadError
        The file is missing, empty, not a video, reports no frames, or its first frame cannot be decoded.
    """
    capture, info, path = _open(path)
    try:
        ok, _ = capture.read()
        if not ok:
            raise VideoReadError(f"cannot decode the first frame of {path}; {_CHECK}")
    finally:
        capture.release()
    return info


def _check_range(stride: Any, start: Any, stop: Any) -> None:
    """ConfigError unless stride ≥ 1, start ≥ 0 and stop is None or ≥ 0 (all integers)."""
    for name, value, minimum in (("stride", stride, 1), ("start", start, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ConfigError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    if stop is not None and (isinstance(stop, bool) or not isinstance(stop, (int, np.integer)) or stop < 0):
        raise ConfigError(f"stop must be None or an integer ≥ 0, got {stop!r}")


def _check_stream_end(path: Path, index: int, info: VideoInfo) -> None:
    """The stream ended at frame ``index``: fine within :data:`FRAME_COUNT_SLACK` of the header's count, else an error."""
    if index == 0:
        raise VideoReadError(f"cannot decode the first frame of {path}; {_CHECK}")
    missing = info.frame_count - index
    if missing > FRAME_COUNT_SLACK:
        raise VideoReadError(
            f"video {path} ends at frame {index} but its header promises {info.frame_count} "
            f"frames: the file is truncated or corrupt; {_CHECK}"
        )
    logger.debug("%s: stream ended at frame %d of %d announced", path, index, info.frame_count)


def iter_frames(path: str | os.PathLike, *, stride: int = 1, start: int = 0,
                stop: int | None = None) -> Iterator[Frame]:
    """Yield frames ``start, start + stride, …`` (before ``stop``) of the video at ``path`` as RGB.

    Parameters
    ----------
    path : path-like
        The video file.
    stride : int
        Keep every ``stride``-th frame (default 1: all).
    start : int
        First frame index (default 0).
    stop : int or None
        Stop before this frame index (default: the end of the video).

    Yields
    ------
    Frame
        ``index``, ``timestamp`` (seconds) and ``image`` (uint8, (H, W, 3), RGB).

    Raises
    ------
    VideoReadError
        The file is missing, empty or not a video; its first frame cannot be
        decoded; or the stream ends more than :data:`FRAME_COUNT_SLACK` frames
        before the frame count its header promises (a truncated file) — raised
        after the frames that could be read, so consumers writing results
        atomically leave none behind.
    """
    import cv2

    _check_range(stride, start, stop)
    capture, info, path = _open(path)
    try:
        end = info.frame_count if stop is None else min(int(stop), info.frame_count)
        index = 0
        while index < end:
            wanted = index >= start and (index - start) % stride == 0
            ok = capture.grab()
            image = None
            if ok and wanted:
                ok, image = capture.retrieve()
                ok = ok and image is not None
            if not ok:
                _check_stream_end(path, index, info)
                return
            if wanted:
                timestamp = index / info.fps if info.fps > 0 else float("nan")
                yield Frame(index, timestamp, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()
