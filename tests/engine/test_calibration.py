"""crowdkit.engine.calibration: the 10-fold threshold protocol on numbers, pair selection, and one small LFW run."""
from __future__ import annotations

import math

import numpy as np
import pytest

from crowdkit.common.metrics import best_accuracy_threshold
from crowdkit.engine.calibration import Calibration, k_fold_thresholds, select_pairs
from crowdkit.common.exceptions import ConfigError


def test_best_accuracy_threshold_cuts_between_the_classes():
    assert best_accuracy_threshold([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == (0.5, 1.0)
    threshold, accuracy = best_accuracy_threshold([0.1, 0.5, 0.6, 0.9], [True, False, True, False])
    assert accuracy == 0.75 and threshold == pytest.approx(0.3)  # ties: the smallest threshold wins
    assert all(math.isnan(v) for v in best_accuracy_threshold([], []))
    with pytest.raises(ValueError):
        best_accuracy_threshold([0.1], [True, False])


def test_k_fold_thresholds_are_chosen_on_the_other_folds():
    same = np.tile(np.r_[np.ones(5, bool), np.zeros(5, bool)], 10)
    fold = np.repeat(np.arange(10), 10)
    distances = np.where(same, 0.2, 0.8) + fold * 0.001
    thresholds, accuracies = k_fold_thresholds(distances, same, fold)
    assert thresholds.shape == accuracies.shape == (10,)
    assert np.all(accuracies == 1.0) and np.all((thresholds > 0.2) & (thresholds < 0.8))
    distances[fold == 3] = np.where(same[fold == 3], 0.9, 0.1)  # fold 3 inverted: its threshold is not its own
    thresholds, accuracies = k_fold_thresholds(distances, same, fold)
    assert accuracies[3] == 0.0 and accuracies[0] == 1.0


def test_select_pairs_takes_the_same_number_per_fold_and_class():
    same = np.tile(np.r_[np.ones(300, bool), np.zeros(300, bool)], 10)
    fold = np.repeat(np.arange(10), 600)
    chosen = select_pairs(same, fold, 600)
    assert len(chosen) == 600 and same[chosen].sum() == 300
    assert np.all(np.bincount(fold[chosen]) == 60)
    assert len(select_pairs(same, fold, None)) == 6000
    with pytest.raises(ConfigError, match="at least 20 pairs"):
        select_pairs(same, fold, 10)


def test_calibration_round_trips_and_describes_itself():
    c = Calibration(model="dlib", metric="cosine", detector="mtcnn", pairs_file="/x/pairs.txt", pairs_sha256="ab",
                    pairs_asked=20, pairs_used=19, threshold=0.1234, fold_thresholds=(0.1,) * 10,
                    fold_accuracies=(0.9,) * 10, accuracy=0.9, accuracy_std=0.0, default_threshold=0.07)
    assert Calibration.from_dict(c.to_dict()) == c
    assert "19 LFW View 2 pairs" in c.describe() and "0.900 ± 0.000" in c.describe()
    assert c.to_frame().loc["pairs file", "value"] == "pairs.txt"


@pytest.mark.slow  # embeds ~40 LFW photos with MTCNN + dlib
def test_calibrate_threshold_on_a_few_lfw_pairs_is_cached(tmp_path, monkeypatch):
    from crowdkit.engine.calibration import calibrate_threshold

    monkeypatch.setenv("CROWDKIT_HOME", str(tmp_path))
    first = calibrate_threshold(model="dlib", metric="cosine", detector="mtcnn", pairs=20)
    assert first.pairs_asked == 20 and first.n_folds == 10 and 0 < first.threshold < 1
    assert first.default_threshold == 0.07 and 0.5 <= first.accuracy <= 1
    assert list((tmp_path / "cache" / "calibration").glob("*.json"))
    assert calibrate_threshold(model="dlib", metric="cosine", detector="mtcnn", pairs=20) == first
