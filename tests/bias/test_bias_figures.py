"""The bias chapters' figures draw from typed results without error (headless)."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from crowdkit.bias import figures


def test_tables_under_figures_and_composition_panels():
    table = figures.class_balance({"White": 30, "Black": 10})
    assert table["share"].tolist() == [0.75, 0.25]
    compositions = {"random": pd.DataFrame({"a": [3, 2], "b": [1, 2]}), "study": pd.DataFrame({"a": [2, 2], "b": [2, 2]})}
    fig = figures.batch_shares(compositions, ["a", "b"], n=2)
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "study: first 2 batches"
    confusion = pd.DataFrame([[3, 1], [0, 4]], index=["a", "b"], columns=["a", "b"])
    assert len(figures.confusion(confusion).axes) == 2


def test_roc_labels_each_arm_once():
    curve = SimpleNamespace(fpr=np.array([0.0, 0.01, 1.0]), tpr=np.array([0.0, 0.5, 1.0]), auc=0.9)
    results = {("random", 0, 5): curve, ("random", 1, 5): curve, ("stratified", 0, 5): curve, ("random", 0, 2): curve}
    fig = figures.lfw_roc(curve, results, 5)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["dlib (AUC 0.9000)", "base (random) (seeds)", "modified (stratified) (seeds)"]
    assert len(fig.axes[0].lines) == 4
