"""The face-engine chapter's tables and prose, from hand-made results (no model runs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crowdkit.engine.backends import DetectorRun
from crowdkit.engine.chapter import DetectorComparison, EngineChapterParams, GallerySearch
from crowdkit.engine.detection import Detection
from crowdkit.engine.faces import FIND_COLUMNS, FindResult


def _detection(x: float) -> Detection:
    return Detection((x, 10, x + 20, 40), 0.9, np.full((5, 2), x + 5))


def test_params_take_the_names_they_know_from_a_namespace():
    params = EngineChapterParams.from_namespace({"detectors": ["opencv"], "gallery_people": 6, "run_dir": "x",
                                                 "np": np})
    assert params.detectors == ("opencv",) and params.gallery_people == 6 and params.model == "dlib"
    assert params.group_photo_path.name == "faces.jpg" and params.lfw_path.name == "images_deepfunneled"


def test_detector_table_and_the_failures_paragraph():
    runs = (DetectorRun("mtcnn", [_detection(0), _detection(50)], 0.12345),
            DetectorRun("retinaface", [], float("nan"), "WeightsMissingError: retinaface.h5 is missing"))
    comparison = DetectorComparison(Path("faces.jpg"), np.zeros((60, 100, 3), np.uint8), runs)
    table = comparison.to_frame()
    assert list(table["detector"]) == ["mtcnn", "retinaface"]
    assert table["faces"].iloc[0] == 2 and pd.isna(table["faces"].iloc[1])
    assert list(table["status"]) == ["ok", "WeightsMissingError: retinaface.h5 is missing"]
    assert table["seconds"].iloc[0] == 0.123
    assert [r.name for r in comparison.ran] == ["mtcnn"]
    assert comparison.failures_markdown() == "**retinaface did not run.** WeightsMissingError: retinaface.h5 is missing"
    assert DetectorComparison(Path("x.jpg"), comparison.image, runs[:1]).failures_markdown() == ""


def _search() -> GallerySearch:
    sources = ["/lfw/Ann/Ann_0002.jpg", "/lfw/Ann/Ann_0003.jpg", "/lfw/Bob/Bob_0002.jpg"]
    distances = np.array([0.05, 0.08, 0.03])
    matches = pd.DataFrame({
        "source": sources, "frame": [0, 0, 0], "x1": [0.0] * 3, "y1": [0.0] * 3, "x2": [9.0] * 3, "y2": [9.0] * 3,
        "score": [1.0] * 3, "distance": distances, "closest_query": ["/lfw/Ann/Ann_0001.jpg"] * 3,
        "threshold": [0.07] * 3, "decision": distances <= 0.07,
    }, columns=list(FIND_COLUMNS))
    result = FindResult(matches=matches, threshold=0.07, threshold_source="default", metric="cosine", model="dlib",
                        detector="mtcnn", queries=("/lfw/Ann/Ann_0001.jpg",), query_faces=(), images=3)
    return GallerySearch("Ann", Path("/lfw/Ann/Ann_0001.jpg"), ("Ann", "Bob"),
                         tuple(Path(s) for s in sources), result)


def test_search_tables_say_who_is_who_and_what_was_decided():
    search = _search()
    table = search.to_frame()
    assert list(table["person"]) == ["Ann", "Ann", "Bob"] and list(table["same_person"]) == [True, True, False]
    assert "person" not in search.result.to_frame()  # the result itself is left as it was
    closest = search.closest(2)
    assert list(closest["source"]) == ["Bob_0002.jpg", "Ann_0002.jpg"]
    confusion = search.confusion()
    assert confusion.loc[True, True] == 1 and confusion.loc[True, False] == 1 and confusion.loc[False, True] == 1


def test_summary_names_the_query_the_gallery_and_the_threshold():
    assert _search().summary_markdown() == (
        "Query: **Ann** (`Ann_0001.jpg`); gallery: 3 photos of 2 people, 3 faces; threshold 0.07 "
        "(default for dlib/cosine); 2 match(es).")
