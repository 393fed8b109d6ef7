"""Simulated crowd scenes: determinism, exact and consistent ground truth, held-out query photos, detectability."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crowdkit.crowd import costume, render
from crowdkit.crowd import scene as crowd_scene
from crowdkit.crowd.annotations import boxes_in_frame
from crowdkit.crowd.cvat import read_cvat
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import read_image, sha256_file
from crowdkit.crowd.costume import render_figure
from crowdkit.crowd.scene import SceneSpec, choose_subject
from crowdkit.crowd.simulate import generate_scene


def _frames(video: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _manifest(scene) -> dict:
    return json.loads(scene.manifest.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def normal(tmp_path_factory):
    spec = SceneSpec(member="tester", challenge="normal", seed=7, n_frames=30, n_people=12)
    return generate_scene(spec, tmp_path_factory.mktemp("scenes") / "normal")


@pytest.fixture(scope="module")
def near(tmp_path_factory):
    """A short scene with large faces only (the drone is already close)."""
    spec = SceneSpec(member="tester", challenge="normal", seed=3, n_frames=4, n_people=12,
                     min_face_height=60, max_face_height=61)
    return generate_scene(spec, tmp_path_factory.mktemp("scenes") / "near")


@pytest.fixture(scope="module")
def mtcnn():
    from crowdkit.engine.detect import get_detector

    return get_detector("mtcnn", min_face_size=16)


# --------------------------------------------------------------------------- spec and casting


@pytest.mark.parametrize("options, message", [
    ({"challenge": "crowded"}, "unknown challenge"),
    ({"challenge": "normal", "width": 961}, "even"),
    ({"challenge": "normal", "min_face_height": 50, "max_face_height": 40}, "min_face_height"),
    ({"challenge": "normal", "n_people": 1}, "n_people"),
    ({"challenge": "normal", "face_opening": 3.0}, "face_opening"),
])
def test_spec_rejects_bad_values(options, message):
    with pytest.raises(ConfigError, match=message):
        SceneSpec(member="x", **options)


def test_subject_depends_on_member_and_seed(lfw_dir):
    from crowdkit.common.datasets import lfw_people

    people = lfw_people(lfw_dir, min_images=8)
    subjects = {choose_subject(m, 0, people) for m in ("alice", "bob", "carol", "dave")}
    assert len(subjects) == 4
    assert choose_subject("alice", 0, people) == choose_subject("alice", 0, people)
    assert all(len(people[s]) >= 8 for s in subjects)


def test_mask_challenges_share_their_scene():
    one = SceneSpec(member="m", challenge="mask1", seed=2)
    two = SceneSpec(member="m", challenge="mask2", seed=2)
    assert one.family == two.family == "mask"
    assert crowd_scene.scene_rng(one).integers(1 << 30) == crowd_scene.scene_rng(two).integers(1 << 30)


# --------------------------------------------------------------------------- one scene


def test_scene_folder_holds_every_file(normal):
    names = sorted(p.name for p in normal.folder.iterdir())
    assert names == ["annotations.xml", "manifest.json", "query_front.jpg", "query_side.jpg", "video.mp4"]
    manifest = _manifest(normal)
    for name, digest in manifest["files"].items():
        assert sha256_file(normal.folder / name) == digest


def test_video_decodes_with_the_requested_size(normal):
    frames = _frames(normal.video)
    assert len(frames) == 30
    assert frames[0].shape == (540, 960, 3)


def test_annotations_have_one_track_per_person(normal):
    ann = read_cvat(normal.annotations_xml)
    manifest = _manifest(normal)
    assert (ann.width, ann.height, ann.frame_count) == (960, 540, 30)
    assert len(ann.tracks) == len(manifest["people"]) == 12
    assert {t.label for t in ann.tracks} == {"face"}
    by_id = {p["track_id"]: p["identity"] for p in manifest["people"]}
    assert {t.id: t.identity for t in ann.tracks} == by_id
    assert manifest["subject"] in ann.identities()
    assert all(len(t.boxes) == 30 for t in ann.tracks)


def test_boxes_lie_inside_the_frame_unless_outside(normal):
    ann = read_cvat(normal.annotations_xml)
    for track in ann.tracks:
        for box in track.boxes:
            if not box.outside:
                assert 0 <= box.x1 < box.x2 <= 960 and 0 <= box.y1 < box.y2 <= 540


def test_face_heights_span_the_requested_range(normal):
    ann = read_cvat(normal.annotations_xml)
    first = [b.y2 - b.y1 for _, b in boxes_in_frame(ann, 0)]
    heights = [b.y2 - b.y1 for frame in ann.frames for _, b in boxes_in_frame(ann, frame)]
    assert first and max(first) < 16 * 1.4
    assert min(heights) <= 16 * 1.2
    assert max(heights) >= 120 * 0.8


def test_query_photos_are_the_subject_and_never_in_the_video(normal, lfw_dir):
    manifest = _manifest(normal)
    subject = manifest["subject"]
    shown = {photo for person in manifest["people"] for photo in person["photos"]}
    sources = {kind: entry["source"] for kind, entry in manifest["query_photos"].items()}
    assert set(sources) == {"front", "side"}
    for kind, source in sources.items():
        assert Path(source).parent.name == subject
        assert source not in shown
    assert sources["front"] != sources["side"]
    original = lfw_dir / subject / Path(sources["front"]).name
    assert normal.query_photos["front"].read_bytes() == original.read_bytes()
    subject_photos = next(p["photos"] for p in manifest["people"] if p["role"] == "subject")
    assert subject_photos and all(Path(p).parent.name == subject for p in subject_photos)


def test_front_query_is_the_most_symmetric(normal, lfw_dir):
    manifest = _manifest(normal)
    subject = manifest["subject"]
    scores = {p.name: crowd_scene.frontality(read_image(p)) for p in sorted((lfw_dir / subject).glob("*.jpg"))}
    assert Path(manifest["query_photos"]["front"]["source"]).name == max(scores, key=scores.get)
    # The side photo's mirror axis lies farther from the centre than the front photo's.
    offsets = {kind: abs(int(np.argmax(crowd_scene.symmetry_profile(read_image(lfw_dir / subject / Path(e["source"]).name))))
                         - 16) for kind, e in manifest["query_photos"].items()}
    assert offsets["side"] >= offsets["front"]


def test_same_spec_gives_identical_files(normal, tmp_path):
    again = generate_scene(normal.spec, tmp_path / "again")
    for name in ("annotations.xml", "video.mp4", "manifest.json", "query_front.jpg"):
        assert sha256_file(again.folder / name) == sha256_file(normal.folder / name), name
    frames = _frames(again.video)
    assert np.array_equal(frames[-1], _frames(normal.video)[-1])


def test_existing_scene_is_reused_and_a_different_one_refused(normal):
    before = normal.video.stat().st_mtime_ns
    again = generate_scene(normal.spec, normal.folder)
    assert again.video.stat().st_mtime_ns == before
    other = SceneSpec(member="tester", challenge="normal", seed=8, n_frames=30, n_people=12)
    with pytest.raises(ConfigError, match="overwrite"):
        generate_scene(other, normal.folder)


def test_a_scene_drawn_by_an_earlier_simulator_is_not_reused(normal, monkeypatch):
    from crowdkit.crowd import inputs, simulate

    before = inputs.scene_folder(normal.spec)
    monkeypatch.setattr(crowd_scene, "SCENE_VERSION", crowd_scene.SCENE_VERSION + 1)
    monkeypatch.setattr(simulate, "SCENE_VERSION", crowd_scene.SCENE_VERSION)
    assert inputs.scene_folder(normal.spec) != before  # the run cache renders it again, elsewhere
    with pytest.raises(ConfigError, match="earlier simulator drew it.*overwrite"):
        generate_scene(normal.spec, normal.folder)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    place = render.place_sprite

    def failing(*args):  # interrupted while the third sprite is drawn: the video is half written
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return place(*args)

    monkeypatch.setattr(render, "place_sprite", failing)
    spec = SceneSpec(member="tester", challenge="normal", seed=1, n_frames=6, n_people=4)
    with pytest.raises(KeyboardInterrupt):
        generate_scene(spec, tmp_path / "scene")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- challenges


def test_mask2_writes_a_masked_query(tmp_path):
    spec = SceneSpec(member="tester", challenge="mask2", seed=5, n_frames=3, n_people=6)
    scene = generate_scene(spec, tmp_path / "mask2")
    manifest = _manifest(scene)
    assert manifest["primary_query"] == "masked"
    assert set(scene.query_photos) == {"front", "side", "masked"}
    front, masked = read_image(scene.query_photos["front"]), read_image(scene.query_photos["masked"])
    lower_face = (slice(140, 185), slice(95, 155))
    blue = np.abs(masked[lower_face].astype(int) - costume.MASK_RGB).sum(axis=2) < 60
    assert blue.mean() > 0.5
    assert (np.abs(front[lower_face].astype(int) - costume.MASK_RGB).sum(axis=2) < 60).mean() < 0.1
    # Everyone in the video wears the mask: the lower half of every large face box is light blue.
    ann = read_cvat(scene.annotations_xml)
    frame = _frames(scene.video)[-1]
    fractions = []
    for _, box in boxes_in_frame(ann, 2):
        if box.occluded or box.y2 - box.y1 < 20:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in (box.x1, box.y1, box.x2, box.y2))
        lower = frame[(y1 + y2) // 2 + 2:y2 - 2, x1 + (x2 - x1) // 4:x2 - (x2 - x1) // 4].astype(int)
        fractions.append((np.abs(lower - costume.MASK_RGB).sum(axis=2) < 90).mean())
    assert fractions and np.median(fractions) > 0.5


def test_compact_crowd_occludes_faces(tmp_path):
    spec = SceneSpec(member="tester", challenge="compact", seed=4, n_frames=12, n_people=16)
    ann = read_cvat(generate_scene(spec, tmp_path / "compact").annotations_xml)
    visible = [b for t in ann.tracks for b in t.boxes if not b.outside]
    occluded = [b for b in visible if b.occluded]
    assert 0.05 < len(occluded) / len(visible) < 0.9


def test_random_challenge_turns_heads_away(tmp_path):
    spec = SceneSpec(member="tester", challenge="random", seed=2, n_frames=40, n_people=12)
    ann = read_cvat(generate_scene(spec, tmp_path / "random").annotations_xml)
    # A turned-away face lies well inside the frame but is flagged outside (there is no face to see).
    turned = [b for t in ann.tracks for b in t.boxes
              if b.outside and b.x1 > 0 and b.y1 > 0 and b.x2 < ann.width and b.y2 < ann.height]
    assert turned
    # Turning through 45°–90° marks the face occluded; never both occluded and outside.
    assert any(b.occluded for t in ann.tracks for b in t.boxes)
    assert not any(b.occluded and b.outside for t in ann.tracks for b in t.boxes)


def test_intruders_are_extra_tracks(tmp_path):
    spec = SceneSpec(member="tester", challenge="intruder", seed=6, n_frames=3, n_people=10, n_intruders=3)
    scene = generate_scene(spec, tmp_path / "intruder")
    roles = [p["role"] for p in _manifest(scene)["people"]]
    assert roles.count("intruder") == 3 and roles.count("subject") == 1
    assert len(read_cvat(scene.annotations_xml).tracks) == 13


def _placed(challenge: str, seed: int, together: bool):
    """Frame 0's (x, z) of 24 people, of whom the 11th to 13th are the people to find."""
    from crowdkit.crowd.motion import plan_motion
    from crowdkit.crowd.scene import ScenePerson

    roles = ["crowd"] * 10 + ["subject", "member", "member"] + ["crowd"] * 11
    people = [ScenePerson(i + 1, f"p{i}", role, (Path("x.jpg"),)) for i, role in enumerate(roles)]
    spec = SceneSpec(member="t", challenge=challenge, seed=seed, n_frames=2, subjects_together=together)
    motion = plan_motion(spec, people, np.random.default_rng(seed))
    return np.stack([motion.x[0], motion.z[0]], axis=1)


TO_FIND = {10, 11, 12}


@pytest.mark.parametrize("seed", range(6))
def test_the_people_to_find_walk_together_in_the_middle(seed):
    together, anywhere = _placed("normal", seed, True), _placed("normal", seed, False)
    assert sorted(together[:, 1]) == pytest.approx(sorted(anywhere[:, 1]))  # the same places, dealt differently
    nearest_centre = lambda xz: set(np.argsort(np.linalg.norm(xz - xz.mean(axis=0), axis=1))[:3])  # noqa: E731
    assert nearest_centre(together) == TO_FIND
    assert nearest_centre(anywhere) != TO_FIND


@pytest.mark.parametrize("seed", range(6))
def test_in_a_compact_crowd_they_walk_in_the_front_row(seed):
    together, anywhere = _placed("compact", seed, True), _placed("compact", seed, False)
    front_row = lambda xz: set(np.argsort(xz[:, 1])[:7])  # noqa: E731 - 24 people stand 7 to a row
    assert TO_FIND <= front_row(together)
    assert not TO_FIND <= front_row(anywhere)
    row = together[list(front_row(together))]
    centre = row[:, 0].mean()
    assert np.abs(together[list(TO_FIND), 0] - centre).mean() < np.abs(row[:, 0] - centre).mean()


# --------------------------------------------------------------------------- a real detector


def _iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(x2 - x1, 0) * max(y2 - y1, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.slow
def test_mtcnn_finds_most_large_faces(near, mtcnn):
    ann = read_cvat(near.annotations_xml)
    frame = _frames(near.video)[1]
    truth = [b.xyxy for _, b in boxes_in_frame(ann, 1)
             if not b.occluded and b.y2 - b.y1 >= 48 and b.x1 > 0 and b.y1 > 0 and b.x2 < 960 and b.y2 < 540]
    assert len(truth) >= 4
    found = [d.box for d in mtcnn.detect(frame)]
    hits = sum(any(_iou(t, d) >= 0.4 for d in found) for t in truth)
    assert hits / len(truth) >= 0.8


@pytest.mark.slow
def test_the_costume_alone_is_not_a_face(mtcnn, lfw_dir):
    from crowdkit.crowd.params import CROWD_DETECTOR, CROWD_DETECTOR_OPTIONS
    from crowdkit.engine.detect import get_detector

    photo = read_image(lfw_dir / "Tony_Blair" / "Tony_Blair_0001.jpg")
    empty = np.hstack([render_figure(None, face_height=h, size=(260, 360)) for h in (40, 64, 96)])
    with_face = np.hstack([render_figure(photo, face_height=h, size=(260, 360)) for h in (40, 64, 96)])
    crowd_detector = get_detector(CROWD_DETECTOR, **CROWD_DETECTOR_OPTIONS[CROWD_DETECTOR])
    for detector in (mtcnn, crowd_detector):
        assert detector.detect(empty) == []
        assert len(detector.detect(with_face)) == 3


def test_cli_writes_a_scene(tmp_path, capsys):
    from crowdkit.cli import main

    out = tmp_path / "cli"
    code = main(["simulate", "--member", "tester", "--stand-in", "--challenge", "mask1", "--seed", "1", "--out", str(out),
                 "--frames", "2", "--people", "3", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert Path(printed["video"]).is_file() and set(printed["query_photos"]) == {"front", "side", "masked"}
