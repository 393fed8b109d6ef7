"""crowdkit.crowd.validate: the study's 20-px corner rule and the IoU rule on hand-made scenes."""
from __future__ import annotations

import pandas as pd
import pytest

from crowdkit.crowd.annotations import Annotations, Box, Track
from crowdkit.common.exceptions import AnnotationError, ConfigError
from crowdkit.common.metrics import Confusion
from crowdkit.common.geometry import iou_matrix
from crowdkit.crowd.validate import Outcome, summary_table, validate, validate_all


@pytest.fixture()
def scene() -> Annotations:
    # Alice (the subject) sits still at (100,100)-(160,180) in frames 0..4; Bob at (300,100)-(360,180) in frames 0..1
    alice = Track(1, "face", (Box(0, 100, 100, 160, 180),), {"identity": "Alice"})
    bob = Track(2, "face", (Box(0, 300, 100, 360, 180), Box(2, 300, 100, 360, 180, outside=True)), {"identity": "Bob"})
    return Annotations((alice, bob), frame_count=5, width=640, height=360)


def _table(rows):
    return pd.DataFrame(rows, columns=["frame", "x1", "y1", "x2", "y2", "distance", "decision"])


def test_four_outcomes_both_rules(scene):
    table = _table([
        (0, 101, 99, 161, 181, 0.3, True),    # Alice, accepted → TP
        (0, 300, 100, 360, 180, 0.9, False),  # Bob, rejected → TN
        (1, 302, 101, 359, 179, 0.4, True),   # Bob, accepted → FP
        (1, 98, 100, 158, 182, 0.8, False),   # Alice, rejected → FN
        (1, 500, 10, 540, 60, 0.2, True),     # nobody (unannotated face) accepted → FP
        (1, 500, 200, 540, 260, 0.9, False),  # nobody, rejected → TN
    ])
    for rule, result in validate_all(table, scene, "Alice").items():
        assert result.rule == rule
        assert list(result.outcomes.outcome) == ["TP", "TN", "FP", "FN", "FP", "TN"], rule
        assert result.counts == Confusion(tp=1, fp=2, tn=2, fn=1)
        assert list(result.outcomes.track.astype("float").fillna(-1)) == [1, 2, 2, 1, -1, -1]
        assert list(result.outcomes.identity) == ["Alice", "Bob", "Bob", "Alice", None, None]
        # Alice is annotated in frames 2, 3, 4 but nothing was detected there
        assert list(result.missed.frame) == [2, 3, 4] and set(result.missed.track) == {1}
        assert result.strict_counts == Confusion(tp=1, fp=2, tn=2, fn=4)
    outcomes = validate(table, scene, "Alice").as_outcomes()
    assert outcomes[0] == Outcome(frame=0, index=0, outcome="TP", track=1, identity="Alice")
    assert outcomes[4].track is None


def test_rules_disagree_on_a_loose_box(scene):
    # top-left x and bottom-right y within 20 px of Alice's, but a much smaller box: IoU ≈ 0.24
    table = _table([(0, 110, 150, 140, 175, 0.3, True)])
    study = validate(table, scene, "Alice", rule="study")
    iou = validate(table, scene, "Alice", rule="iou")
    assert study.outcomes.outcome.tolist() == ["TP"] and iou.outcomes.outcome.tolist() == ["FP"]
    assert iou.missed.frame.tolist() == [0, 1, 2, 3, 4]  # the loose box did not count as finding her
    assert study.outcomes.match_score.iloc[0] == 10


def test_study_tolerance_is_strict(scene):
    table = _table([(0, 119.9, 100, 179.9, 180, 0.3, True), (1, 120, 100, 180, 180, 0.3, True)])
    assert validate(table, scene, "Alice", rule="study").outcomes.outcome.tolist() == ["TP", "FP"]
    assert validate(table, scene, "Alice", rule="study", tolerance=21).outcomes.outcome.tolist() == ["TP", "TP"]


def test_duplicates_study_counts_both_iou_assigns_one(scene):
    table = _table([(0, 100, 100, 160, 180, 0.3, True), (0, 104, 104, 164, 184, 0.35, True)])
    assert validate(table, scene, "Alice", rule="study").counts == Confusion(tp=2)
    iou = validate(table, scene, "Alice", rule="iou")
    assert iou.counts == Confusion(tp=1, fp=1)
    assert iou.outcomes.outcome.tolist() == ["TP", "FP"]  # the better overlap wins


def test_one_to_one_assignment():
    # det 0 overlaps A and B equally; det 1 clearly belongs to A, so det 0 must take B
    a = Track(1, "face", (Box(0, 0, 0, 10, 10),), {"identity": "A"})
    b = Track(2, "face", (Box(0, 4, 0, 14, 10),), {"identity": "B"})
    ann = Annotations((a, b), frame_count=1, width=20, height=20)
    table = _table([(0, 2, 0, 12, 10, 0.1, True), (0, -1, 0, 9, 10, 0.9, False)])
    result = validate(table, ann, "B", rule="iou")
    assert result.outcomes.track.tolist() == [2, 1] and result.outcomes.outcome.tolist() == ["TP", "TN"]


def test_subject_wins_when_study_rule_is_ambiguous():
    a = Track(1, "face", (Box(0, 0, 0, 30, 30),), {"identity": "A"})
    b = Track(2, "face", (Box(0, 5, 0, 35, 32),), {"identity": "B"})
    ann = Annotations((a, b), frame_count=1, width=50, height=50)
    table = _table([(0, 5, 0, 35, 32, 0.2, True)])  # exactly B's box, but also within 20 px of A's corners
    assert validate(table, ann, "A", rule="study").outcomes.outcome.tolist() == ["TP"]
    assert validate(table, ann, "A", rule="iou").outcomes.outcome.tolist() == ["FP"]


def test_frames_searched_limit_missed(scene):
    table = _table([(0, 100, 100, 160, 180, 0.3, True)])
    result = validate(table, scene, 1, rule="iou", frames=range(0, 5, 2))
    assert result.missed.frame.tolist() == [2, 4]


def test_interpolated_boxes_are_used():
    moving = Track(1, "face", (Box(0, 0, 0, 20, 20), Box(10, 100, 0, 120, 20)), {"identity": "M"})
    ann = Annotations((moving,), frame_count=11, width=200, height=50)
    table = _table([(5, 50, 0, 70, 20, 0.1, True)])
    assert validate(table, ann, "M", rule="iou").outcomes.outcome.tolist() == ["TP"]


def test_empty_detections(scene):
    result = validate(_table([]), scene, "Alice", rule="iou")
    assert result.counts == Confusion() and len(result.missed) == 5
    assert summary_table({"iou": result}).loc["iou", "missed"] == 5


def test_errors(scene):
    table = _table([(0, 1, 1, 2, 2, 0.1, True)])
    with pytest.raises(AnnotationError, match="no track has identity 'Carol'.*Alice, Bob"):
        validate(table, scene, "Carol")
    with pytest.raises(AnnotationError, match=r"no track with id \[9\]"):
        validate(table, scene, 9)
    with pytest.raises(ConfigError, match="unknown validation rule"):
        validate(table, scene, "Alice", rule="centre")
    with pytest.raises(ConfigError, match="lacks column.*decision"):
        validate(table.drop(columns="decision"), scene, "Alice")


def test_iou_matrix():
    iou = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]])
    assert iou.round(4).tolist() == [[1.0, 0.3333, 0.0, 0.0]]


def test_examples_per_outcome(scene):
    from crowdkit.crowd.validate import examples

    table = _table([(0, 100, 100, 160, 180, d, True) for d in (0.1, 0.2, 0.3)]
                   + [(0, 500, 10, 540, 60, 0.9, False)])
    picked = examples(validate(table, scene, "Alice").outcomes, per_outcome=2)
    assert picked.outcome.tolist() == ["TP", "TP", "TN"] and picked.distance.is_monotonic_increasing
    assert examples(validate(table, scene, "Alice").outcomes, seed=1).index.isin(table.index).all()
    assert examples(validate(_table([]), scene, "Alice").outcomes).empty


def test_chain_from_cvat_file_to_track_decisions(tmp_path):
    """CVAT file → visible boxes → fake detections → both rules → tracks → per-track decisions."""
    import numpy as np

    from crowdkit.crowd.annotations import visible_boxes
    from crowdkit.crowd.cvat import read_cvat, write_cvat_video
    from crowdkit.crowd.threshold import mean_plus_k_sigma, what_changes
    from crowdkit.crowd.track import decide_per_track, link_detections

    people = []
    for i, name in enumerate(["Subject", "P1", "P2", "P3"]):
        keys = (Box(0, 50 + 200 * i, 100, 90 + 200 * i, 150), Box(29, 80 + 200 * i, 200, 130 + 200 * i, 260))
        people.append(Track(i, "face", keys, {"identity": name}))
    write_cvat_video(tmp_path / "scene.xml", Annotations(tuple(people), frame_count=30, width=960, height=540))
    ann = read_cvat(tmp_path / "scene.xml")
    rng = np.random.default_rng(0)
    rows = []
    for frame, pairs in visible_boxes(ann, frames=range(0, 30, 2)).items():
        for track, box in pairs:
            if track.identity == "Subject" and frame in (10, 12):
                continue  # missed by the detector
            distance = rng.normal(0.45 if track.identity == "Subject" else 0.85, 0.05)
            if (frame, track.identity) in ((4, "Subject"), (6, "P1")):
                distance = {"Subject": 0.8, "P1": 0.5}[track.identity]  # a blurred frame, a look-alike
            jitter = rng.normal(0, 1.5, 4)
            rows.append((frame, *(np.array(box.xyxy) + jitter), distance, distance <= 0.65))
    table = _table(rows)
    results = validate_all(table, ann, "Subject", frames=range(0, 30, 2))
    for result in results.values():
        assert result.missed.frame.tolist() == [10, 12]
        assert (result.counts.fn, result.counts.fp) == (1, 1)
        assert result.counts.total == len(table) and result.counts.positives == 13
    table["track"] = link_detections(table, max_gap=6)
    assert table.track.nunique() == 4  # frames 10 and 12 missed: a 6-frame gap, bridged
    tracked = decide_per_track(table, rule="mean_of_k_best", k=3, threshold=0.65)
    by_track = validate(tracked.assign(decision=tracked.track_decision), ann, "Subject", rule="iou",
                        frames=range(0, 30, 2))
    assert by_track.counts.fn == 0 and by_track.counts.fp == 0  # the track view fixes every per-frame error
    tp = results["iou"].outcomes.query("outcome == 'TP'").distance
    change = what_changes(results["iou"].outcomes, old=0.65, new=mean_plus_k_sigma(tp))
    assert change.after.total == change.before.total == len(table)
