"""One crowd run end to end on tiny simulated scenes: tables, reruns from the cache, mask runs with nothing found."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from crowdkit.crowd import run as crowd
from crowdkit.engine import faces
from crowdkit.crowd.run import ALL_PHOTOS, CrowdRunParams, run_crowd
from crowdkit.common.exceptions import ConfigError, DataNotFoundError

MEMBER = "Colin_Powell"  # an LFW identity with many photos: the person to find


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One CROWDKIT_HOME for the module: scenes and face caches are shared between its tests."""
    patch = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("crowd_home")
    patch.setenv("CROWDKIT_HOME", str(path))
    yield path
    patch.undo()


@pytest.fixture(scope="module")
def tiny(home, tmp_path_factory):
    """A 20-frame normal scene searched every 5th frame, tables saved into a run folder."""
    run_dir = tmp_path_factory.mktemp("run") / "colin-normal"
    params = CrowdRunParams(member=MEMBER, challenge="normal", seed=0, max_frames=20, frame_stride=5)
    return run_crowd(params, run_dir=run_dir, progress=False), run_dir


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


@pytest.mark.slow  # shares the tiny run (scene render + MTCNN + dlib)
def test_summary_tables_and_reported_checks(tiny):
    result, _ = tiny
    performance = result.performance.assign(run="colin-normal")
    table = crowd.summary_table(performance)
    assert table.shape == (1, 4)
    gains = crowd.gain_table(performance, compare="level")
    assert np.allclose(gains["gain"], gains["track"] - gains["frame"], equal_nan=True)
    queries = crowd.gain_table(performance, compare="query")
    assert list(queries.columns) == ["single", ALL_PHOTOS, "gain"]
    reported = pd.DataFrame({"member": ["A", "B"], "challenge": ["normal", "normal"], "TP": [8, 5], "FP": [2, 0],
                             "TN": [80, 10], "FN": [10, 5], "precision": [0.8, 0.9], "recall": [0.444, 0.5],
                             "f1": [np.nan, 0.667], "accuracy": [0.88, 0.75]})
    beside = crowd.reported_beside_ours(reported, performance)
    assert list(beside["precision_ok"]) == [True, False]  # 5/5 = 1.0 was printed as 0.9
    assert "ours_f1" in beside and beside["ours_f1"].notna().all()


@pytest.mark.parametrize("kwargs, error", [
    ({"challenge": "party"}, ConfigError),
    ({"challenge": "normal", "video": "v.mp4"}, ConfigError),
    ({"challenge": "normal", "frame_stride": 0}, ConfigError),
    ({"challenge": "normal", "matching_rule": "overlap"}, ConfigError),
    ({"challenge": "normal", "metric": "manhattan"}, ConfigError),
])
def test_bad_parameters_are_refused(kwargs, error):
    with pytest.raises(error):
        CrowdRunParams(member=MEMBER, **kwargs)


def test_missing_inputs_say_which(tmp_path):
    params = CrowdRunParams(member=MEMBER, challenge="normal", video=str(tmp_path / "nope.mp4"),
                            annotations=str(tmp_path / "nope.xml"), query_photos=[str(tmp_path / "me.jpg")])
    with pytest.raises(DataNotFoundError, match="nope.mp4"):
        crowd.prepare_inputs(params)


def test_threshold_defaults():
    class Fake:
        def __init__(self, name):
            self.name = name
            self.thresholds = {"cosine": 0.4, "euclidean": 1.0}

    base = dict(member=MEMBER, challenge="normal")
    assert crowd.resolve_threshold(CrowdRunParams(**base, model="arcface"), Fake("arcface"))[0] == 0.65
    assert crowd.resolve_threshold(CrowdRunParams(**base), Fake("dlib"))[0] == 0.4
    assert crowd.resolve_threshold(CrowdRunParams(**base, metric="euclidean"), Fake("arcface"))[0] == 1.0
    assert crowd.resolve_threshold(CrowdRunParams(**base, threshold=0.3), Fake("dlib")) == (0.3, "given")


@pytest.mark.slow  # shares the tiny run above
def test_every_figure_draws(tiny):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result, _ = tiny
    figures = [crowd.plot_queries(result), crowd.plot_overview(result), crowd.plot_levels(result),
               crowd.plot_examples(result, "study"), crowd.plot_curves(result, "iou"),
               crowd.plot_kde(result, "study").figure, crowd.plot_distance_vs_size(result).figure,
               crowd.plot_summary(result.performance)]
    assert all(fig.axes for fig in figures)
    plt.close("all")


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
