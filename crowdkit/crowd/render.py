"""Drawing a scene's frames into its video, and the exact ground-truth box of every face.

:func:`render_video` draws each frame (the sand seen by the drone, then every
person far to near), records each face's box with its ``outside``/``occluded``
flags and visibility, degrades the frame (defocus, motion blur, optional JPEG)
and encodes it with OpenCV's MPEG-4 Part 2 writer (``mp4v``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from crowdkit.common.io import show_progress
from crowdkit.common.exceptions import VideoWriteError
from crowdkit.crowd.annotations import Box
from crowdkit.crowd.costume import SPRITE_FACE_PX, Costume, Sprite, place_sprite, sand_texture
from crowdkit.crowd.motion import Camera, Motion, face_height_schedule, plan_cameras, to_find
from crowdkit.crowd.scene import FACE_M, ScenePerson, SceneSpec

#: Metres of ground per pixel of the sand texture.
GROUND_M_PER_PX = 0.01


def _face_box(oval: tuple[float, float, float, float], anchor: tuple[float, float], centre: tuple[float, float],
              scale: float, roll_deg: float) -> tuple[float, float, float, float]:
    """Bounding box, in the frame, of the sprite's face oval after scaling and rolling."""
    ox, oy, hw, hh = oval
    r = math.radians(roll_deg)
    c, s = math.cos(r), math.sin(r)
    px, py = (ox - anchor[0]) * scale, (oy - anchor[1]) * scale
    fx, fy = centre[0] + c * px + s * py, centre[1] - s * px + c * py
    half_w = math.hypot(hw * scale * c, hh * scale * s)
    half_h = math.hypot(hw * scale * s, hh * scale * c)
    return fx - half_w, fy - half_h, fx + half_w, fy + half_h


def _motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    import cv2

    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = (size - 1) / 2
    dx, dy = math.cos(math.radians(angle_deg)) * length / 2, math.sin(math.radians(angle_deg)) * length / 2
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1,
             cv2.LINE_AA)
    return kernel / kernel.sum()


def _degrade(frame: np.ndarray, far: float, angle: float, spec: SceneSpec) -> np.ndarray:
    import cv2

    sigma = spec.defocus_sigma * far
    if sigma >= 0.3:
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    length = spec.motion_blur_px * far
    if length >= 1.5:
        frame = cv2.filter2D(frame, -1, _motion_kernel(length, angle))
    if spec.jpeg_quality is not None:
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(spec.jpeg_quality)])
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return frame


class _Heads:
    """Head sprites per person, photo and 5° yaw step, drawn on first use."""

    def __init__(self, costume: Costume, photos: list[list[np.ndarray]], masked: bool) -> None:
        self.costume, self.photos, self.masked = costume, photos, masked
        self._sprites: dict[tuple[int, int, int], Sprite] = {}

    def get(self, person: int, photo: int, yaw_bin: int) -> Sprite:
        key = (person, photo, yaw_bin)
        if key not in self._sprites:
            self._sprites[key] = self.costume.head(self.photos[person][photo], masked=self.masked,
                                                   yaw_deg=float(yaw_bin))
        return self._sprites[key]


@dataclass(frozen=True)
class _Placed:
    """Where everyone stands in one frame: anchor pixel (u, v) and sprite scale per person."""

    u: np.ndarray
    v: np.ndarray
    scale: np.ndarray


def _draw_frame(canvas_size: tuple[int, int], camera: Camera, texture: np.ndarray, costume: Costume, heads: _Heads,
                motion: Motion, k: int, owner: np.ndarray) -> tuple[np.ndarray, _Placed]:
    """Frame ``k`` in RGB: the ground, then every body and head from far to near; ``owner`` marks who is on top."""
    import cv2

    w, h = canvas_size
    half = np.diag([0.5, 0.5, 1.0])
    # The ground is smooth: render it at half size and enlarge (a perspective warp is the slowest step).
    ground = cv2.warpPerspective(texture, half @ camera.ground_homography(GROUND_M_PER_PX), (w // 2, h // 2),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    canvas = cv2.resize(ground, (w, h), interpolation=cv2.INTER_LINEAR)
    owner.fill(-1)
    u, v, scale = camera.project(motion.x[k], motion.y[k], motion.z[k])
    sprite_scale = scale * FACE_M / SPRITE_FACE_PX
    for i in np.argsort(-motion.z[k], kind="stable"):  # far to near
        place_sprite(canvas, owner, costume.body, (u[i], v[i]), sprite_scale[i], 0.0, i)
        yaw = float(motion.yaw[k, i])
        if abs(yaw) >= 90:
            sprite = costume.back
        else:
            sprite = heads.get(i, int(motion.photo[k, i]), int(round(yaw / 5.0)) * 5)
        place_sprite(canvas, owner, sprite, (u[i], v[i]), sprite_scale[i], float(motion.roll[k, i]), i)
    return canvas, _Placed(u, v, sprite_scale)


def _ground_truth(i: int, k: int, box: tuple[float, float, float, float], yaw: float, owner: np.ndarray,
                  canvas_size: tuple[int, int]) -> tuple[Box, float | None]:
    """Person ``i``'s annotated box in frame ``k`` (clipped, with ``outside``, ``occluded`` and ``visibility``)
    and its visible height before rounding (None when outside)."""
    w, h = canvas_size
    x1, y1, x2, y2 = box
    area = (x2 - x1) * (y2 - y1)
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
    outside = inside < 0.5 * area or abs(yaw) >= 90
    occluded = not outside and 45 < abs(yaw) < 90
    covered = 1.0
    height = None
    if not outside:
        patch = owner[int(cy1):int(math.ceil(cy2)), int(cx1):int(math.ceil(cx2))]
        covered = float(np.mean(patch != i)) if patch.size else 0.0
        occluded = occluded or covered > 0.3
        x1, y1, x2, y2 = cx1, cy1, cx2, cy2
        height = y2 - y1
    box = Box(k, round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2), outside=outside, occluded=occluded,
               attributes={"visibility": f"{1.0 - covered:.2f}"})
    return box, height


def _annotate_frame(k: int, costume: Costume, motion: Motion, placed: _Placed, owner: np.ndarray,
                    canvas_size: tuple[int, int]) -> list[tuple[Box, float | None]]:
    """Every person's box in frame ``k`` (in person order) and its visible height (None when outside)."""
    faces = []
    for i in range(len(placed.u)):
        yaw = float(motion.yaw[k, i])
        yaw_bin = int(round(yaw / 5.0)) * 5 if abs(yaw) < 90 else 0
        box = _face_box(costume.face_oval(yaw_bin), costume.head_anchor, (placed.u[i], placed.v[i]),
                        placed.scale[i], float(motion.roll[k, i]))
        faces.append((i, box, yaw))
    return [_ground_truth(i, k, box, yaw, owner, canvas_size) for i, box, yaw in faces]


def _open_writer(video_path: Path, spec: SceneSpec):
    import cv2

    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), float(spec.fps),
                             (spec.width, spec.height))
    if not writer.isOpened():
        raise VideoWriteError(f"OpenCV could not open an MPEG-4 ('mp4v') writer for {video_path}; "
                              "check that opencv-python-headless is installed with its FFmpeg backend")
    return writer


def _statistics(spec: SceneSpec, visible_heights: Sequence[float]) -> dict[str, Any]:
    """How many boxes are visible and how tall the faces are, for the scene's manifest."""
    heights = np.array(visible_heights) if visible_heights else np.zeros(1)
    schedule = face_height_schedule(spec)
    return {"visible_boxes": len(visible_heights),
            "face_height_px": {"min": round(float(heights.min()), 2), "median": round(float(np.median(heights)), 2),
                               "max": round(float(heights.max()), 2)},
            "crowd_centre_face_height_px": {"first": round(float(schedule[0]), 2),
                                            "last": round(float(schedule[-1]), 2)}}


def render_video(spec: SceneSpec, people: list[ScenePerson], motion: Motion, rng: np.random.Generator,
                 video_path: Path, *, progress: bool = True) -> tuple[list[list[Box]], dict[str, Any]]:
    """Draw every frame into ``video_path``; return each person's boxes (one per frame) and face-height statistics.

    ``rng`` continues the scene's generator (after :func:`~crowdkit.crowd.scene.cast_scene` and
    :func:`~crowdkit.crowd.motion.plan_motion`): it draws the camera shake, the sand and the blur direction.
    """
    import cv2
    from tqdm.auto import tqdm

    from crowdkit.common.io import read_image

    costume = Costume(face_opening=spec.face_opening)
    heads = _Heads(costume, [[read_image(p) for p in person.photos] for person in people], spec.masked)
    subject = next(i for i, p in enumerate(people) if p.role == "subject")
    followed = to_find(people) if spec.subjects_together else np.array([subject])
    cameras, far = plan_cameras(spec, motion, followed, rng)
    texture = sand_texture(rng)
    blur_angle = rng.uniform(0, 180) + np.cumsum(rng.normal(0, 2.0, spec.n_frames))
    size = (spec.width, spec.height)
    writer = _open_writer(video_path, spec)
    boxes: list[list[Box]] = [[] for _ in people]
    visible_heights: list[float] = []
    owner = np.empty((spec.height, spec.width), np.int16)
    try:
        for k in tqdm(range(spec.n_frames), desc=f"simulate {spec.member}/{spec.challenge}", unit="frame",
                      leave=False, disable=not show_progress(progress)):
            canvas, placed = _draw_frame(size, cameras[k], texture, costume, heads, motion, k, owner)
            for i, (box, height) in enumerate(_annotate_frame(k, costume, motion, placed, owner, size)):
                boxes[i].append(box)
                if height is not None:
                    visible_heights.append(height)
            frame = cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)
            writer.write(_degrade(frame, float(far[k]), float(blur_angle[k]), spec))
    finally:
        writer.release()
    return boxes, _statistics(spec, visible_heights)
