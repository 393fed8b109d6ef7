"""How the crowd moves and how the drone films it, frame by frame.

:func:`plan_motion` gives every person's position, head yaw and roll and the
photo shown in each frame (:class:`Motion`); :func:`plan_cameras` flies the drone
so the crowd-centre face grows from ``min_face_height`` to ``max_face_height``
pixels (:func:`face_height_schedule`) while it homes in on the people to find.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crowdkit.crowd.scene import FACE_CENTRE_Y, FACE_M, ScenePerson, SceneSpec

# --------------------------------------------------------------------------- motion


@dataclass(frozen=True)
class Motion:
    """Per-frame world state, arrays of shape (n_frames, n_people)."""

    x: np.ndarray      # lateral position, m
    z: np.ndarray      # depth, m (larger is farther from the camera)
    y: np.ndarray      # face-centre height, m
    yaw: np.ndarray    # head yaw, degrees (0 faces the camera, ±180 shows the back)
    roll: np.ndarray   # in-plane head rotation, degrees
    photo: np.ndarray  # index into the person's photos
    crowd: np.ndarray  # bool (n_people,): members of the crowd (not intruders)


def _formation(n: int, dx: float, dz: float, stagger: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Rows shifted by ``stagger`` every other row, centred laterally, shuffled: (n, 2) of (x, z)."""
    per_row = max(2, int(math.ceil(math.sqrt(n * 1.6))))
    points = []
    for i in range(n):
        row, col = divmod(i, per_row)
        in_row = min(per_row, n - row * per_row)
        x = (col - (in_row - 1) / 2) * dx + (stagger if row % 2 else 0.0)
        points.append((x, row * dz))
    points = np.array(points, float) + rng.uniform(-jitter, jitter, size=(n, 2))
    return points[rng.permutation(n)]


#: In a compact crowd, how much more a row back counts than a step sideways when the people to find are placed.
ROW_WEIGHT = 3.0


def _gather(points: np.ndarray, wanted: np.ndarray, rng: np.random.Generator, *, front_row: bool) -> np.ndarray:
    """The same places, dealt again so the people ``wanted`` take the ones nearest where the drone aims (in random
    order among themselves): the crowd's centre or, where heads hide the faces behind them (``front_row``),
    the middle of its front row."""
    k = int(wanted.sum())
    anchor = [points[:, 0].mean(), points[:, 1].min() if front_row else points[:, 1].mean()]
    offset = (points - anchor) * [1.0, ROW_WEIGHT if front_row else 1.0]
    nearest = np.argsort(np.linalg.norm(offset, axis=1), kind="stable")
    chosen, rest = nearest[:k][rng.permutation(k)], np.sort(nearest[k:])
    placed = np.empty_like(points)
    placed[wanted] = points[chosen]
    placed[~wanted] = points[rest]
    return placed


def to_find(people: list[ScenePerson]) -> np.ndarray:
    """bool (n_people,): the people to find (the subject and the co-subjects)."""
    return np.array([p.role in ("subject", "member") for p in people])


def plan_motion(spec: SceneSpec, people: list[ScenePerson], rng: np.random.Generator) -> Motion:
    n, frames = len(people), spec.n_frames
    t = np.arange(frames, dtype=float)[:, None] / spec.fps  # seconds, (T, 1)
    crowd = np.array([p.role != "intruder" for p in people])
    n_crowd = int(crowd.sum())
    family = spec.family
    # (lateral spacing, row spacing, row stagger, jitter) in metres. The compact crowd's
    # rows are barely staggered, so heads hide parts of the faces behind them.
    spacing = {"compact": (0.46, 0.38, 0.10, 0.10)}.get(family, (1.0, 1.3, 0.5, 0.15))
    start = np.zeros((n, 2))
    start[crowd] = _formation(n_crowd, *spacing, rng)
    if spec.subjects_together:
        start[crowd] = _gather(start[crowd], to_find(people)[crowd], rng, front_row=family == "compact")
    phase = rng.uniform(0, 2 * math.pi, size=(n, 3))
    speed = {"compact": 0.7, "random": 0.3}.get(family, 1.0)
    x = np.repeat(start[None, :, 0], frames, axis=0) + 0.03 * np.sin(2 * math.pi * 0.9 * t + phase[:, 0])
    z = np.repeat(start[None, :, 1], frames, axis=0) - speed * t
    y = FACE_CENTRE_Y + rng.uniform(-0.04, 0.04, size=n) + 0.015 * np.sin(2 * math.pi * 1.8 * t + phase[:, 1])
    yaw = np.zeros((frames, n))

    if family == "random":
        dt = 1.0 / spec.fps
        velocity = rng.normal(0, 0.4, size=(n, 2))
        position = start.copy()
        home = start.copy()
        for k in range(frames):
            # Each person wanders around their place in the crowd (about ±0.7 m) at up to ~1 m/s.
            velocity += -0.8 * velocity * dt - 0.5 * (position - home) * dt + rng.normal(0, 0.6 * math.sqrt(dt), (n, 2))
            position = position + velocity * dt
            x[k], z[k] = position[:, 0], position[:, 1] - speed * k * dt
        yaw = _turns(frames, n, spec.fps, rng)
    elif family == "intruder":
        width = float(np.ptp(start[crowd, 0])) if n_crowd > 1 else 2.0
        depth = float(np.ptp(start[crowd, 1])) if n_crowd > 1 else 1.0
        for i in np.flatnonzero(~crowd):
            direction = rng.choice([-1.0, 1.0])
            walk = rng.uniform(1.3, 1.8)
            t0 = rng.uniform(0, 0.6) * frames / spec.fps
            lane = rng.uniform(0.0, depth) + spacing[1] / 2
            x[:, i] = -direction * (width / 2 + 3.0) + direction * walk * (t[:, 0] - t0)
            z[:, i] = lane - speed * t[:, 0]
        subject = next(i for i, p in enumerate(people) if p.role == "subject")
        period = frames / spec.fps
        x[:, subject] += 0.45 * width * np.sin(2 * math.pi * t[:, 0] / period + phase[subject, 2])
        z[:, subject] += 0.5 * depth * np.sin(2 * math.pi * t[:, 0] / (0.7 * period))

    roll_amplitude = spec.max_roll_deg * rng.uniform(0.3, 1.0, size=n)
    roll_period = rng.uniform(2.0, 5.0, size=n)
    roll = roll_amplitude * np.sin(2 * math.pi * t / roll_period + phase[:, 2])
    counts = np.array([len(p.photos) for p in people])
    offset = rng.integers(0, spec.photo_period, size=n)
    first = rng.integers(0, counts)
    photo = (first + (np.arange(frames)[:, None] + offset) // spec.photo_period) % counts
    return Motion(x, z, y, yaw, roll, photo.astype(int), crowd)


def _turns(frames: int, n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Head yaw for the ``random`` challenge: glances to the side (±40°) and full turns (180°)."""
    yaw = np.zeros((frames, n))
    ramp = max(2, int(round(0.4 * fps)))
    for i in range(n):
        k = int(rng.integers(0, int(2 * fps)))
        while k < frames:
            target = rng.choice([-40.0, 40.0]) if rng.random() < 0.5 else rng.choice([-180.0, 180.0])
            hold = int(rng.uniform(0.8, 2.5) * fps)
            profile = np.concatenate([np.linspace(0, target, ramp), np.full(hold, target), np.linspace(target, 0, ramp)])
            stop = min(frames, k + len(profile))
            yaw[k:stop, i] = profile[:stop - k]
            k = stop + int(rng.uniform(1.0, 4.0) * fps)
    return yaw


# --------------------------------------------------------------------------- camera


ELEVATION_DEG = 20.0
FOCAL_PX_PER_WIDTH = 10.0  # focal length = 10 × frame width: a telephoto drone camera


def face_height_schedule(spec: SceneSpec) -> np.ndarray:
    """Crowd-centre face height per frame: log-linear from min to max with eased ends."""
    p = np.linspace(0.0, 1.0, spec.n_frames)
    e = np.clip((p - 0.08) / 0.84, 0.0, 1.0)
    e = e * e * (3 - 2 * e)
    return np.exp(np.log(spec.min_face_height) + e * (np.log(spec.max_face_height) - np.log(spec.min_face_height)))


@dataclass(frozen=True)
class Camera:
    focal: float
    position: np.ndarray  # (3,) x, y (up), z
    theta: float          # pitch down, radians
    centre: tuple[float, float]  # principal point incl. shake

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points → image (u, v) and the scale (px per m) at each point."""
        dx, dy, dz = x - self.position[0], y - self.position[1], z - self.position[2]
        s, c = math.sin(self.theta), math.cos(self.theta)
        up = dy * c + dz * s
        forward = -dy * s + dz * c
        scale = self.focal / np.maximum(forward, 1e-3)
        return self.centre[0] + dx * scale, self.centre[1] - up * scale, scale

    def ground_homography(self, metres_per_px: float) -> np.ndarray:
        """3×3 map from sand-texture pixels (ground plane, x and z) to image pixels."""
        s, c = math.sin(self.theta), math.cos(self.theta)
        cx, cy, cz = self.position
        u0, v0, f = self.centre[0], self.centre[1], self.focal
        w = np.array([0.0, c, cy * s - cz * c])  # forward distance
        xr = np.array([1.0, 0.0, -cx])
        up = np.array([0.0, s, -cy * c - cz * s])
        m = np.stack([f * xr + u0 * w, -f * up + v0 * w, w])
        return m @ np.diag([metres_per_px, metres_per_px, 1.0])


def _smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along a 1-D series (edges padded by repetition)."""
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return np.convolve(np.pad(values, radius, mode="edge"), kernel / kernel.sum(), mode="valid")


def plan_cameras(spec: SceneSpec, motion: Motion, followed: np.ndarray, rng: np.random.Generator
                 ) -> tuple[list[Camera], np.ndarray]:
    """One camera per frame, and the 'far' factor per frame (1 at the far end, 0 at the near end).

    As the drone nears, it homes in on the people ``followed`` (indices or a bool mask: the subject, or with
    ``subjects_together`` every person to find).
    """
    heights = face_height_schedule(spec)
    far = (np.log(spec.max_face_height) - np.log(heights)) / (np.log(spec.max_face_height) - np.log(spec.min_face_height))
    focal = FOCAL_PX_PER_WIDTH * spec.width
    theta = math.radians(ELEVATION_DEG)
    crowd = motion.crowd
    progress = np.linspace(0, 1, spec.n_frames)
    ramp = np.clip((progress - 0.15) / 0.6, 0, 1)
    follow = 0.85 * ramp * ramp * (3 - 2 * ramp)  # the operator homes in on the people to find as the drone nears
    target_x = (1 - follow) * motion.x[:, crowd].mean(axis=1) + follow * motion.x[:, followed].mean(axis=1)
    target_x = _smooth(target_x, 3.0)  # a drone operator does not jerk the camera
    target_z = (1 - follow) * motion.z[:, crowd].mean(axis=1) + follow * motion.z[:, followed].mean(axis=1)
    shake = np.stack([_smooth(rng.normal(0, 1, spec.n_frames), 4.0) for _ in range(2)], axis=1)
    shake = shake / max(float(np.abs(shake).max()), 1e-6) * spec.shake_px * (0.3 + 0.7 * far[:, None])
    cameras = []
    for k in range(spec.n_frames):
        distance = focal * FACE_M / heights[k]
        target = np.array([target_x[k], FACE_CENTRE_Y, target_z[k]])
        position = target - distance * np.array([0.0, -math.sin(theta), math.cos(theta)])
        centre = (spec.width / 2 + shake[k, 0], spec.height / 2 + shake[k, 1])
        cameras.append(Camera(focal, position, theta, centre))
    return cameras, far

