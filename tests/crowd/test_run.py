"""One crowd run end to end on tiny simulated scenes: tables, reruns from the cache, mask runs with nothing found.

The tiny run and its CROWDKIT_HOME are fixtures of ``tests/crowd/conftest.py``.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from crowdkit.common.exceptions import DataNotFoundError
from crowdkit.crowd.inputs import prepare_inputs
from crowdkit.crowd.params import ALL_PHOTOS, CrowdRunParams
from crowdkit.crowd.run import provenance_tables, run_crowd
from crowdkit.engine import faces

MEMBER = "Colin_Powell"  # an LFW identity with many photos: the person to find


def _cache_files(home):
    return sorted((home / "cache" / "faces").rglob("*.npz"))


@pytest.mark.slow  # renders a scene and loads MTCNN + dlib: ~10-30 s on 2 busy cores
def test_every_detection_gets_one_outcome_under_each_rule(tiny):
    result, _ = tiny
    n = len(result.detections)
    assert n > 0
    assert result.frames_searched == (0, 5, 10, 15)
    assert set(result.detections["frame"]) <= set(result.frames_searched)
    for rule in ("study", "iou"):
        counts = result.validations[rule].counts
        assert counts.tp + counts.fp + counts.tn + counts.fn == n
        assert len(result.track_validations[rule].outcomes) == n
    table = result.performance
    assert set(table["rule"]) == {"study", "iou"} and set(table["level"]) == {"frame", "track"}
    assert (table[["TP", "FP", "TN", "FN"]].sum(axis=1) == n).all()
    # the ground truth does not depend on the query or the level: positives agree within a rule
    assert table.groupby("rule")["positives"].nunique().eq(1).all()
    main = result.main_performance()
    assert len(main) == 4 and (main["query"] == "front").all()
    assert set(table["query"]) == {"front", "side", ALL_PHOTOS}
    iou = main.loc[("iou", "frame")]
    assert iou["missed"] == len(result.validations["iou"].missed)
    if iou["positives"] + iou["missed"]:
        assert iou["strict_recall"] == pytest.approx(iou["TP"] / (iou["positives"] + iou["missed"]))


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_distances_and_decisions(tiny):
    result, _ = tiny
    table = result.detections
    assert result.threshold == pytest.approx(0.07) and "dlib" in result.threshold_source
    assert np.allclose(table["distance"], table["distance_front"])
    assert np.allclose(table["distance_all"], table[["distance_front", "distance_side"]].min(axis=1))
    assert (table["decision"] == (table["distance"] <= result.threshold)).all()
    # a track's decision is the same on every one of its faces
    assert table.groupby("face_track")["track_decision"].nunique().eq(1).all()


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_threshold_analysis_and_examples(tiny):
    result, _ = tiny
    for rule, analysis in result.thresholds.items():
        outcomes = result.validations[rule].outcomes
        assert analysis.tp_distances.size == (outcomes["outcome"] == "TP").sum()
        assert len(analysis.sweep) >= 1
        if analysis.tp_distances.size:
            expected = analysis.tp_distances.mean() + 2 * analysis.tp_distances.std()
            assert analysis.mean_plus_2sigma == pytest.approx(expected)
        else:
            assert math.isnan(analysis.mean_plus_2sigma) and analysis.change is None
        examples = result.examples[rule]
        assert examples.groupby("outcome").size().le(2).all()
        assert len(result.thumbnails[rule]) == len(examples)
        assert all(t.ndim == 3 and t.dtype == np.uint8 and t.size for t in result.thumbnails[rule])


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_tables_are_saved_for_the_summary(tiny):
    result, run_dir = tiny
    performance = pd.read_parquet(run_dir / "performance.parquet")
    assert len(performance) == len(result.performance)
    detections = pd.read_parquet(run_dir / "detections.parquet")
    assert len(detections) == len(result.detections) and {"outcome", "member", "challenge"} <= set(detections)
    assert {"thresholds.parquet", "queries.parquet", "provenance.json"} <= {p.name for p in run_dir.iterdir()}
    provenance = json.loads((run_dir / "provenance.json").read_text())
    assert str(result.inputs.video) in provenance["checksums"]
    assert provenance["parameters"]["member"] == MEMBER and "numpy" in provenance["versions"]
    assert not list(run_dir.glob("*.part*"))  # atomic writes leave no temporary files


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_every_rate_is_saved_with_its_interval_around_it(tiny):
    from crowdkit.crowd.intervals import INTERVAL_RATES

    result, run_dir = tiny
    saved = pd.read_parquet(run_dir / "performance.parquet")
    assert {f"{rate}_{side}" for rate in INTERVAL_RATES for side in ("low", "high")} <= set(saved.columns)
    for rate in INTERVAL_RATES:
        defined = saved[rate].notna() & saved[f"{rate}_low"].notna()
        assert (saved.loc[defined, f"{rate}_low"] <= saved.loc[defined, rate] + 1e-12).all(), rate
        assert (saved.loc[defined, rate] <= saved.loc[defined, f"{rate}_high"] + 1e-12).all(), rate
        assert saved.loc[saved[rate].isna(), f"{rate}_low"].isna().all(), rate  # undefined stays undefined
    shown = result.performance_table()
    assert shown["f1"].str.contains(r"\[|undefined").all() and not any(c.endswith("_low") for c in shown)
    intervals = pd.read_parquet(run_dir / "study_intervals.parquet")
    assert list(intervals["figure"]) == ["precision", "recall", "F1", "accuracy"]
    assert all(not a.band.empty for a in result.thresholds.values() if len(a.sweep))


@pytest.mark.slow  # renders a scene and loads MTCNN + dlib: ~10-30 s on 2 busy cores
def test_rerun_reads_the_cache_and_an_interrupted_run_resumes(tiny, home):
    result, _ = tiny
    assert result.cache_entries_written > 0
    params = result.params
    faces.forget()  # drop what this process remembers: only the disk cache is left
    again = run_crowd(params, progress=False)
    assert again.cache_entries_written == 0
    pd.testing.assert_frame_equal(again.detections, result.detections)
    # an interrupted run leaves some frames' entries and not others: delete half of them
    files = _cache_files(home)
    for path in files[::2]:
        path.unlink()
    faces.forget()
    resumed = run_crowd(params, progress=False)
    assert resumed.cache_entries_written == len(files[::2])
    assert len(_cache_files(home)) == len(files)
    pd.testing.assert_frame_equal(resumed.detections, result.detections)


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_a_real_video_with_its_cvat_export_takes_the_same_path(tiny):
    result, _ = tiny
    scene = result.inputs.scene
    params = CrowdRunParams(member=scene.subject, challenge="my-video", video=str(scene.video),
                            annotations=str(scene.annotations_xml), query_photos=[str(scene.query_photos["front"])],
                            frame_stride=5, max_frames=20)
    own = run_crowd(params, progress=False)
    assert own.cache_entries_written == 0  # the same frames: found in the cache
    assert not own.inputs.simulated and own.main_query == "front"
    pd.testing.assert_frame_equal(own.performance.drop(columns=["challenge", "query"]),
                                  result.performance.query("query != 'side' and query != 'all'")
                                  .reset_index(drop=True).drop(columns=["challenge", "query"]))


@pytest.mark.slow  # renders a scene and loads MTCNN + dlib: ~10-30 s on 2 busy cores
def test_a_mask_run_with_no_face_found_reports_undefined_rates(home):
    # frame 0 of a scene: the crowd is far away, every face is below MTCNN's smallest size
    params = CrowdRunParams(member=MEMBER, challenge="mask1", seed=0, max_frames=1, frame_stride=1)
    result = run_crowd(params, progress=False)
    assert result.detections.empty
    assert len(result.validations["iou"].missed) >= 1  # the subject was in view, never detected
    main = result.main_performance()
    for column in ("precision", "recall", "f1", "accuracy"):
        assert main[column].isna().all(), column
    assert main.loc[("iou", "frame"), "strict_recall"] == 0.0  # missed faces: a defined recall of 0
    assert "undefined" in set(result.main_performance(display=True)["precision"])
    assert all(math.isnan(a.mean_plus_2sigma) and a.roc.empty for a in result.thresholds.values())


@pytest.mark.slow  # renders a scene and loads MTCNN + dlib: ~10-30 s on 2 busy cores
def test_mask2_searches_with_the_masked_photo_on_the_mask1_scene(home):
    mask1 = run_crowd(CrowdRunParams(member=MEMBER, challenge="mask1", max_frames=20, frame_stride=5), progress=False)
    mask2 = run_crowd(CrowdRunParams(member=MEMBER, challenge="mask2", max_frames=20, frame_stride=5), progress=False)
    assert mask2.inputs.video == mask1.inputs.video and mask2.cache_entries_written == 0
    assert mask1.main_query == "front" and mask2.main_query == "masked"
    assert set(mask2.performance["query"]) == {"front", "side", "masked", ALL_PHOTOS}
    main = mask2.main_performance()
    positives = main.loc[("iou", "frame"), "positives"]
    if positives == 0:
        assert math.isnan(main.loc[("iou", "frame"), "recall"])


def test_missing_inputs_say_which(tmp_path):
    params = CrowdRunParams(member=MEMBER, challenge="normal", video=str(tmp_path / "nope.mp4"),
                            annotations=str(tmp_path / "nope.xml"), query_photos=[str(tmp_path / "me.jpg")])
    with pytest.raises(DataNotFoundError, match="nope.mp4"):
        prepare_inputs(params)


@pytest.mark.slow  # shares the tiny run above
def test_bad_real_inputs_fail_before_any_search(tiny, home, tmp_path):
    import cv2

    from crowdkit.common.exceptions import AnnotationError, NoFaceError

    result, _ = tiny
    scene = result.inputs.scene
    blank = tmp_path / "wall.jpg"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 200, np.uint8))
    no_face = CrowdRunParams(member=scene.subject, challenge="mine", video=str(scene.video),
                             annotations=str(scene.annotations_xml), query_photos=[str(blank)])
    with pytest.raises(NoFaceError, match="wall.jpg"):
        run_crowd(no_face, progress=False)
    short = run_crowd(CrowdRunParams(member=MEMBER, challenge="mask1", max_frames=1, frame_stride=1),
                      progress=False).inputs.video  # a 1-frame video: the 20-frame annotations name later frames
    wrong = CrowdRunParams(member=scene.subject, challenge="mine", video=str(short),
                           annotations=str(scene.annotations_xml), query_photos=[str(scene.query_photos["front"])])
    with pytest.raises(AnnotationError, match="frame"):
        run_crowd(wrong, run_dir=tmp_path / "wrong", progress=False)
    assert not (tmp_path / "wrong").exists()  # nothing half-written


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_the_page_tables_come_from_the_result(tiny):
    result, _ = tiny
    assert set(result.performance_table().columns) & {"member", "challenge", "query", "detection_rate"} == set()
    assert list(result.rule_comparison().index) == ["study", "iou"]
    assert list(result.timing_table().index) == ["wall seconds", "CPU seconds"]
    tracks = result.tracks()
    assert tracks["frames"].sum() == len(result.detections)
    assert len(result.track_table(best=3)) == min(3, len(tracks))
    from crowdkit.common import config

    values, checksums, versions = provenance_tables(result)
    video = str(result.inputs.video).replace(str(config.home()), "$CROWDKIT_HOME", 1)  # the page shows no home path
    assert video in checksums.index and "numpy" in versions.columns
    assert "threshold" in values.index
