"""crowdkit.crowd.annotations: real CVAT/MOT exports, interpolation, round trip, hostile and broken files."""
from __future__ import annotations

import json

import pytest

from crowdkit.crowd.annotations import (Annotations, Box, Track, box_at, boxes_in_frame, summarize,
                                        validate_against_video, visible_boxes)
from crowdkit.crowd.cvat import read_cvat, write_cvat_video
from crowdkit.crowd.mot import read_mot
from crowdkit.common.exceptions import AnnotationError


@pytest.fixture(scope="module")
def assets(fixtures_dir):
    return fixtures_dir / "annotation_formats" / "tests" / "assets"


# ---------------------------------------------------------------- real exports


def test_cvat_video_fixture(assets):
    ann = read_cvat(assets / "cvat_dataset" / "for_video" / "annotations.xml")
    assert ann.format == "cvat-video-1.1"
    assert (ann.width, ann.height) == (25, 20)
    assert (ann.frame_count, ann.start_frame, ann.frame_step, ann.stop_frame) == (4, 10, 3, 19)
    assert list(ann.frames) == [10, 13, 16, 19]
    assert ann.labels == ("klhg", "z U k", "II")
    assert len(ann.tracks) == 1  # the points and polyline tracks are not boxes
    assert ann.ignored_shapes == {"points": 2, "polyline": 2}
    track = ann.tracks[0]
    assert track.label == "II" and [b.frame for b in track.boxes] == [10, 13, 16]
    assert [b.outside for b in track.boxes] == [False, True, True]
    assert track.boxes[0].occluded and track.boxes[0].xyxy == (3.0, 4.0, 10.0, 5.0)
    # visible at frame 10 only: outside from frame 13 on
    assert [f for f in ann.frames if boxes_in_frame(ann, f)] == [10]
    # between 10 and the outside keyframe at 13, CVAT interpolates towards the outside box's coordinates
    (_, box), = boxes_in_frame(ann, 11)
    assert box.x1 == pytest.approx(3 + 4 / 3) and box.occluded and not box.keyframe


def test_cvat_images_task_fixture(assets):
    ann = read_cvat(assets / "cvat_dataset" / "for_images" / "export_task" / "train.xml")
    assert ann.format == "cvat-images-1.1" and ann.mode == "annotation"
    assert ann.frame_count == 2 and dict(ann.frame_names) == {0: "img0.jpg", 1: "img1.jpg"}
    assert dict(ann.frame_sizes) == {0: (8, 8), 1: (10, 10)}
    (track,) = ann.tracks
    assert track.label == "label1" and track.attributes == {"a1": "true", "a2": "v3", "a3": "0003", "a4": "2.4"}
    assert track.boxes[0].xyxy == (0.0, 2.0, 4.0, 4.0) and track.boxes[0].occluded
    assert ann.ignored_shapes == {"polyline": 1, "polygon": 1, "points": 1}
    # a one-box image annotation does not persist into the next image
    assert boxes_in_frame(ann, 1) == []


def test_cvat_images_project_fixture(assets):
    ann = read_cvat(assets / "cvat_dataset" / "for_images" / "export_project" / "annotations.xml")
    assert ann.frame_count == 6  # ids repeat across subsets: frames are numbered in file order
    assert ann.frame_names[0] == "Test/img0.jpg" and ann.frame_names[5] == "Validation/img1.jpg"
    assert len(ann.tracks) == 3 and {b.frame for t in ann.tracks for b in t.boxes} == {0, 2, 4}
    assert ann.labels == ("label1", "label2")


@pytest.mark.parametrize("where", ["mot_seq/gt/gt.txt", "mot_seq_with_seqinfo"])
def test_mot_fixtures(assets, where):
    ann = read_mot(assets / "mot_dataset" / where)
    (track,) = ann.tracks
    (box,) = track.boxes
    assert (box.frame, box.xyxy) == (0, (0.0, 4.0, 4.0, 12.0))  # MOT frame 1 → 0; x,y,w,h → corners
    assert track.label == "label_2"  # class 3 → third line of labels.txt
    assert box.attributes == {"conf": "1", "visibility": "1"} and not box.occluded
    if where == "mot_seq_with_seqinfo":
        assert (ann.width, ann.height, ann.frame_count) == (16, 16, 1)
        assert ann.frame_names == {0: "000001.jpg"}


def test_every_fixture_file_opens(assets):
    xml_files = sorted((assets / "cvat_dataset").rglob("*.xml"))
    assert len(xml_files) == 3
    for path in xml_files:
        summary = summarize(read_cvat(path))
        json.dumps(summary)
        assert summary["boxes"] >= 1


# ---------------------------------------------------------------- interpolation rules


def _track(*boxes: Box, id=0, identity="alice") -> Track:
    return Track(id, "face", tuple(boxes), {"identity": identity})


def test_interpolation_persistence_and_outside():
    track = _track(Box(0, 0, 0, 10, 10), Box(10, 100, 0, 110, 20), Box(20, 0, 0, 1, 1, outside=True),
                   Box(25, 50, 50, 60, 60))
    ann = Annotations((track,), frame_count=30, width=200, height=100)
    assert box_at(track, 5, last_frame=29).xyxy == (50, 0, 60, 15)
    assert box_at(track, 15, last_frame=29).xyxy == (50, 0, 55.5, 10.5)  # towards the outside keyframe
    assert box_at(track, 20, last_frame=29) is None
    assert box_at(track, 22, last_frame=29) is None  # hidden until the next keyframe
    assert box_at(track, 29, last_frame=29).xyxy == (50, 50, 60, 60)  # persists after its last keyframe
    assert box_at(track, 30, last_frame=29) is None  # …up to the task's end
    per_frame = visible_boxes(ann)
    assert sorted(per_frame) == list(range(0, 20)) + list(range(25, 30))
    for frame in (0, 7, 19, 25, 29):
        assert [(t.id, b) for t, b in boxes_in_frame(ann, frame)] == [(t.id, b) for t, b in per_frame[frame]]


# ---------------------------------------------------------------- writing


def _scene() -> Annotations:
    alice = _track(Box(0, 10, 20, 40, 60), Box(5, 20, 20, 50, 60, occluded=True), Box(9, 20, 20, 50, 60, outside=True),
                   id=3, identity="Alice_Smith")
    bob = Track(7, "face", (Box(2, 100.25, 20.5, 130.75, 60, attributes={"blur": "yes"}),
                            Box(8, 110, 25, 140, 65, keyframe=False, attributes={"blur": "no"})), {"identity": "Bob"})
    return Annotations((alice, bob), frame_count=12, width=960, height=540, labels=("face",), source="scene.xml")


def test_write_read_round_trip(tmp_path):
    original = _scene()
    path = tmp_path / "out" / "scene.xml"
    write_cvat_video(path, original)
    text = path.read_text()
    assert text.startswith("<?xml") and "<mode>interpolation</mode>" in text and "<name>identity</name>" in text
    back = read_cvat(path)
    assert back.tracks == original.tracks
    assert (back.frame_count, back.width, back.height, back.labels) == (12, 960, 540, ("face",))
    assert back.identities() == ["Alice_Smith", "Bob"]
    assert not list(tmp_path.joinpath("out").glob(".*part*"))  # no temporary left behind
    for frame in range(12):
        assert [(t.id, b) for t, b in boxes_in_frame(back, frame)] == \
               [(t.id, b) for t, b in boxes_in_frame(original, frame)]


def test_write_images_mode_adds_outside(tmp_path, assets):
    ann = read_cvat(assets / "cvat_dataset" / "for_images" / "export_task" / "train.xml")
    write_cvat_video(tmp_path / "v.xml", ann)
    back = read_cvat(tmp_path / "v.xml")
    assert boxes_in_frame(back, 0) and not boxes_in_frame(back, 1)


def test_write_refuses_frames_beyond_task_and_leaves_nothing(tmp_path):
    bad = Annotations((_track(Box(50, 0, 0, 1, 1)),), frame_count=10, width=10, height=10)
    target = tmp_path / "bad.xml"
    with pytest.raises(AnnotationError, match="frame 50"):
        write_cvat_video(target, bad)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- bad input


def _write(tmp_path, text: str, name="a.xml"):
    path = tmp_path / name
    path.write_text(text)
    return path


VIDEO = """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><size>{size}</size><mode>interpolation</mode>
<start_frame>0</start_frame><stop_frame>{stop}</stop_frame>
<original_size><width>100</width><height>100</height></original_size></task></meta>
<track id="0" label="face">{boxes}</track></annotations>"""


def test_billion_laughs_refused(tmp_path):
    lol = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
           + ']>\n<annotations>&lol9;</annotations>')
    with pytest.raises(AnnotationError, match="refused.*entities"):
        read_cvat(_write(tmp_path, lol))


def test_external_entity_refused(tmp_path):
    xxe = ('<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
           '<annotations><version>&xxe;</version></annotations>')
    with pytest.raises(AnnotationError, match="refused") as info:
        read_cvat(_write(tmp_path, xxe))
    assert "root:" not in str(info.value)


def test_malformed_xml_names_file_and_line(tmp_path):
    path = _write(tmp_path, "<annotations>\n<track id='0'>\n<box frame='1'\n</annotations>")
    with pytest.raises(AnnotationError, match=r"a\.xml: malformed XML at line \d+"):
        read_cvat(path)


def test_unknown_root(tmp_path):
    with pytest.raises(AnnotationError, match="root element is <dataset>"):
        read_cvat(_write(tmp_path, "<dataset/>"))


def test_missing_file(tmp_path):
    with pytest.raises(AnnotationError, match="no such annotation file"):
        read_cvat(tmp_path / "nope.xml")


@pytest.mark.parametrize("box, message", [
    ('<box frame="3" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="5"/>', "lacks ybr"),
    ('<box frame="3" outside="0" occluded="0" keyframe="1" xtl="9" ytl="1" xbr="5" ybr="4"/>', "xbr < xtl"),
    ('<box frame="3" outside="0" occluded="0" keyframe="1" xtl="a" ytl="1" xbr="5" ybr="4"/>', "non-numeric"),
    ('<box frame="12" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="5" ybr="4"/>',
     "frame 12 lies outside the task's frames 0..9"),
])
def test_bad_boxes(tmp_path, box, message):
    with pytest.raises(AnnotationError, match=message):
        read_cvat(_write(tmp_path, VIDEO.format(size=10, stop=9, boxes=box)))


def test_validate_against_video(tmp_path):
    box = '<box frame="8" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="5" ybr="4"/>'
    ann = read_cvat(_write(tmp_path, VIDEO.format(size=10, stop=9, boxes=box)))
    validate_against_video(ann, 10)
    with pytest.raises(AnnotationError, match="frame 8 but the video has 5 frames"):
        validate_against_video(ann, 5)
    with pytest.raises(AnnotationError, match="declares frames 0..9"):
        validate_against_video(ann, 9)


def test_mot_bad_rows(tmp_path):
    (tmp_path / "gt.txt").write_text("1,1,0,0,4,4,1,1,1\n2,1,0,0,four,4,1,1,1\n")
    with pytest.raises(AnnotationError, match="line 2 has a non-numeric"):
        read_mot(tmp_path / "gt.txt")
    (tmp_path / "gt.txt").write_text("1,1,0,0\n")
    with pytest.raises(AnnotationError, match="line 1 has 4 fields"):
        read_mot(tmp_path / "gt.txt")


def test_mot_tracks_and_occlusion(tmp_path):
    (tmp_path / "gt.txt").write_text("1,5,10,10,20,20,1,1,1.0\n2,5,12,10,20,20,1,1,0.2\n1,-1,0,0,5,5,0,1,1\n")
    ann = read_mot(tmp_path / "gt.txt")
    assert [t.id for t in ann.tracks] == [5, 6] and ann.frame_count == 2
    assert [b.occluded for b in ann.tracks[0].boxes] == [False, True]
    assert [len(boxes_in_frame(ann, f)) for f in (0, 1)] == [2, 1]


# ---------------------------------------------------------------- CLI


def main(argv):
    """Run only the annotations verbs (other groups may not be importable in every checkout)."""
    import argparse
    import sys

    import importlib

    # not `from crowdkit.cli import annotations`: the package's `from __future__ import annotations` shadows it
    group = importlib.import_module("crowdkit.cli.annotations")

    parser = argparse.ArgumentParser(prog="crowdkit")
    group.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except AnnotationError as error:
        print(f"crowdkit {args.command}: error: {error}", file=sys.stderr)
        return 2


def test_cli_summary_json(assets, capsys):
    from crowdkit.cli import COMMAND_MODULES

    assert "annotations" in COMMAND_MODULES
    assert main(["annotations", "summary", str(assets / "cvat_dataset" / "for_video" / "annotations.xml"),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tracks"] == 1 and summary["boxes"] == 3 and summary["frames"] == 4


def test_cli_summary_text_and_error(assets, tmp_path, capsys):
    assert main(["annotations", "summary", str(assets / "mot_dataset" / "mot_seq_with_seqinfo")]) == 0
    assert "tracks" in capsys.readouterr().out
    assert main(["annotations", "summary", str(_write(tmp_path, "<annotations"))]) == 2
    assert "malformed XML" in capsys.readouterr().err


def test_zip_export_and_job_meta(tmp_path, assets):
    import zipfile

    source = assets / "cvat_dataset" / "for_video" / "annotations.xml"
    with zipfile.ZipFile(tmp_path / "task.zip", "w") as archive:
        archive.write(source, "annotations.xml")
        archive.writestr("images/frame_000010.png", b"")
    assert read_cvat(tmp_path / "task.zip").tracks == read_cvat(source).tracks
    job = source.read_text().replace("<task>", "<job>").replace("</task>", "</job>")
    ann = read_cvat(_write(tmp_path, job, "job.xml"))
    assert (ann.frame_count, ann.start_frame, ann.frame_step, ann.width) == (4, 10, 3, 25)
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("annotations.xml", "<annotations><track></annotations>")
    with pytest.raises(AnnotationError, match=r"bad\.zip!annotations\.xml: malformed XML"):
        read_cvat(tmp_path / "bad.zip")


def test_rotation_and_off_grid_are_reported(tmp_path, caplog):
    box = ('<box frame="3" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="5" ybr="4" rotation="15"/>')
    text = VIDEO.format(size=10, stop=9, boxes=box).replace("<start_frame>0</start_frame>",
                                                           "<start_frame>0</start_frame><frame_filter>step=2</frame_filter>")
    with caplog.at_level("WARNING", logger="crowdkit.crowd.cvat"):
        ann = read_cvat(_write(tmp_path, text))
    assert ann.tracks[0].boxes[0].xyxy == (1.0, 1.0, 5.0, 4.0)
    assert "rotated" in caplog.text and "not on the task's frame grid" in caplog.text
