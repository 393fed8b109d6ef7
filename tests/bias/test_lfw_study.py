"""The evaluation chapter's steps on synthetic embeddings: run tables, per-group sizes, identification, clustering."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from crowdkit.bias import lfw_study
from crowdkit.bias.checkpoints import TrainingRuns
from crowdkit.common.exceptions import DataNotFoundError


def _pairs(seed=0, people=12, per_person=12):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 16))
    x = np.concatenate([c + 0.05 * rng.normal(size=(per_person, 16)) for c in centres])
    names = np.repeat([f"p{i:02d}" for i in range(people)], per_person)
    return SimpleNamespace(identities_with=lambda n: (x, names) if n <= per_person else (x[:0], names[:0]))


def test_evaluate_runs_needs_runs():
    with pytest.raises(DataNotFoundError, match="training.ipynb"):
        lfw_study.evaluate_runs(TrainingRuns(Path("nowhere"), ()), n_pairs=600)


def test_run_tables_and_models():
    result = SimpleNamespace(accuracy=0.9, std=0.01, val=0.2, far=0.001, auc=0.95, eer=0.1)
    pairs = {("random", 1, 5): "r1", ("random", 0, 5): "r0", ("stratified", 0, 5): "s0", ("random", 0, 2): "old"}
    evaluated = lfw_study.RunEvaluations(pairs, {k: result for k in pairs}, root="runs")
    assert evaluated.last_epochs == 5 and evaluated.describe() == "3 runs under `runs`."
    per_run = evaluated.per_run()
    assert per_run[["epochs", "sampler", "seed"]].values.tolist() == [[2, "random", 0], [5, "random", 0],
                                                                      [5, "random", 1], [5, "stratified", 0]]
    reference = SimpleNamespace(pairs="dlib")
    assert evaluated.models(reference) == {lfw_study.REFERENCE: "dlib", "base (random), seed 0": "r0",
                                           "modified (stratified), seed 0": "s0"}


def test_clustering_on_separable_people():
    models = {lfw_study.REFERENCE: _pairs(0), "other": _pairs(1)}
    settings = lfw_study.ClusterSettings.from_namespace(
        {"tsne_identities": 4, "dbscan_identities": 8, "som_size": 5, "som_iterations": 200, "other": 1},
        n_pairs=600)
    assert (settings.min_images_small, settings.min_images_large, settings.kmeans_max_iter) == (3, 2, 500)
    found = lfw_study.cluster_models({"m": models["other"]}, settings, seed=0)
    results = found["m"].results
    assert results["K-Means"].params["max_iter"] == 500
    assert len(np.unique(results["SOM"].identities)) == 8  # the SOM runs on the same people as K-Means
    assert len(np.unique(results["t-SNE"].identities)) == 4
    table = lfw_study.cluster_table(found)
    assert table["method"].tolist() == ["t-SNE", "DBSCAN", "K-Means", "SOM"]
    assert table.loc[2, "ARI"] == 1.0 and table["noise"].notna().sum() == 1
