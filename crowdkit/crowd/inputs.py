"""What one crowd run reads: the video, its annotations, the subject and the query photos.

A run on a real video names its files; a simulated run renders its scene once
into ``$CROWDKIT_HOME/cache/scenes`` (``mask1`` and ``mask2`` share one scene:
the same video, different query photos) and reads it from there::

    inputs = prepare_inputs(CrowdRunParams(member="Colin_Powell", challenge="normal"))
    inputs.video, inputs.subject, inputs.primary
"""
from __future__ import annotations

import hashlib
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from crowdkit.common import config
from crowdkit.common.exceptions import DataNotFoundError
from crowdkit.crowd.params import ALL_PHOTOS, FULL_SCENE_FRAMES, CrowdRunParams

if TYPE_CHECKING:  # pragma: no cover
    from crowdkit.crowd.scene import SceneSpec
    from crowdkit.crowd.simulate import SceneResult


@dataclass(frozen=True)
class RunInputs:
    """What one run reads: the video, its annotations, the subject and the query photos.

    ``query_photos`` maps a short name (``front``, ``side``, ``masked`` or the
    file's stem) to its path; ``primary`` names the photos of the run's query.
    """

    video: Path
    annotations: Path
    subject: str
    query_photos: dict[str, Path]
    primary: tuple[str, ...]
    simulated: bool
    scene: "SceneResult | None" = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "run"


def run_identity(params: CrowdRunParams, *, lfw_root: str | Path | None = None) -> str | None:
    """The LFW identity a simulated run looks for (:func:`crowdkit.crowd.cast.person_to_find`).

    ``subject`` if given, else ``member``; None only for a stand-in (``stand_in=True``).
    """
    from crowdkit.crowd.cast import person_to_find

    lfw = Path(lfw_root) if lfw_root is not None else config.data_root() / "lfw" / "images_deepfunneled"
    name = params.subject or params.member
    if (lfw / name).is_dir():
        return person_to_find(name, [name])
    known = [p.name for p in lfw.iterdir() if p.is_dir()] if lfw.is_dir() else []
    return person_to_find(name, known, stand_in=params.stand_in)


def scene_spec(params: CrowdRunParams, *, lfw_root: str | Path | None = None) -> "SceneSpec":
    """The :class:`~crowdkit.crowd.simulate.SceneSpec` a simulated run renders.

    A member of the study shares one scene per challenge with every member who
    ran that challenge in ``params.matrix`` (:func:`crowdkit.crowd.cast.scene_members`):
    the spec is the same whichever member's run asks for it. ``mask2`` renders the
    ``mask1`` scene: the two differ only in the query photo (the simulator writes
    the masked photo for both), so they share the video, its cached faces and one render.
    """
    from crowdkit.crowd.cast import CAST, scene_members
    from crowdkit.crowd.reported import MEMBERS
    from crowdkit.crowd.scene import SceneSpec

    identity = run_identity(params, lfw_root=lfw_root)
    challenge = "mask1" if params.challenge == "mask2" else params.challenge
    common = dict(challenge=challenge, seed=int(params.seed), n_frames=int(params.max_frames or FULL_SCENE_FRAMES),
                  n_people=params.crowd_size, subjects_together=bool(params.subjects_together))
    if params.member in CAST and identity == CAST[params.member]:
        members = set(scene_members(params.challenge, params.matrix)) | {params.member}
        members = [m for m in MEMBERS if m in members]
        subjects = [CAST[m] for m in members]
        return SceneSpec(member="+".join(members), subject=subjects[0], co_subjects=tuple(subjects[1:]), **common)
    return SceneSpec(member=params.member, subject=identity, **common)


def scene_folder(spec: "SceneSpec") -> Path:
    """Where a spec's scene is cached: ``$CROWDKIT_HOME/cache/scenes/<member>-<family>-s<seed>-<frames>f-<hash>``."""
    from crowdkit.crowd.scene import SCENE_VERSION

    drawn = {**spec.to_dict(), "scene_version": SCENE_VERSION}  # a new simulator renders into a new folder
    digest = hashlib.sha256(json.dumps(drawn, sort_keys=True).encode()).hexdigest()[:10]
    name = f"{_slug(spec.member)}-{spec.family}-s{spec.seed}-{spec.n_frames}f-{digest}"
    return config.cache_dir("scenes") / name


def prepare_inputs(params: CrowdRunParams, *, scene_dir: str | Path | None = None, progress: bool = True
                   ) -> RunInputs:
    """Resolve the run's files, rendering the simulated scene first when there is no video.

    Raises
    ------
    DataNotFoundError
        a named video, annotation file or query photo does not exist.
    """
    if not params.simulated:
        video, annotations = Path(params.video), Path(params.annotations)
        for what, path in (("video", video), ("annotations", annotations)):
            if not path.is_file():
                raise DataNotFoundError(f"{what} file {path} does not exist (paths are relative to the working "
                                        "directory, the project root in a plan run)")
        photos = _named_photos(params.query_photos)
        return RunInputs(video, annotations, params.subject or params.member, photos, tuple(photos), False)

    from crowdkit.crowd.simulate import generate_scene

    spec = scene_spec(params)
    with exclusive_lock(Path(scene_dir or scene_folder(spec))) as folder:
        scene = generate_scene(spec, folder, progress=progress)
    identity = run_identity(params) or scene.subject  # None: a stand-in, the scene's choice
    own = scene.queries_of(identity)
    if params.query_photos is not None:
        given = _named_photos(params.query_photos)
        photos = {**{k: v for k, v in own.items() if v not in given.values()}, **given}
        primary = tuple(given)
    else:
        photos = own
        primary = ("masked",) if params.challenge == "mask2" else ("front",)
    return RunInputs(scene.video, scene.annotations_xml, identity, photos, primary, True, scene)


@contextmanager
def exclusive_lock(folder: Path, what: str = "") -> Iterator[Path]:
    """Hold an exclusive lock beside ``folder`` (``.<name><what>.lock``) while its content is made or checked.

    Parallel runs of one scene (its members, ``mask1`` and ``mask2``) share its
    folder: the second waits for the first's render and then finds it complete,
    instead of rendering it again and swapping the folder under the first; with
    ``what="-faces-..."`` the same holds for the scene's detections and embeddings.
    (No lock where ``fcntl`` is missing, e.g. on Windows.)
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield folder
        return
    with open(folder.parent / f".{folder.name}{what}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _named_photos(paths: Sequence[str | Path]) -> dict[str, Path]:
    named: dict[str, Path] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise DataNotFoundError(f"query photo {path} does not exist")
        name = _slug(path.stem.removeprefix("query_"))
        while name in named or name == ALL_PHOTOS:
            name += "_"
        named[name] = path
    return named
