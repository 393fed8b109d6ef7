"""Simulated drone footage of a uniform-appearance crowd, built from real LFW faces.

The crowd study's own videos and CVAT exports are private. This module makes
the same kind of material from public photos: a video, a CVAT for video 1.1
annotation file with exact ground truth, and query photos of one person to
be found::

    >>> from crowdkit.crowd.scene import SceneSpec
    >>> from crowdkit.crowd.simulate import generate_scene
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
  frontal photo with the crowd's mask drawn on it. The people to find walk together in
  the middle of the crowd (of its front row in a ``compact`` crowd, where
  heads hide the faces behind) and the drone homes in on them as a group
  (``subjects_together``), as a team filming its own members would: placed
  anywhere among 24 people, with the drone homing in on one of them, the
  others were detected 7-195 times in 1,000-1,600 frames, against the
  study's 226-834 subject detections per run.
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

The modules: :mod:`crowdkit.crowd.scene` (the spec and who is in it),
:mod:`crowdkit.crowd.costume` (how they look), :mod:`crowdkit.crowd.motion`
(how they move and how the drone flies), :mod:`crowdkit.crowd.render` (the
frames and the ground truth); this one writes the scene's folder.

Every output is written into a temporary folder that is renamed into place,
so an interrupted run never leaves half a scene, and the same spec always
gives byte-identical files (numpy ``Generator`` seeded from member, challenge
family and seed; OpenCV's MPEG-4 encoder is deterministic).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdkit.common.exceptions import ConfigError, CrowdkitError
from crowdkit.crowd.scene import SCENE_VERSION, ScenePerson, SceneSpec

log = logging.getLogger(__name__)

#: What the manifest says each annotation flag means.
ANNOTATION_RULES = {
    "box": "visible face oval, chin to the edge of the headdress",
    "outside": "less than half of the face box inside the frame, or |yaw| >= 90 (back of the head)",
    "occluded": "more than 30% of the face box covered by people in front, or 45 < |yaw| < 90",
    "visibility": "box attribute: fraction of the face box not covered by people in front",
}


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
    member_queries: dict[str, dict[str, Path]] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.video.parent

    @property
    def subjects(self) -> tuple[str, ...]:
        """Every person to find in the scene, the main subject first."""
        return (self.subject, *self.member_queries)

    def queries_of(self, identity: str) -> dict[str, Path]:
        """The query photos of one person to find (``front``, ``side`` and, for masks, ``masked``)."""
        if identity == self.subject:
            return dict(self.query_photos)
        if identity not in self.member_queries:
            raise ConfigError(f"{self.folder}: {identity!r} is not one of the people to find in this scene "
                              f"({', '.join(self.subjects)})")
        return dict(self.member_queries[identity])


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
    members = {name: {k: folder / v["file"] for k, v in photos.items()}
               for name, photos in manifest.get("member_query_photos", {}).items()}
    return SceneResult(video=folder / "video.mp4", annotations_xml=folder / "annotations.xml",
                       query_photos={k: folder / v["file"] for k, v in manifest["query_photos"].items()},
                       subject=manifest["subject"], spec=SceneSpec.from_dict(manifest["spec"]),
                       manifest=folder / "manifest.json", people=people, member_queries=members)


def _existing_scene(spec: SceneSpec, out_dir: Path, overwrite: bool) -> SceneResult | None:
    """The scene already in ``out_dir`` if it is this spec's and complete; refuse a folder holding anything else."""
    manifest_path = out_dir / "manifest.json"
    if not out_dir.exists() or overwrite:
        return None
    if manifest_path.is_file():
        existing = json.loads(manifest_path.read_text(encoding="utf-8"))
        same_spec = existing.get("spec") == spec.to_dict()
        if (same_spec and existing.get("scene_version") == SCENE_VERSION
                and all((out_dir / f).is_file() for f in existing.get("files", {}))):
            log.info("%s already holds this scene; not rendering again", out_dir)
            return _load_result(out_dir, existing)
        if same_spec and existing.get("scene_version") != SCENE_VERSION:
            raise ConfigError(f"{out_dir} holds this scene as an earlier simulator drew it (scene version "
                              f"{existing.get('scene_version', 1)}, now {SCENE_VERSION}); pass overwrite=True "
                              "(CLI: --overwrite) to render it again, or choose another folder")
    if any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} exists and holds something other than this scene; "
                          "choose another folder or pass overwrite=True (CLI: --overwrite)")
    return None


def _write_annotations(path: Path, spec: SceneSpec, people: list[ScenePerson], boxes: list[list]) -> None:
    """One CVAT track per person (label ``face``, attribute ``identity``), in track-id order."""
    from crowdkit.crowd.annotations import Annotations, Track
    from crowdkit.crowd.cvat import write_cvat_video

    tracks = tuple(Track(p.track_id, "face", tuple(boxes[i]), {"identity": p.identity})
                   for i, p in sorted(enumerate(people), key=lambda ip: ip[1].track_id))
    annotations = Annotations(tracks=tracks, frame_count=spec.n_frames, width=spec.width, height=spec.height,
                              labels=("face",), source="video.mp4")
    write_cvat_video(path, annotations)


def _write_query_photos(folder: Path, spec: SceneSpec, query: dict[str, Path], prefix: str = "query_"
                        ) -> tuple[dict[str, str], dict[str, Path]]:
    """Copy the held-out photos (and draw the masked one); return file name and source photo per query."""
    import cv2

    from crowdkit.common.io import read_image
    from crowdkit.crowd.costume import draw_mask

    query_files = {"front": f"{prefix}front.jpg", "side": f"{prefix}side.jpg"}
    for kind, file in query_files.items():
        shutil.copyfile(query[kind], folder / file)
    query_sources = dict(query)
    if spec.masked:
        masked = draw_mask(read_image(query["front"]))
        cv2.imwrite(str(folder / f"{prefix}masked.jpg"), cv2.cvtColor(masked, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        query_files["masked"] = f"{prefix}masked.jpg"
        query_sources["masked"] = query["front"]
    return query_files, query_sources


def _query_entries(files: dict[str, str], sources: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {k: {"file": files[k], "source": _relative(sources[k]), "masked": k == "masked"} for k in files}


def _write_member_queries(folder: Path, spec: SceneSpec, queries: dict[str, dict[str, Path]]
                          ) -> dict[str, dict[str, dict[str, Any]]]:
    """Query photos of the co-subjects (``query_<identity>_front.jpg``, ...), as manifest entries per identity."""
    entries = {}
    for name, query in list(queries.items())[1:]:
        files, sources = _write_query_photos(folder, spec, query, prefix=f"query_{name}_")
        entries[name] = _query_entries(files, sources)
    return entries


def _manifest(folder: Path, spec: SceneSpec, people: list[ScenePerson], query_files: dict[str, str],
              query_sources: dict[str, Path], stats: dict[str, Any],
              member_queries: dict[str, dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """What the scene holds, how it was made, and the sha256 of each file written into ``folder``."""
    import cv2

    from crowdkit import __version__
    from crowdkit.common.io import sha256_file

    files = ["video.mp4", "annotations.xml", *query_files.values(),
             *(entry["file"] for photos in (member_queries or {}).values() for entry in photos.values())]
    extra = {"member_query_photos": member_queries} if member_queries else {}
    return {
        "crowdkit_version": __version__,
        "generator": "crowdkit.crowd.simulate",
        "scene_version": SCENE_VERSION,
        "spec": spec.to_dict(),
        "seed": spec.seed,
        "subject": next(p.identity for p in people if p.role == "subject"),
        "subject_track_id": next(p.track_id for p in people if p.role == "subject"),
        "primary_query": "masked" if spec.challenge == "mask2" else "front",
        "query_photos": _query_entries(query_files, query_sources),
        **extra,
        "people": [{"track_id": p.track_id, "identity": p.identity, "role": p.role,
                    "photos": [_relative(q) for q in p.photos]} for p in sorted(people, key=lambda p: p.track_id)],
        "lfw_variant": "deepfunneled",
        "statistics": stats,
        "annotation_rules": dict(ANNOTATION_RULES),
        "versions": {"opencv": cv2.__version__, "numpy": np.__version__},
        "files": {f: sha256_file(folder / f) for f in files},
    }


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by the finished ``tmp`` folder (the old scene, if any, is moved aside first)."""
    if out_dir.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
        os.replace(out_dir, trash / "scene")
        os.replace(tmp, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


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
    from crowdkit.common.datasets import lfw_people
    from crowdkit.common.io import write_json_atomic
    from crowdkit.crowd.motion import plan_motion
    from crowdkit.crowd.render import render_video
    from crowdkit.crowd.scene import cast_scene, scene_rng

    out_dir = Path(out_dir)
    existing = _existing_scene(spec, out_dir, overwrite)
    if existing is not None:
        return existing
    people_photos = lfw_people(lfw_root)
    rng = scene_rng(spec)
    people, queries = cast_scene(spec, rng, people_photos)
    motion = plan_motion(spec, people, rng)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=out_dir.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the scene is an ordinary folder
    try:
        boxes, stats = render_video(spec, people, motion, rng, tmp / "video.mp4", progress=progress)
        _write_annotations(tmp / "annotations.xml", spec, people, boxes)
        query_files, query_sources = _write_query_photos(tmp, spec, next(iter(queries.values())))
        members = _write_member_queries(tmp, spec, queries)
        manifest = _manifest(tmp, spec, people, query_files, query_sources, stats, members)
        write_json_atomic(tmp / "manifest.json", manifest)
        _move_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("scene %s/%s seed %d → %s (%d people, subject %s)", spec.member, spec.challenge, spec.seed, out_dir,
             len(people), manifest["subject"])
    return _load_result(out_dir, manifest)
