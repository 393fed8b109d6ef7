"""crowdkit.crowd.track: IoU tracking through a crossing and a gap; per-track decisions."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdkit.common.exceptions import ConfigError
from crowdkit.crowd.track import decide_per_track, link_detections


def _moving(start_x, step, y, frames, who, size=40):
    return [dict(frame=f, x1=start_x + step * f, y1=y, x2=start_x + step * f + size, y2=y + size, who=who)
            for f in frames]


def _shuffled(rows, seed=0):
    table = pd.DataFrame(rows)
    return table.sample(frac=1, random_state=seed).reset_index(drop=True)


def _groups(table: pd.DataFrame, ids: np.ndarray) -> dict[str, set[int]]:
    return {who: set(ids[table.who.to_numpy() == who]) for who in sorted(set(table.who))}


def test_crossing_keeps_identities():
    # A walks right, B walks left, 4 px apart vertically: at frame 10 their boxes almost coincide
    frames = range(21)
    table = _shuffled(_moving(0, 10, 100, frames, "A") + _moving(200, -10, 104, frames, "B"))
    ids = link_detections(table)
    groups = _groups(table, ids)
    assert all(len(g) == 1 for g in groups.values()) and groups["A"] != groups["B"]


def test_crossing_without_prediction_may_swap_but_never_merges():
    frames = range(21)
    table = _shuffled(_moving(0, 10, 100, frames, "A") + _moving(200, -10, 104, frames, "B"))
    ids = link_detections(table, predict=False)
    for f in frames:  # one-to-one: never two detections of a frame in one track
        in_frame = ids[table.frame.to_numpy() == f]
        assert len(set(in_frame)) == len(in_frame)


def test_gap_bridged_or_split():
    frames = [0, 1, 2, 3, 7, 8, 9]  # unseen in frames 4..6 (a 4-frame gap)
    table = pd.DataFrame(_moving(50, 2, 50, frames, "A"))
    assert len(set(link_detections(table, max_gap=4))) == 1
    assert link_detections(table, max_gap=3).tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_stride_needs_max_gap_at_least_stride():
    table = pd.DataFrame(_moving(0, 1, 0, range(0, 30, 5), "A"))
    assert len(set(link_detections(table, max_gap=5))) == 1
    assert len(set(link_detections(table, max_gap=4))) == 6


def test_distant_faces_are_separate_tracks_and_ids_follow_first_appearance():
    table = pd.DataFrame(_moving(0, 0, 0, [0, 1], "A") + _moving(300, 0, 0, [1, 2], "B"))
    assert link_detections(table).tolist() == [0, 0, 1, 1]
    assert link_detections(table.iloc[:0]).tolist() == []


def _track_table():
    return pd.DataFrame({
        "track": [0, 0, 0, 0, 1, 1, 2],
        "distance": [0.9, 0.5, 0.6, 0.8, 0.7, 0.75, 0.6],
        "threshold": 0.65,
        "decision": [False, True, True, False, False, False, True],
    })


def test_decide_per_track_min():
    out = decide_per_track(_track_table(), rule="min")
    assert out.track_distance.tolist() == [0.5] * 4 + [0.7] * 2 + [0.6]
    assert out.track_decision.tolist() == [True] * 4 + [False] * 2 + [True]
    assert out.track_size.tolist() == [4] * 4 + [2] * 2 + [1]
    assert out.decision.tolist() == _track_table().decision.tolist()  # per-frame decision kept


def test_decide_per_track_mean_of_k_best():
    out = decide_per_track(_track_table(), rule="mean_of_k_best", k=3, threshold=0.6)
    assert out.track_distance.iloc[0] == pytest.approx((0.5 + 0.6 + 0.8) / 3)
    assert not out.track_decision.iloc[0]  # one lucky frame is not enough, unlike "min"
    assert decide_per_track(_track_table(), rule="min", threshold=0.6).track_decision.iloc[0]
    assert out.track_distance.iloc[4] == pytest.approx(0.725)  # fewer than k: mean of what there is


def test_decide_per_track_errors():
    table = _track_table()
    with pytest.raises(ConfigError, match="unknown track rule"):
        decide_per_track(table, rule="max")
    with pytest.raises(ConfigError, match="link_detections"):
        decide_per_track(table.drop(columns="track"))
    with pytest.raises(ConfigError, match="give threshold"):
        decide_per_track(table.drop(columns="threshold"))
    with pytest.raises(ConfigError, match="max_gap"):
        link_detections(pd.DataFrame(_moving(0, 0, 0, [0], "A")), max_gap=0)
