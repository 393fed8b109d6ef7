"""Simulated drone footage of a uniform-appearance crowd, built from real LFW faces.

The crowd study's own videos and CVAT exports are private. This module makes
the same kind of material from public photos: a video, a CVAT for video 1.1
annotation file with exact ground truth, and query photos of one person to
be found::

    >>> from crowdkit.crowd.simulate import SceneSpec, generate_scene
    >>> spec = SceneSpec(member="alice", challenge="compact", seed=1)   # doctest: +SKIP
    >>> scene = generate_scene(spec, "scenes/alice-compact-1")          # doctest: +SKIP
    >>> scene.subject, sorted(scene.query_photos)                        # doctest: +SKIP
    ('Tony_Blair', ['front', 'side'])

What a scene holds
------------------
* **People.** Every crowd member is a real LFW identity (deep-funneled
  photos). The *subject* is an identity with at least 8 photos, chosen from
  the member's name and the seed, so each team member looks for someone else.
  Two of the subject's photos are held out as query photos and never appear
  in the video: the most frontal one (``query_front.jpg``, the photo with the
  highest left-right mirror symmetry of the face) and the most turned one
  (``query_side.jpg``, see :func:`choose_query_photos`). The mask challenges add ``query_masked.jpg``: the
  frontal photo with the crowd's mask drawn on it.
* **Uniform appearance.** Everyone wears the same white robe and the same
  white headdress (a ghutra-like hood with a dark cord) that covers hair and
  ears. The face photo is cropped to an oval from the chin to mid-forehead and
  feathered into the headdress opening; ``face_opening`` scales how much of
  the face the opening shows. Pose and expression change because each person
  cycles through their own photos (every ``photo_period`` frames) and rolls
  the head in-plane by up to ``max_roll_deg``.
* **A drone camera** looking down at 20° with a long focal length: its
  distance follows a schedule so that the crowd-centre face height goes from
  ``min_face_height`` to ``max_face_height`` pixels (log-linear with eased
  ends); near the end the drone also drifts toward the subject. Far frames
  get Gaussian defocus and motion blur (both fade to nothing when near) and a
  little shake; the video is compressed by the MPEG-4 Part 2 encoder
  (``mp4v``), optionally after a JPEG round trip per frame.
* **Challenges.** ``normal``: a loose crowd walks toward the camera.
  ``compact``: a tight staggered formation where heads cover the faces behind
  them. ``intruder``: extra people cross the crowd sideways while the subject
  wanders through it. ``random``: people mill around in random walks and turn
  their heads: a partial turn narrows the face; a full turn shows the back of
  the headdress. ``mask1``/``mask2``: the ``normal`` scene (identical video for
  the same member and seed) with everyone wearing the same light-blue mask
  over nose to chin; ``mask1`` queries with the unmasked photo, ``mask2`` with
  the masked one (both photos are written for both).

Ground truth
------------
One CVAT track per person, label ``face``, attribute ``identity`` (the LFW
name), a keyframe box in every frame around the visible face oval, from the
chin up to the edge of the headdress. Flags:

* ``outside`` when less than half of the face box lies inside the frame, or
  when the person has turned the back of the head to the camera (|yaw| ≥ 90°:
  there is no face to find, just as a human annotator would end the box);
* ``occluded`` when more than 30 % of the face box is covered by people in
  front (a face hidden completely stays ``occluded``, not ``outside``), or
  when the head is turned between 45° and 90°;
* a per-box attribute ``visibility``: the fraction of the face box not
  covered by people in front (``0.00`` for ``outside`` boxes), so validation
  can leave out faces nobody could see;
* boxes that are not ``outside`` are clipped to the frame.

Every output is written into a temporary folder that is renamed into place,
so an interrupted run never leaves half a scene, and the same spec always
gives byte-identical files (numpy ``Generator`` seeded from member, challenge
family and seed; OpenCV's MPEG-4 encoder is deterministic).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from crowdkit.common.exceptions import ConfigError, CrowdkitError, DataNotFoundError, VideoWriteError

log = logging.getLogger(__name__)

CHALLENGES = ("normal", "compact", "intruder", "random", "mask1", "mask2")


#: Face height in metres: the visible oval, chin to the edge of the headdress.
FACE_M = 0.17
#: Height of the face centre above the ground, in metres (varied ±4 cm per person).
FACE_CENTRE_Y = 1.62
#: Face-oval height in pixels in the full-resolution sprites (pyramid level 0).
SPRITE_FACE_PX = 128
#: The nominal visible face in a 250×250 deep-funneled LFW photo: centre x, chin y,
#: half-width and half-height of the oval (measured with MTCNN on 80 random photos:
#: eyes at y≈113, mouth corners at y≈160, chin at y≈190).
LFW_FACE = {"cx": 125.0, "chin": 190.0, "half_w": 42.0, "half_h": 54.0}
CLOTH_RGB = (238, 238, 233)
CORD_RGB = (28, 28, 30)
SHADOW_RGB = (96, 78, 66)
SKIN_RGB = (196, 152, 126)
MASK_RGB = (160, 200, 226)
_LEVELS = 5  # sprite pyramid: face heights 128, 64, 32, 16, 8 px


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class SceneSpec:
    """Everything that determines a scene; the same spec always gives the same files.

    Parameters
    ----------
    member : str
        Whose run this is; with ``seed`` it picks the subject and the crowd.
    challenge : str
        One of :data:`CHALLENGES`.
    seed : int
        Random seed.
    n_frames, width, height, fps
        Video size (width and height even) and rate.
    n_people : int or None
        Crowd size including the subject; ``None`` draws 12–20 from the seed.
    n_intruders : int or None
        People crossing the crowd (``intruder`` challenge only); ``None`` draws 2–4.
    face_opening : float
        How much of the face the headdress opening shows (1.0: chin to
        mid-forehead, cheek to cheek; 0.8 is tighter, 1.2 shows brow and temples).
    min_face_height, max_face_height : float
        Crowd-centre face height in pixels at the far and the near end of the clip.
    defocus_sigma : float
        Gaussian blur σ (px) at the far end, fading to 0 when near.
    motion_blur_px : float
        Motion-blur streak length (px) at the far end, fading to 0 when near.
    shake_px : float
        Camera shake amplitude in pixels.
    jpeg_quality : int or None
        If set, every frame goes through a JPEG round trip at this quality before encoding.
    photo_period : int
        Frames between changes of a person's photo (pose and expression).
    max_roll_deg : float
        Largest in-plane head rotation.
    photos_per_person : int
        Most photos of one person shown in the video.
    subject : str or None
        LFW name of the person to find; ``None`` chooses one from member and seed.
    """

    member: str
    challenge: str
    seed: int = 0
    n_frames: int = 300
    width: int = 960
    height: int = 540
    fps: float = 25.0
    n_people: int | None = None
    n_intruders: int | None = None
    face_opening: float = 1.0
    min_face_height: float = 16.0
    max_face_height: float = 120.0
    defocus_sigma: float = 1.2
    motion_blur_px: float = 5.0
    shake_px: float = 2.0
    jpeg_quality: int | None = None
    photo_period: int = 25
    max_roll_deg: float = 10.0
    photos_per_person: int = 5
    subject: str | None = None

    def __post_init__(self) -> None:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"SceneSpec: {what}")

        if not str(self.member).strip():
            raise bad("member must be a non-empty name")
        if self.challenge not in CHALLENGES:
            raise bad(f"unknown challenge {self.challenge!r}; choose one of {', '.join(CHALLENGES)}")
        if self.n_frames < 1:
            raise bad(f"n_frames must be ≥ 1, got {self.n_frames}")
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise bad(f"width and height must be even and ≥ 64, got {self.width}×{self.height}")
        if self.fps <= 0:
            raise bad(f"fps must be positive, got {self.fps}")
        if self.n_people is not None and not 2 <= self.n_people <= 60:
            raise bad(f"n_people must be in 2..60 (or None for 12–20), got {self.n_people}")
        if self.n_intruders is not None and not 0 <= self.n_intruders <= 20:
            raise bad(f"n_intruders must be in 0..20, got {self.n_intruders}")
        if not 0.6 <= self.face_opening <= 1.4:
            raise bad(f"face_opening must be in [0.6, 1.4], got {self.face_opening}")
        if not 4 <= self.min_face_height < self.max_face_height <= 400:
            raise bad(f"need 4 ≤ min_face_height < max_face_height ≤ 400, got "
                      f"{self.min_face_height}, {self.max_face_height}")
        if self.defocus_sigma < 0 or self.motion_blur_px < 0 or self.shake_px < 0:
            raise bad("defocus_sigma, motion_blur_px and shake_px must be ≥ 0")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise bad(f"jpeg_quality must be in 1..100 or None, got {self.jpeg_quality}")
        if self.photo_period < 1 or self.photos_per_person < 1:
            raise bad("photo_period and photos_per_person must be ≥ 1")
        if not 0 <= self.max_roll_deg <= 45:
            raise bad(f"max_roll_deg must be in [0, 45], got {self.max_roll_deg}")

    @property
    def family(self) -> str:
        """Scenes of one family share their video: ``mask1`` and ``mask2`` are both ``"mask"``."""
        return "mask" if self.challenge.startswith("mask") else self.challenge

    @property
    def masked(self) -> bool:
        return self.family == "mask"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SceneSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ScenePerson:
    """One person in a scene: CVAT track id, LFW identity, role and the photos shown."""

    track_id: int
    identity: str
    role: str  # "subject", "crowd" or "intruder"
    photos: tuple[Path, ...]


@dataclass(frozen=True)
class SceneResult:
    """Paths of a generated scene and what it contains."""

    video: Path
    annotations_xml: Path
    query_photos: dict[str, Path]
    subject: str
    spec: SceneSpec
    manifest: Path
    people: tuple[ScenePerson, ...] = field(default=())

    @property
    def folder(self) -> Path:
        return self.video.parent


# --------------------------------------------------------------------------- choosing people


def _stable_int(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def scene_rng(spec: SceneSpec) -> np.random.Generator:
    """The scene's random generator: a function of member, challenge family and seed only."""
    return np.random.default_rng(np.random.SeedSequence([_stable_int(spec.member, spec.family), spec.seed]))


def choose_subject(member: str, seed: int, people: dict[str, list[Path]], *, min_photos: int = 8) -> str:
    """The LFW identity ``member`` looks for with ``seed``: deterministic, uniform over those with ≥ ``min_photos``."""
    candidates = sorted(name for name, photos in people.items() if len(photos) >= min_photos)
    if not candidates:
        raise DataNotFoundError(f"no LFW identity has {min_photos} or more photos; is the LFW folder complete?")
    return candidates[_stable_int("subject", member, seed) % len(candidates)]


def symmetry_profile(image: np.ndarray, *, max_shift: int = 16) -> np.ndarray:
    """Mirror symmetry of the face in an aligned LFW photo, per position of the mirror axis.

    Returns a float array of shape (2·max_shift + 1,): the correlation between
    the grey face oval and its left-right mirror image, with the mirror axis
    moved by -max_shift … +max_shift pixels from the image centre. A frontal
    face peaks near the centre; a face turned sideways peaks off-centre (its
    nose and its symmetry axis move toward the side it turns to); an occluded
    or badly lit face has a low peak. Needs no detector, so choosing query
    photos does not depend on which backends are installed.
    """
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    cx, chin, hw, hh = (int(LFW_FACE[k]) for k in ("cx", "chin", "half_w", "half_h"))
    rows = grey[chin - 2 * hh:chin]
    profile = []
    for shift in range(-max_shift, max_shift + 1):
        crop = rows[:, cx - hw + shift:cx + hw + shift + 1]
        crop = crop - crop.mean()
        mirrored = crop[:, ::-1]
        denominator = float(np.sqrt((crop ** 2).sum() * (mirrored ** 2).sum()))
        profile.append(float((crop * mirrored).sum() / denominator) if denominator > 0 else 0.0)
    return np.array(profile)


def frontality(image: np.ndarray) -> float:
    """Mirror symmetry about the centre of an aligned LFW photo (1.0: perfectly symmetric face)."""
    profile = symmetry_profile(image)
    return float(profile[len(profile) // 2])


def choose_query_photos(photos: list[Path]) -> dict[str, Path]:
    """The subject's two held-out query photos: ``"front"`` and ``"side"``.

    ``front`` is the most symmetric photo about the image centre. ``side`` is
    the photo whose symmetry axis lies farthest from the centre (the most
    turned face) among those with a clear symmetry peak (at least the median
    peak), so an occluded or blurred photo is not mistaken for a turned one.
    """
    from crowdkit.common.io import read_image

    profiles = [symmetry_profile(read_image(p)) for p in photos]
    centre = len(profiles[0]) // 2
    front = int(np.argmax([p[centre] for p in profiles]))
    peaks = np.array([p.max() for p in profiles])
    offsets = np.array([abs(int(np.argmax(p)) - centre) for p in profiles])
    clear = [i for i in range(len(photos)) if i != front and peaks[i] >= np.median(peaks)]
    clear = clear or [i for i in range(len(photos)) if i != front]
    side = max(clear, key=lambda i: (offsets[i], peaks[i]))
    return {"front": photos[front], "side": photos[side]}


def _cast(spec: SceneSpec, rng: np.random.Generator, people: dict[str, list[Path]]
          ) -> tuple[list[ScenePerson], dict[str, Path]]:
    """Pick the subject, its query photos, the crowd and the intruders."""
    if spec.subject is not None:
        if spec.subject not in people:
            raise ConfigError(f"SceneSpec: subject {spec.subject!r} is not an LFW identity folder")
        if len(people[spec.subject]) < 3:
            raise ConfigError(f"SceneSpec: subject {spec.subject!r} has {len(people[spec.subject])} photos; "
                              "at least 3 are needed (two query photos are held out of the video)")
        subject = spec.subject
    else:
        subject = choose_subject(spec.member, spec.seed, people)
    photos = people[subject]
    query = choose_query_photos(photos)
    shown = [p for p in photos if p not in query.values()]
    n_people = spec.n_people if spec.n_people is not None else int(rng.integers(12, 21))
    n_intruders = 0
    if spec.family == "intruder":
        n_intruders = spec.n_intruders if spec.n_intruders is not None else int(rng.integers(2, 5))
    pool = sorted(name for name, p in people.items() if len(p) >= 3 and name != subject)
    if len(pool) < n_people - 1 + n_intruders:
        raise DataNotFoundError(f"only {len(pool)} LFW identities have 3+ photos; "
                                f"{n_people - 1 + n_intruders} are needed")
    others = [pool[i] for i in rng.choice(len(pool), size=n_people - 1 + n_intruders, replace=False)]

    def pick(candidates: list[Path]) -> tuple[Path, ...]:
        if len(candidates) <= spec.photos_per_person:
            return tuple(candidates)
        chosen = np.sort(rng.choice(len(candidates), size=spec.photos_per_person, replace=False))
        return tuple(candidates[int(i)] for i in chosen)

    cast = [ScenePerson(1, subject, "subject", pick(shown))]
    for k, name in enumerate(others):
        role = "crowd" if k < n_people - 1 else "intruder"
        cast.append(ScenePerson(k + 2, name, role, pick(people[name])))
    # Track ids should not reveal the subject: shuffle them.
    ids = rng.permutation(len(cast)) + 1
    cast = [ScenePerson(int(i), p.identity, p.role, p.photos) for i, p in zip(ids, cast)]
    return cast, query


# --------------------------------------------------------------------------- appearance


def draw_mask(image: np.ndarray) -> np.ndarray:
    """The crowd's light-blue mask, nose to chin, drawn on an aligned 250×250 LFW photo (a copy)."""
    import cv2

    out = image.copy()
    cx, chin = LFW_FACE["cx"], LFW_FACE["chin"]
    top = chin - 63  # over the nose bridge, just below the eyes
    lower = cv2.ellipse2Poly((int(cx), int(chin - 40)), (48, 46), 0, 0, 180, 6)
    upper = np.array([[cx + 48, top + 8], [cx + 22, top], [cx, top - 3], [cx - 22, top], [cx - 48, top + 8]])
    polygon = np.vstack([lower, upper]).astype(np.int32)
    cv2.fillPoly(out, [polygon], MASK_RGB, lineType=cv2.LINE_AA)
    pleat = tuple(int(c * 0.85) for c in MASK_RGB)
    for dy in (14, 28, 42):
        y = int(top + dy)
        cv2.line(out, (int(cx - 44), y), (int(cx + 44), y + 2), pleat, 2, cv2.LINE_AA)
    for side in (-1, 1):  # ear loops, from the mask's corners to the ears
        ear = int(cx + side * 62)
        cv2.line(out, (int(cx + side * 46), int(top + 8)), (ear, int(top - 2)), (235, 240, 245), 2, cv2.LINE_AA)
        cv2.line(out, (int(cx + side * 42), int(chin - 22)), (ear, int(top + 20)), (235, 240, 245), 2, cv2.LINE_AA)
    return out


def _shade(mask: np.ndarray, rgb: tuple[int, int, int], edge_px: float, floor: float = 0.78) -> np.ndarray:
    """Cloth colour darkened toward the edges of ``mask`` (uint8 0/255): a cheap rounded look."""
    import cv2

    distance = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 5)
    light = floor + (1.0 - floor) * np.clip(distance / edge_px, 0.0, 1.0)
    return (light[..., None] * np.array(rgb, np.float32)).astype(np.float32)


def _premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(H,W,3) float + (H,W) float in [0,1] → premultiplied RGBA uint8 (H,W,4)."""
    out = np.empty(rgb.shape[:2] + (4,), np.uint8)
    out[..., :3] = np.clip(rgb * alpha[..., None] + 0.5, 0, 255)
    out[..., 3] = np.clip(alpha * 255.0 + 0.5, 0, 255)
    return out


def _pyramid(rgba: np.ndarray) -> list[np.ndarray]:
    import cv2

    levels = [rgba]
    for _ in range(_LEVELS - 1):
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


@dataclass(frozen=True)
class Sprite:
    """A premultiplied RGBA image pyramid with its anchor (the face centre) at level 0."""

    levels: tuple[np.ndarray, ...]
    anchor: tuple[float, float]


class Costume:
    """The shared white robe and headdress, drawn once at full resolution; faces are set into copies."""

    def __init__(self, *, face_opening: float = 1.0) -> None:
        import cv2

        u = float(SPRITE_FACE_PX)
        self.u = u
        self.face_opening = face_opening
        self.face_half = (u * LFW_FACE["half_w"] / LFW_FACE["half_h"] / 2.0, u / 2.0)  # oval half-axes
        # Head sprite: 2u wide, 3u tall, face centre at (u, 1.3u).
        self.head_size = (int(2 * u), int(3 * u))
        self.head_anchor = (u, 1.3 * u)
        w, h = self.head_size
        ax, ay = self.head_anchor
        face_top = ay - u / 2
        hood = np.zeros((h, w), np.uint8)
        top_arc = cv2.ellipse2Poly((int(ax), int(face_top + 0.05 * u)), (int(0.56 * u), int(0.70 * u)), 0, 180, 360, 5)
        sides = np.array([[ax + 0.88 * u, h - 1], [ax - 0.88 * u, h - 1]])
        cv2.fillPoly(hood, [np.vstack([top_arc, sides]).astype(np.int32)], 255, lineType=cv2.LINE_AA)
        rgb = _shade(hood, CLOTH_RGB, 0.10 * u)
        # Folds: soft darker lines from the temples down the drape.
        folds = np.zeros((h, w), np.float32)
        for side in (-1, 1):
            for dx, length in ((0.50, 1.5), (0.70, 1.3)):
                x0 = ax + side * dx * u
                cv2.line(folds, (int(x0), int(ay)), (int(x0 + side * 0.15 * u), int(ay + length * u)), 1.0, 3)
        folds = cv2.GaussianBlur(folds, (0, 0), 0.03 * u)
        rgb *= (1.0 - 0.12 * folds)[..., None]
        cord = np.zeros((h, w), np.uint8)
        cv2.ellipse(cord, (int(ax), int(face_top - 0.17 * u)), (int(0.50 * u), int(0.14 * u)), 0, 0, 360, 255,
                    int(0.055 * u), cv2.LINE_AA)
        cord = (cord.astype(np.float32) / 255.0) * (hood > 0)
        rgb = rgb * (1 - cord[..., None]) + np.array(CORD_RGB, np.float32) * cord[..., None]
        self.hood_rgb = rgb
        self.hood_alpha = hood.astype(np.float32) / 255.0
        self.hood_rgba = _premultiply(rgb, self.hood_alpha)
        back = rgb.copy()
        cv2.line(back, (int(ax), int(face_top + 0.1 * u)), (int(ax), h - 1), (205, 205, 200), int(0.04 * u), cv2.LINE_AA)
        self.back = Sprite(tuple(_pyramid(_premultiply(cv2.GaussianBlur(back, (0, 0), 1.0), self.hood_alpha))),
                           self.head_anchor)
        self.body = self._body()

    def _body(self) -> Sprite:
        """Robe from the shoulders to the feet, with a soft ground shadow; anchor above the sprite."""
        import cv2

        u = self.u
        below = (FACE_CENTRE_Y / FACE_M) * u  # face centre → ground, in sprite px
        w, h = int(3.2 * u), int(below - 0.7 * u + 0.45 * u)
        cx, shoulder = w / 2, 0.0
        ground = below - 0.7 * u
        robe = np.zeros((h, w), np.uint8)
        top = cv2.ellipse2Poly((int(cx), int(shoulder + 0.45 * u)), (int(1.35 * u), int(0.45 * u)), 0, 180, 360, 5)
        hem = np.array([[cx + 1.25 * u, ground], [cx - 1.25 * u, ground]])
        cv2.fillPoly(robe, [np.vstack([top, hem]).astype(np.int32)], 255, lineType=cv2.LINE_AA)
        rgb = _shade(robe, CLOTH_RGB, 0.25 * u, floor=0.80)
        folds = np.zeros((h, w), np.float32)
        for dx in (-0.8, -0.35, 0.3, 0.75):
            cv2.line(folds, (int(cx + dx * u), int(1.2 * u)), (int(cx + dx * 1.15 * u), int(ground)), 1.0, 4)
        for side in (-1, 1):  # arms hanging at the sides
            cv2.line(folds, (int(cx + side * 0.95 * u), int(0.7 * u)), (int(cx + side * 1.0 * u), int(4.3 * u)), 2.0, 5)
        rgb *= (1.0 - 0.10 * cv2.GaussianBlur(folds, (0, 0), 0.05 * u))[..., None]
        alpha = robe.astype(np.float32) / 255.0
        shadow = np.zeros((h, w), np.uint8)
        cv2.ellipse(shadow, (int(cx), int(ground)), (int(1.6 * u), int(0.35 * u)), 0, 0, 360, 255, -1)
        shadow_alpha = cv2.GaussianBlur(shadow.astype(np.float32) / 255.0, (0, 0), 0.15 * u) * 0.35
        shadow_alpha *= 1.0 - alpha
        rgb = rgb * alpha[..., None] + np.array((40, 35, 30), np.float32) * shadow_alpha[..., None]
        total = alpha + shadow_alpha
        rgb = rgb / np.maximum(total, 1e-6)[..., None]
        return Sprite(tuple(_pyramid(_premultiply(rgb, total))), (cx, -0.7 * u))

    def face_oval(self, yaw_deg: float = 0.0) -> tuple[float, float, float, float]:
        """The visible face oval in level-0 head-sprite pixels: centre x, centre y, half-width, half-height."""
        yaw = math.radians(yaw_deg)
        ax, ay = self.head_anchor
        return (ax + math.sin(yaw) * 0.30 * self.u, ay, self.face_half[0] * abs(math.cos(yaw)), self.face_half[1])

    def head(self, photo: np.ndarray | None, *, masked: bool = False, yaw_deg: float = 0.0) -> Sprite:
        """The headdress with ``photo`` (an aligned LFW RGB image) set into its opening.

        ``photo=None`` fills the opening with plain skin colour (the costume alone).
        ``yaw_deg`` narrows and shifts the opening and the face, as a head turning sideways.
        """
        import cv2

        cx, cy, hw, hh = self.face_oval(yaw_deg)
        # Only the region around the opening changes: work there, on a copy of the bare hood.
        margin = 0.12 * self.u
        x0, x1 = int(cx - 1.1 * hw - margin), int(math.ceil(cx + 1.1 * hw + margin))
        y0, y1 = int(cy - 1.07 * hh - margin), int(math.ceil(cy + 1.07 * hh + margin))
        size = (x1 - x0, y1 - y0)
        centre = (int(round(cx - x0)), int(round(cy - y0)))
        rgb = self.hood_rgb[y0:y1, x0:x1]
        # A shaded rim: the cloth's edge folds in around the face.
        rim = np.zeros(size[::-1], np.uint8)
        cv2.ellipse(rim, centre, (int(hw * 1.10) + 1, int(hh * 1.07)), 0, 0, 360, 255, -1, cv2.LINE_AA)
        rim_a = cv2.GaussianBlur(rim.astype(np.float32) / 255.0, (0, 0), 0.03 * self.u)[..., None]
        rgb = rgb * (1 - rim_a) + np.array(SHADOW_RGB, np.float32) * rim_a
        # The face: an LFW oval (chin anchored, scaled by face_opening) mapped onto the sprite oval.
        src_hh = LFW_FACE["half_h"] * self.face_opening
        src_cx, src_cy = LFW_FACE["cx"], LFW_FACE["chin"] - src_hh
        sy = hh / src_hh
        sx = sy * abs(math.cos(math.radians(yaw_deg)))
        if photo is None:
            face = np.empty(size[::-1] + (3,), np.float32)
            face[:] = SKIN_RGB
        else:
            source = draw_mask(photo) if masked else photo
            m = np.array([[sx, 0, cx - x0 - sx * src_cx], [0, sy, cy - y0 - sy * src_cy]], np.float32)
            face = cv2.warpAffine(source, m, size, flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        oval = np.zeros(size[::-1], np.uint8)
        cv2.ellipse(oval, centre, (max(int(hw), 1), int(hh)), 0, 0, 360, 255, -1, cv2.LINE_AA)
        face_a = cv2.GaussianBlur(oval.astype(np.float32) / 255.0, (0, 0), 0.025 * self.u)
        rgb = rgb * (1 - face_a[..., None]) + face * face_a[..., None]
        image = self.hood_rgba.copy()
        image[y0:y1, x0:x1] = _premultiply(rgb, np.maximum(self.hood_alpha[y0:y1, x0:x1], face_a))
        return Sprite(tuple(_pyramid(image)), self.head_anchor)


def _place(canvas: np.ndarray, owner: np.ndarray | None, sprite: Sprite, centre: tuple[float, float], scale: float,
           roll_deg: float, owner_id: int) -> None:
    """Blend ``sprite`` into ``canvas`` (uint8, H×W×3, in place) with its anchor at ``centre``.

    ``scale`` is relative to level 0; the pyramid level is chosen so the
    remaining warp never shrinks by more than 2 (no aliasing). ``owner``
    (int16 H×W) records which person is on top at each pixel.
    """
    import cv2

    level = int(np.clip(math.floor(-math.log2(max(scale, 1e-6))), 0, _LEVELS - 1))
    image = sprite.levels[level]
    k = scale * (2 ** level)
    ax, ay = sprite.anchor[0] / 2 ** level, sprite.anchor[1] / 2 ** level
    r = math.radians(roll_deg)
    a, b = k * math.cos(r), k * math.sin(r)
    m = np.array([[a, b, 0.0], [-b, a, 0.0]])
    m[:, 2] = np.array(centre) - m[:, :2] @ np.array([ax, ay])
    h, w = image.shape[:2]
    corners = m[:, :2] @ np.array([[0, w, 0, w], [0, 0, h, h]], float) + m[:, 2:3]
    x0 = max(int(math.floor(corners[0].min())), 0)
    y0 = max(int(math.floor(corners[1].min())), 0)
    x1 = min(int(math.ceil(corners[0].max())) + 1, canvas.shape[1])
    y1 = min(int(math.ceil(corners[1].max())) + 1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    m[:, 2] -= (x0, y0)
    warped = cv2.warpAffine(image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = warped[..., 3]
    if not alpha.any():
        return
    # Premultiplied "over": canvas·(1 − α) + colour, in OpenCV's saturating uint8 arithmetic.
    keep = cv2.cvtColor(255 - alpha, cv2.COLOR_GRAY2RGB)
    region = canvas[y0:y1, x0:x1]
    region[:] = cv2.add(cv2.multiply(region, keep, scale=1.0 / 255.0), cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB))
    if owner is not None:
        owner[y0:y1, x0:x1][alpha > 127] = owner_id


def render_figure(photo: np.ndarray | None, *, face_height: float = 96, face_opening: float = 1.0,
                  masked: bool = False, yaw_deg: float = 0.0, roll_deg: float = 0.0,
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """One costumed person on plain sand: RGB uint8 (height, width, 3); for the book and for tests.

    ``photo`` is an aligned 250×250 LFW image, or ``None`` for the costume with a blank skin-coloured oval.
    """
    costume = Costume(face_opening=face_opening)
    width, height = size or (int(face_height * 3.2), int(face_height * 4.5))
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = (198, 181, 143)
    centre = (width / 2, height * 0.35)
    scale = face_height / SPRITE_FACE_PX
    _place(canvas, None, costume.body, centre, scale, 0.0, 0)
    _place(canvas, None, costume.head(photo, masked=masked, yaw_deg=yaw_deg), centre, scale, roll_deg, 0)
    return canvas


def _sand(rng: np.random.Generator, size: int = 1024) -> np.ndarray:
    """A tileable sand texture, RGB uint8 (size, size, 3): noise at several scales around a sand colour.

    The noise is filtered in the frequency domain, so the texture wraps without seams.
    """
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius2 = fx ** 2 + fy ** 2
    texture = np.zeros((size, size), np.float64)
    for sigma, weight in ((1.0, 6.0), (4.0, 6.0), (24.0, 10.0), (90.0, 8.0)):
        spectrum = np.fft.rfft2(rng.standard_normal((size, size)))
        noise = np.fft.irfft2(spectrum * np.exp(-2 * (math.pi * sigma) ** 2 * radius2), s=(size, size))
        texture += weight * noise / max(float(noise.std()), 1e-9)
    base = np.array((198, 181, 143), np.float64)
    tint = np.array((1.0, 0.95, 0.85))
    return np.clip(base + texture[..., None] * tint, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- motion


@dataclass(frozen=True)
class _Motion:
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


def _plan_motion(spec: SceneSpec, people: list[ScenePerson], rng: np.random.Generator) -> _Motion:
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
    return _Motion(x, z, y, yaw, roll, photo.astype(int), crowd)


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


def _face_height_schedule(spec: SceneSpec) -> np.ndarray:
    """Crowd-centre face height per frame: log-linear from min to max with eased ends."""
    p = np.linspace(0.0, 1.0, spec.n_frames)
    e = np.clip((p - 0.08) / 0.84, 0.0, 1.0)
    e = e * e * (3 - 2 * e)
    return np.exp(np.log(spec.min_face_height) + e * (np.log(spec.max_face_height) - np.log(spec.min_face_height)))


@dataclass(frozen=True)
class _Camera:
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


def _cameras(spec: SceneSpec, motion: _Motion, subject: int, rng: np.random.Generator) -> tuple[list[_Camera], np.ndarray]:
    """One camera per frame, and the 'far' factor per frame (1 at the far end, 0 at the near end)."""
    heights = _face_height_schedule(spec)
    far = (np.log(spec.max_face_height) - np.log(heights)) / (np.log(spec.max_face_height) - np.log(spec.min_face_height))
    focal = FOCAL_PX_PER_WIDTH * spec.width
    theta = math.radians(ELEVATION_DEG)
    crowd = motion.crowd
    progress = np.linspace(0, 1, spec.n_frames)
    ramp = np.clip((progress - 0.15) / 0.6, 0, 1)
    follow = 0.85 * ramp * ramp * (3 - 2 * ramp)  # the operator homes in on the subject as the drone nears
    target_x = (1 - follow) * motion.x[:, crowd].mean(axis=1) + follow * motion.x[:, subject]
    target_x = _smooth(target_x, 3.0)  # a drone operator does not jerk the camera
    target_z = motion.z[:, crowd].mean(axis=1)
    shake = np.stack([_smooth(rng.normal(0, 1, spec.n_frames), 4.0) for _ in range(2)], axis=1)
    shake = shake / max(float(np.abs(shake).max()), 1e-6) * spec.shake_px * (0.3 + 0.7 * far[:, None])
    cameras = []
    for k in range(spec.n_frames):
        distance = focal * FACE_M / heights[k]
        target = np.array([target_x[k], FACE_CENTRE_Y, target_z[k]])
        position = target - distance * np.array([0.0, -math.sin(theta), math.cos(theta)])
        centre = (spec.width / 2 + shake[k, 0], spec.height / 2 + shake[k, 1])
        cameras.append(_Camera(focal, position, theta, centre))
    return cameras, far


# --------------------------------------------------------------------------- rendering


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


def _render(spec: SceneSpec, people: list[ScenePerson], motion: _Motion, rng: np.random.Generator,
            video_path: Path, *, progress: bool = True) -> tuple[list[list], dict[str, Any]]:
    """Draw every frame into ``video_path``; return each person's boxes and face-height statistics."""
    import cv2
    from tqdm.auto import tqdm

    from crowdkit.crowd.annotations import Box
    from crowdkit.common.io import read_image

    costume = Costume(face_opening=spec.face_opening)
    photos = [[read_image(p) for p in person.photos] for person in people]
    heads: dict[tuple[int, int, int], Sprite] = {}

    def head(i: int, k: int, yaw_bin: int) -> Sprite:
        key = (i, k, yaw_bin)
        if key not in heads:
            heads[key] = costume.head(photos[i][k], masked=spec.masked, yaw_deg=float(yaw_bin))
        return heads[key]

    subject = next(i for i, p in enumerate(people) if p.role == "subject")
    cameras, far = _cameras(spec, motion, subject, rng)
    texture = _sand(rng)
    metres_per_px = 0.01
    half = np.diag([0.5, 0.5, 1.0])
    blur_angle = rng.uniform(0, 180) + np.cumsum(rng.normal(0, 2.0, spec.n_frames))
    w, h = spec.width, spec.height
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), float(spec.fps), (w, h))
    if not writer.isOpened():
        raise VideoWriteError(f"OpenCV could not open an MPEG-4 ('mp4v') writer for {video_path}; "
                              "check that opencv-python-headless is installed with its FFmpeg backend")
    boxes: list[list[Box]] = [[] for _ in people]
    visible_heights: list[float] = []
    owner = np.empty((h, w), np.int16)
    n = len(people)
    try:
        for k in tqdm(range(spec.n_frames), desc=f"simulate {spec.member}/{spec.challenge}", unit="frame",
                      leave=False, disable=not progress):
            camera = cameras[k]
            # The ground is smooth: render it at half size and enlarge (a perspective warp is the slowest step).
            ground = cv2.warpPerspective(texture, half @ camera.ground_homography(metres_per_px), (w // 2, h // 2),
                                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            canvas = cv2.resize(ground, (w, h), interpolation=cv2.INTER_LINEAR)
            owner.fill(-1)
            u, v, scale = camera.project(motion.x[k], motion.y[k], motion.z[k])
            sprite_scale = scale * FACE_M / SPRITE_FACE_PX
            faces = []
            for i in np.argsort(-motion.z[k], kind="stable"):  # far to near
                _place(canvas, owner, costume.body, (u[i], v[i]), sprite_scale[i], 0.0, i)
                yaw = float(motion.yaw[k, i])
                if abs(yaw) >= 90:
                    sprite = costume.back
                else:
                    sprite = head(i, int(motion.photo[k, i]), int(round(yaw / 5.0)) * 5)
                _place(canvas, owner, sprite, (u[i], v[i]), sprite_scale[i], float(motion.roll[k, i]), i)
            for i in range(n):
                yaw = float(motion.yaw[k, i])
                yaw_bin = int(round(yaw / 5.0)) * 5 if abs(yaw) < 90 else 0
                box = _face_box(costume.face_oval(yaw_bin), costume.head_anchor, (u[i], v[i]), sprite_scale[i],
                                float(motion.roll[k, i]))
                faces.append((i, box, yaw))
            for i, (x1, y1, x2, y2), yaw in faces:
                area = (x2 - x1) * (y2 - y1)
                cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
                inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
                outside = inside < 0.5 * area or abs(yaw) >= 90
                occluded = not outside and 45 < abs(yaw) < 90
                covered = 1.0
                if not outside:
                    patch = owner[int(cy1):int(math.ceil(cy2)), int(cx1):int(math.ceil(cx2))]
                    covered = float(np.mean(patch != i)) if patch.size else 0.0
                    occluded = occluded or covered > 0.3
                    x1, y1, x2, y2 = cx1, cy1, cx2, cy2
                    visible_heights.append(y2 - y1)
                boxes[i].append(Box(k, round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2),
                                    outside=outside, occluded=occluded,
                                    attributes={"visibility": f"{1.0 - covered:.2f}"}))
            frame = cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)
            writer.write(_degrade(frame, float(far[k]), float(blur_angle[k]), spec))
    finally:
        writer.release()
    heights = np.array(visible_heights) if visible_heights else np.zeros(1)
    stats = {"visible_boxes": len(visible_heights),
             "face_height_px": {"min": round(float(heights.min()), 2), "median": round(float(np.median(heights)), 2),
                                "max": round(float(heights.max()), 2)},
             "crowd_centre_face_height_px": {"first": round(float(_face_height_schedule(spec)[0]), 2),
                                             "last": round(float(_face_height_schedule(spec)[-1]), 2)}}
    return boxes, stats


# --------------------------------------------------------------------------- the scene


def _relative(path: Path) -> str:
    from crowdkit.common import config

    try:
        return str(Path(path).resolve().relative_to(config.data_root()))
    except (ValueError, CrowdkitError):
        return str(path)


def _load_result(folder: Path, manifest: dict[str, Any]) -> SceneResult:
    from crowdkit.common import config

    people = tuple(ScenePerson(p["track_id"], p["identity"], p["role"],
                               tuple(config.data_root() / q for q in p["photos"])) for p in manifest["people"])
    return SceneResult(video=folder / "video.mp4", annotations_xml=folder / "annotations.xml",
                       query_photos={k: folder / v["file"] for k, v in manifest["query_photos"].items()},
                       subject=manifest["subject"], spec=SceneSpec.from_dict(manifest["spec"]),
                       manifest=folder / "manifest.json", people=people)


def generate_scene(spec: SceneSpec, out_dir: str | os.PathLike, *, overwrite: bool = False,
                   lfw_root: str | os.PathLike | None = None, progress: bool = True) -> SceneResult:
    """Render ``spec`` into the folder ``out_dir``: video, CVAT XML, query photos, manifest.

    The folder appears complete or not at all. If it already holds a scene of
    the same spec, that scene is returned without re-rendering; a folder with a
    different scene raises :class:`ConfigError` unless ``overwrite=True``.

    Returns
    -------
    SceneResult
        Paths to ``video.mp4``, ``annotations.xml``, the query photos
        (``{"front", "side"}`` plus ``"masked"`` for the mask challenges) and
        ``manifest.json`` (spec, people and their photos, face-height
        statistics, versions, file hashes).
    """
    import cv2

    from crowdkit import __version__
    from crowdkit.crowd.annotations import Annotations, Track, write_cvat_video
    from crowdkit.common.datasets import lfw_people
    from crowdkit.common.io import read_image, sha256_file, write_json_atomic

    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.json"
    if out_dir.exists() and not overwrite:
        if manifest_path.is_file():
            existing = json.loads(manifest_path.read_text(encoding="utf-8"))
            if existing.get("spec") == spec.to_dict() and all((out_dir / f).is_file() for f in existing.get("files", {})):
                log.info("%s already holds this scene; not rendering again", out_dir)
                return _load_result(out_dir, existing)
        if any(out_dir.iterdir()):
            raise ConfigError(f"{out_dir} exists and holds something other than this scene; "
                              "choose another folder or pass overwrite=True (CLI: --overwrite)")

    people_photos = lfw_people(lfw_root)
    rng = scene_rng(spec)
    people, query = _cast(spec, rng, people_photos)
    motion = _plan_motion(spec, people, rng)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=out_dir.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the scene is an ordinary folder
    try:
        boxes, stats = _render(spec, people, motion, rng, tmp / "video.mp4", progress=progress)
        tracks = tuple(Track(p.track_id, "face", tuple(boxes[i]), {"identity": p.identity})
                       for i, p in sorted(enumerate(people), key=lambda ip: ip[1].track_id))
        annotations = Annotations(tracks=tracks, frame_count=spec.n_frames, width=spec.width, height=spec.height,
                                  labels=("face",), source="video.mp4")
        write_cvat_video(tmp / "annotations.xml", annotations)
        query_files = {"front": "query_front.jpg", "side": "query_side.jpg"}
        for kind, file in query_files.items():
            shutil.copyfile(query[kind], tmp / file)
        query_sources = dict(query)
        if spec.masked:
            masked = draw_mask(read_image(query["front"]))
            cv2.imwrite(str(tmp / "query_masked.jpg"), cv2.cvtColor(masked, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            query_files["masked"] = "query_masked.jpg"
            query_sources["masked"] = query["front"]
        primary = "masked" if spec.challenge == "mask2" else "front"
        files = ["video.mp4", "annotations.xml", *query_files.values()]
        manifest = {
            "crowdkit_version": __version__,
            "generator": "crowdkit.crowd.simulate",
            "spec": spec.to_dict(),
            "seed": spec.seed,
            "subject": next(p.identity for p in people if p.role == "subject"),
            "subject_track_id": next(p.track_id for p in people if p.role == "subject"),
            "primary_query": primary,
            "query_photos": {k: {"file": query_files[k], "source": _relative(query_sources[k]),
                                 "masked": k == "masked"} for k in query_files},
            "people": [{"track_id": p.track_id, "identity": p.identity, "role": p.role,
                        "photos": [_relative(q) for q in p.photos]} for p in sorted(people, key=lambda p: p.track_id)],
            "lfw_variant": "deepfunneled",
            "statistics": stats,
            "annotation_rules": {
                "box": "visible face oval, chin to the edge of the headdress",
                "outside": "less than half of the face box inside the frame, or |yaw| >= 90 (back of the head)",
                "occluded": "more than 30% of the face box covered by people in front, or 45 < |yaw| < 90",
                "visibility": "box attribute: fraction of the face box not covered by people in front",
            },
            "versions": {"opencv": cv2.__version__, "numpy": np.__version__},
            "files": {f: sha256_file(tmp / f) for f in files},
        }
        write_json_atomic(tmp / "manifest.json", manifest)
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, trash / "scene")
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("scene %s/%s seed %d → %s (%d people, subject %s)", spec.member, spec.challenge, spec.seed, out_dir,
             len(people), manifest["subject"])
    return _load_result(out_dir, manifest)
