"""The detector study: ground truth, one-to-one matching, the table, the figure and the verdict prose."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from crowdkit.common.exceptions import ConfigError
from crowdkit.crowd.detector_study import (DetectorChoice, DetectorStudy, default_markdown, height_bin_labels,
                                           measure_scene, measure_scenes, plot_recall_by_height, study_scene,
                                           verdict)


def _study(found: dict[str, list[bool]], heights: list[float], false: dict[str, int], ms: dict[str, float],
           frames: int = 10) -> DetectorStudy:
    """A hand-made study: one face per height, found or not by each detector."""
    faces = pd.DataFrame({"frame": np.arange(len(heights)) % frames, "track": np.arange(len(heights)),
                          "height": heights, **found})
    timings = pd.DataFrame([(d, f, ms[d]) for d in found for f in range(frames)], columns=["detector", "frame", "ms"])
    return DetectorStudy("hand-made", tuple(range(frames)), tuple(found), faces,
                         pd.DataFrame([(d, false[d], 0) for d in found], columns=["detector", "false", "at_border"]),
                         timings)


def test_height_bins_are_labelled_from_their_edges():
    assert height_bin_labels() == ["<16", "16–24", "24–32", "32–48", "48–64", "≥64"]
    assert height_bin_labels((0, 10, math.inf)) == ["<10", "≥10"]


def test_recall_by_height_counts_faces_per_bin_and_the_table_has_one_row_per_detector():
    heights = [10.0] * 4 + [20.0] * 6
    study = _study({"a": [True] * 2 + [False] * 2 + [True] * 6, "b": [False] * 4 + [True] * 3 + [False] * 3},
                   heights, {"a": 5, "b": 0}, {"a": 10.0, "b": 40.0})
    long = study.recall_by_height().set_index(["detector", "height"])
    assert long.loc[("a", "<16"), ["faces", "found"]].tolist() == [4, 2]
    assert long.loc[("b", "16–24"), "recall"] == pytest.approx(0.5)
    assert long.loc[("a", "≥64"), "faces"] == 0 and math.isnan(long.loc[("a", "≥64"), "recall"])
    table = study.to_frame()
    assert list(table.index) == ["a", "b"]
    assert list(table.columns[:2]) == ["<16 px (n=4)", "16–24 px (n=6)"]
    assert table.loc["a", "all"] == pytest.approx(0.8) and table.loc["a", "false/frame"] == pytest.approx(0.5)
    assert table.loc["b", "ms/frame"] == 40.0


def test_verdict_prose_for_hand_made_numbers():
    n = 40
    heights = [20.0] * n + [40.0] * n + [80.0] * 5  # the last bin has too few faces to count
    better = [True] * 30 + [False] * 10 + [True] * n + [False] * 5
    worse = [True] * 10 + [False] * 30 + [True] * 39 + [False] + [True] * 5
    study = _study({"fast": better, "slow": worse}, heights, {"fast": 0, "slow": 1}, {"fast": 25.0, "slow": 100.0})
    good = verdict(study, candidate="fast", reference="slow")
    assert good.at_least_as_good and good.speedup == pytest.approx(4.0)
    assert list(good.bins["height"]) == ["16–24", "32–48"]
    assert good.to_markdown() == (
        "**fast is at least as good as slow**: its recall is within noise or better at every height bin with enough "
        "faces (recall 16–24 px (n=40): 0.75 vs 0.25; 32–48 px (n=40): 1.00 vs 0.97); precision 1.000 vs 0.982, "
        "0.00 false detections per frame against 0.10; 25 ms per frame against 100 ms (4.0× faster).")
    bad = verdict(study, candidate="slow", reference="fast")
    assert not bad.at_least_as_good and not bad.recall_ok
    assert bad.to_markdown().startswith("**slow is not at least as good as fast**: its recall is lower beyond noise "
                                        "at 16–24 px")
    assert bad.to_markdown().endswith("100 ms per frame against 25 ms (4.0× slower).")
    text = default_markdown([good], "fast")
    assert text.splitlines()[0] == "The default detector of `crowdkit find` / `verify` (and `crowdkit.engine.faces`) is **fast**."
    assert text.splitlines()[1] == "- " + good.to_markdown()


def test_more_false_detections_are_not_at_least_as_good_even_with_equal_recall():
    study = _study({"a": [True] * 30, "b": [True] * 30}, [30.0] * 30, {"a": 10, "b": 0}, {"a": 1.0, "b": 1.0})
    result = verdict(study, candidate="a", reference="b")
    assert result.recall_ok and not result.precision_ok and not result.at_least_as_good
    assert result.candidate_precision == pytest.approx(0.75) and result.reference_precision == 1.0
    assert "precision 0.750 vs 1.000 (lower beyond noise)" in result.to_markdown()
    with pytest.raises(ConfigError, match="'c' is not in the study"):
        verdict(study, candidate="c", reference="b")


def test_one_stray_box_among_hundreds_of_faces_is_noise_not_a_worse_detector():
    study = _study({"a": [True] * 300, "b": [True] * 300}, [30.0] * 300, {"a": 1, "b": 0}, {"a": 1.0, "b": 1.0})
    result = verdict(study, candidate="a", reference="b")
    assert result.candidate_precision == pytest.approx(300 / 301)
    assert result.precision_ok and result.at_least_as_good
    assert not verdict(_study({"a": [True] * 300, "b": [True] * 300}, [30.0] * 300, {"a": 12, "b": 0},
                              {"a": 1.0, "b": 1.0}), candidate="a", reference="b").precision_ok


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    """Two detectors on every 10th frame of a 20-frame scene (two frames)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CROWDKIT_HOME", str(tmp_path_factory.mktemp("study_home")))
    try:
        scene = study_scene(n_frames=20)
        study = measure_scene(scene, [DetectorChoice("yunet", "yunet"), DetectorChoice("haar", "opencv")], every=10)
    finally:
        patch.undo()
    return scene, study


def test_measure_scene_matches_every_detector_against_the_ground_truth(small_study):
    from crowdkit.crowd.annotations import visible_boxes
    from crowdkit.crowd.cvat import read_cvat

    scene, study = small_study
    assert study.frames == (0, 10) and study.detectors == ("yunet", "haar")
    visible = visible_boxes(read_cvat(scene.annotations_xml), frames=study.frames)
    assert 0 < len(study.faces) <= sum(len(pairs) for pairs in visible.values())
    assert set(study.faces.columns) == {"frame", "track", "height", "visibility", "yunet", "haar"}
    assert (study.faces["visibility"] >= 0.5).all()
    assert study.faces["yunet"].any()  # YuNet finds some of the scene's faces
    assert list(study.false_detections.columns) == ["detector", "false", "at_border"]
    assert len(study.timings) == 4 and (study.timings["ms"] > 0).all()
    table = study.to_frame()
    assert list(table.index) == ["yunet", "haar"] and {"all", "false/frame", "ms/frame"} <= set(table.columns)


def test_the_figure_draws_one_line_per_detector(small_study):
    import matplotlib.pyplot as plt

    fig = plot_recall_by_height(small_study[1])
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["yunet", "haar"]
    plt.close(fig)


def test_measure_scene_refuses_duplicate_labels_and_a_bad_step(small_study):
    scene, _ = small_study
    with pytest.raises(ConfigError, match="distinct labels"):
        measure_scene(scene, [DetectorChoice("a", "yunet"), DetectorChoice("a", "opencv")])
    with pytest.raises(ConfigError, match="every must be ≥ 1"):
        measure_scene(scene, [DetectorChoice("a", "yunet")], every=0)


def test_measure_scenes_pools_the_scenes_of_several_challenges(small_study, tmp_path, monkeypatch):
    monkeypatch.setenv("CROWDKIT_HOME", str(tmp_path))
    choices = [DetectorChoice("yunet", "yunet"), DetectorChoice("haar", "opencv")]
    single = measure_scene(study_scene(challenge="compact", n_frames=20), choices, every=10)
    pooled = measure_scenes(("normal", "compact"), choices, n_frames=20, every=10)
    normal = small_study[1]
    assert len(pooled.frames) == 4 and set(pooled.faces["scene"]) == {"normal", "compact"}
    assert len(pooled.faces) == len(normal.faces) + len(single.faces)
    expected = normal.false_detections.set_index("detector")["false"] + single.false_detections.set_index("detector")["false"]
    assert pooled.false_detections.set_index("detector")["false"].to_dict() == expected.to_dict()
    assert len(pooled.timings) == 8 and pooled.detectors == ("yunet", "haar")
    with pytest.raises(ConfigError, match="one or more challenges"):
        measure_scenes((), choices)


def test_the_crowd_runs_detector_is_in_the_study_under_its_own_label():
    from crowdkit.crowd.detector_study import CROWD_CHOICE, STUDY_DETECTORS
    from crowdkit.crowd.params import CrowdRunParams

    assert CROWD_CHOICE in STUDY_DETECTORS and CROWD_CHOICE.label == "yunet (score_threshold=0.7)"
    params = CrowdRunParams(member="Peter", challenge="normal")
    assert (params.detector, params.detector_settings) == (CROWD_CHOICE.name, dict(CROWD_CHOICE.options))
    assert CrowdRunParams(member="Peter", challenge="normal", detector="mtcnn").detector_settings == {}
    assert CrowdRunParams(member="Peter", challenge="normal",
                          detector_options={"score_threshold": 0.9}).detector_settings == {"score_threshold": 0.9}
    with pytest.raises(ConfigError, match="detector_options must be a mapping"):
        CrowdRunParams(member="Peter", challenge="normal", detector_options="0.9")
