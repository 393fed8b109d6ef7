"""Statistics of the bias study: mean ± sd, paired t-intervals, training tables, the thesis' layout beside ours."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from crowdkit.bias import summary
from crowdkit.bias.profiles import get_profile
from crowdkit.bias.reported import load_thesis_tables


def _result(accuracy, auc, val=0.1, std=0.01, val_std=0.02, far=0.001):
    return SimpleNamespace(accuracy=accuracy, std=std, val=val, val_std=val_std, far=far, auc=auc, eer=0.1,
                           threshold=1.0, val_threshold=0.5)


RESULTS = {("random", 0, 5): _result(0.90, 0.95), ("random", 1, 5): _result(0.92, 0.97),
           ("stratified", 0, 5): _result(0.91, 0.96, val=0.2), ("stratified", 1, 5): _result(0.95, 0.98, val=0.3)}


def _per_run():
    from crowdkit.bias.lfw_study import RunEvaluations

    return RunEvaluations(pairs={}, results=RESULTS).per_run()


def test_mean_sd_and_paired_ci():
    assert summary.mean_sd([0.5, 0.7]) == "0.6000 ± 0.1414" and summary.mean_sd([0.5]) == "0.5000"
    m, lo, hi = summary.paired_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and lo == pytest.approx(2 - 4.302653 / np.sqrt(3), abs=1e-5) and hi == pytest.approx(4 - lo)
    m, lo, hi = summary.paired_ci([0.5])
    assert m == 0.5 and np.isnan(lo) and np.isnan(hi)


def test_paired_differences_seed_by_seed():
    diff = summary.paired_differences(_per_run()).set_index("metric")
    assert diff.loc["accuracy", "stratified − random"] == pytest.approx(0.02)
    assert diff.loc["accuracy", "seeds"] == 2
    assert diff.loc["VAL", "stratified − random"] == pytest.approx(0.15)
    assert not diff.loc["accuracy", "CI excludes 0"]  # differences 0.01 and 0.03: t(1) interval is wide


def test_seed_layout_puts_dlib_beside_the_arms():
    layout = summary.seed_layout(_per_run(), _result(0.99, 0.999))
    assert layout.loc[(5, "base (random)"), "accuracy"] == "0.9100 ± 0.0141"
    assert layout.loc[("—", "dlib (reference)"), "accuracy"] == "0.9900 ± 0.0100 (folds)"


def test_thesis_tables_beside_ours_in_its_layout():
    thesis = load_thesis_tables()
    t51, t52 = summary.thesis_tables(thesis, RESULTS)
    assert t51.loc[("thesis", 30, "base"), "Accuracy ± folds"] == "0.66733+-0.01546"
    assert t51.loc[("thesis", 30, "base"), "Validation Rate ± folds @ achieved FAR"] == "0.02267+-0.00786 @ FAR=0.00167"
    assert t51.loc[("ours", 5, "modified"), "Accuracy ± folds"] == "0.93000+-0.01000"
    assert t51.loc[("ours", 5, "modified"), "Accuracy ± seeds"] == "0.93000 ± 0.02828 (seeds, n = 2)"
    assert t51.loc[("ours", 5, "base"), "Validation Rate ± folds @ achieved FAR"] == "0.10000+-0.02000 @ FAR=0.00100"
    assert t52.loc[("thesis", 30, "modified"), "Increase in AUC from counterpart"] == "-0.085"
    assert t52.loc[("thesis", 30, "base"), "Increase in AUC from counterpart"] == "-"
    assert t52.loc[("ours", 5, "modified"), "Increase in AUC from counterpart"] == "+0.010"
    assert len(t51) == 6 + 2 and len(t52) == 6 + 2


def test_setting_differences_name_each_difference_and_why():
    quick = summary.setting_differences(get_profile("quick"), "probe")
    assert all(word in quick for word in ("**Classifier**", "CASIA-WebFace", "**Backbone**", "**Epochs**", "CPU"))
    full = summary.setting_differences(get_profile("full"), "vgg16")
    assert "**Classifier**" not in full and "**Backbone**" not in full and "**Epochs**" not in full
    assert "CASIA-WebFace" in full


def test_training_tables():
    history = (SimpleNamespace(loss=0.5, active_fraction=0.4),)
    run = SimpleNamespace(config=SimpleNamespace(sampler="stratified", seed=1), history=history, best_epoch=1,
                          best_val_accuracy=0.81234, stopped_early=False, n_train_identities=8, n_val_identities=2,
                          history_frame=lambda: pd.DataFrame({"epoch": [1, 2], "loss": [0.6, 0.5],
                                                              "active_fraction": [0.5, 0.4],
                                                              "val_accuracy": [0.7, 0.8]}))
    runs = summary.training_runs([run])
    assert runs.loc[0, "arm"] == "modified (stratified)" and runs.loc[0, "best val accuracy"] == 0.8123
    curves = summary.training_curves([run])
    assert summary.final_epoch_stats(curves).loc["stratified", ("loss", "mean")] == 0.5
    data = SimpleNamespace(inputs={"a": 1, "b": 2, "c": 3}, n_images=30, skipped=["x.jpg"])
    note, counts = summary.training_set(data, {"a": "Asian", "b": "Asian"})
    assert "**3** identities, **30** usable photos; **1** photos skipped" in note
    assert counts["identities (predicted label)"].to_dict() == {"Asian": 2, "unlabelled": 1}
