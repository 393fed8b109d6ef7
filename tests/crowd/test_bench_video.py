"""The video benchmark's pure parts: which faces both pipelines found, and its report (the timing is
`crowdkit bench video`)."""
from __future__ import annotations

import re

import pandas as pd

from crowdkit.crowd.bench_video import VideoBenchmark, same_faces


def test_same_faces_pairs_boxes_of_one_frame_one_to_one():
    ours = pd.DataFrame({"frame": [0, 0, 1], "x1": [0, 50, 0], "y1": [0, 50, 0], "x2": [20, 70, 20], "y2": [20, 70, 20]})
    theirs = pd.DataFrame({"frame": [0, 0, 2], "x1": [1, 2, 0], "y1": [1, 2, 0], "x2": [21, 22, 20],
                           "y2": [21, 22, 20]})
    # ours 0 overlaps both of theirs in frame 0; the better one is taken, the other stays unpaired;
    # ours 1 overlaps nothing; ours 2 is in frame 1, where they found nothing.
    assert same_faces(ours, theirs) == [(0, 0)]
    assert same_faces(ours, theirs, min_iou=0.99) == []


def test_report_ends_with_the_summary_line():
    result = VideoBenchmark(scene="normal, seed 0", frames=60, detector="yunet", threshold=0.07, write_frames_s=2.0,
                            detect_and_crop_s=30.0, deepface_find_s=88.0, crowdkit_s=8.0, faces_study=900,
                            faces_crowdkit=1000, faces_both=850, agreement=0.995, distance_correlation=0.9, study_matches=40,
                            crowdkit_matches=45)
    assert result.study_s == 120.0 and result.speedup == 15.0
    lines = result.report().splitlines()
    assert lines[-1] == "speedup=15.00 agreement=0.9950 faces_both=850"
    assert re.search(r"speedup 15\.00x \(target >= 12: ok\)", result.report())
    assert "same decision on 0.9950 of them (target >= 0.99: ok)" in result.report()
