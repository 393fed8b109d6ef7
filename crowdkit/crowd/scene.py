"""What a simulated scene is made of: its spec, the people in it, and how they are chosen.

A :class:`SceneSpec` fixes everything about a scene; :func:`scene_rng` is its
random generator (a function of member, challenge family and seed only), and
:func:`cast_scene` picks the subject, the two held-out query photos, the crowd
and the intruders from the LFW identities. See :mod:`crowdkit.crowd.simulate`
for what a scene holds and how it is written.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from crowdkit.common.exceptions import ConfigError, DataNotFoundError

#: The study's challenges, in its order.
CHALLENGES = ("normal", "compact", "intruder", "random", "mask1", "mask2")
#: The simulator's drawing of a spec: bumped whenever the same spec would give a different scene, so scenes
#: cached by an earlier version are rendered again (2: the people to find walk together, the drone follows them).
SCENE_VERSION = 2
#: Face height in metres: the visible oval, chin to the edge of the headdress.
FACE_M = 0.17
#: Height of the face centre above the ground, in metres (varied ±4 cm per person).
FACE_CENTRE_Y = 1.62
#: The nominal visible face in a 250×250 deep-funneled LFW photo: centre x, chin y,
#: half-width and half-height of the oval (measured with MTCNN on 80 random photos:
#: eyes at y≈113, mouth corners at y≈160, chin at y≈190).
LFW_FACE = {"cx": 125.0, "chin": 190.0, "half_w": 42.0, "half_h": 54.0}


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
    co_subjects : tuple of str
        Further LFW identities to be found in the same scene (the other members who ran
        this challenge); each walks in the crowd and has its own held-out query photos.
    subjects_together : bool
        The people to find walk together in the middle of the crowd (of its front row in a
        ``compact`` crowd, where heads hide the faces behind them) and the drone homes in on them
        as a group; False: they stand anywhere, like everyone else, and the drone homes in on the
        subject alone.
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
    co_subjects: tuple[str, ...] = ()
    subjects_together: bool = True

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
        object.__setattr__(self, "co_subjects", tuple(self.co_subjects))
        if self.co_subjects and self.subject is None:
            raise bad("co_subjects need a subject: name the first person to find too")
        if len(set((self.subject, *self.co_subjects))) != 1 + len(self.co_subjects):
            raise bad(f"the people to find must be distinct, got {self.subject!r} and {list(self.co_subjects)}")

    @property
    def family(self) -> str:
        """Scenes of one family share their video: ``mask1`` and ``mask2`` are both ``"mask"``."""
        return "mask" if self.challenge.startswith("mask") else self.challenge

    @property
    def masked(self) -> bool:
        return self.family == "mask"

    @property
    def subjects(self) -> tuple[str, ...]:
        """Every person to find in the scene, the (drone's) main subject first; empty for a stand-in."""
        return (self.subject, *self.co_subjects) if self.subject is not None else ()

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain values; ``co_subjects`` only when there are any (a one-subject spec keeps its hash)."""
        values = asdict(self)
        values["co_subjects"] = list(self.co_subjects)
        if not self.co_subjects:
            del values["co_subjects"]
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SceneSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ScenePerson:
    """One person in a scene: CVAT track id, LFW identity, role and the photos shown."""

    track_id: int
    identity: str
    role: str  # "subject", "member" (a co-subject), "crowd" or "intruder"
    photos: tuple[Path, ...]

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


def _check_subject(name: str, people: dict[str, list[Path]]) -> str:
    if name not in people:
        raise ConfigError(f"SceneSpec: subject {name!r} is not an LFW identity folder")
    if len(people[name]) < 3:
        raise ConfigError(f"SceneSpec: subject {name!r} has {len(people[name])} photos; "
                          "at least 3 are needed (two query photos are held out of the video)")
    return name


def cast_scene(spec: SceneSpec, rng: np.random.Generator, people: dict[str, list[Path]]
               ) -> tuple[list[ScenePerson], dict[str, dict[str, Path]]]:
    """Pick the people to find and their query photos, the crowd and the intruders.

    Returns the cast (track ids shuffled) and, per person to find (the main subject
    first), the held-out query photos ``{"front", "side"}``. Co-subjects walk in the
    crowd with the role ``"member"``; without co-subjects the random draws are
    those of a one-subject scene.
    """
    if spec.subject is not None:
        subjects = [_check_subject(name, people) for name in spec.subjects]
    else:
        subjects = [choose_subject(spec.member, spec.seed, people)]
    queries = {name: choose_query_photos(people[name]) for name in subjects}
    n_people = spec.n_people if spec.n_people is not None else int(rng.integers(12, 21))
    n_intruders = 0
    if spec.family == "intruder":
        n_intruders = spec.n_intruders if spec.n_intruders is not None else int(rng.integers(2, 5))
    pool = sorted(name for name, p in people.items() if len(p) >= 3 and name not in subjects)
    n_others = max(0, n_people - len(subjects)) + n_intruders
    if len(pool) < n_others:
        raise DataNotFoundError(f"only {len(pool)} LFW identities have 3+ photos; {n_others} are needed")
    others = [pool[i] for i in rng.choice(len(pool), size=n_others, replace=False)]

    def pick(candidates: list[Path]) -> tuple[Path, ...]:
        if len(candidates) <= spec.photos_per_person:
            return tuple(candidates)
        chosen = np.sort(rng.choice(len(candidates), size=spec.photos_per_person, replace=False))
        return tuple(candidates[int(i)] for i in chosen)

    cast = [ScenePerson(1, name, "subject" if k == 0 else "member",
                        pick([p for p in people[name] if p not in queries[name].values()]))
            for k, name in enumerate(subjects)]
    for k, name in enumerate(others):
        role = "crowd" if k < n_others - n_intruders else "intruder"
        cast.append(ScenePerson(len(cast) + 1, name, role, pick(people[name])))
    # Track ids should not reveal the subject: shuffle them.
    ids = rng.permutation(len(cast)) + 1
    cast = [ScenePerson(int(i), p.identity, p.role, p.photos) for i, p in zip(ids, cast)]
    return cast, queries
