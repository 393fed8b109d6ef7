"""Batch composition tables: label shares, drift from the target, quota tables, and the batch-size sweep."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crowdkit.bias.composition import (batch_size_sweep, compare_samplers, label_shares, mean_absolute_deviation,
                                       quota_sweep, total_variation)


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(3)
    names = ["Asian", "Black", "White"]
    sizes = {f"id{k:03d}": int(rng.integers(2, 21)) for k in range(120)}
    labels = {k: names[int(rng.choice(3, p=[0.2, 0.2, 0.6]))] for k in sizes}
    table = pd.DataFrame({"identity": list(labels), "label": list(labels.values()), "image_count": list(sizes.values())})
    groups = table.groupby("label").agg(identities=("identity", "size"), images=("image_count", "sum"))
    groups["share of identities"] = (groups["identities"] / groups["identities"].sum()).round(3)
    return sizes, labels, groups


def test_shares_and_distances_by_hand():
    composition = pd.DataFrame({"a": [5, 10], "b": [5, 0]})
    target = pd.Series({"a": 0.5, "b": 0.3, "c": 0.2})
    shares = label_shares(composition, target.index)
    assert shares.loc[0].tolist() == [0.5, 0.5, 0.0] and shares.loc[1].tolist() == [1.0, 0.0, 0.0]
    assert total_variation(composition, target).round(6).tolist() == [0.2, 0.5]
    assert mean_absolute_deviation(composition, target).round(6).tolist() == [round(0.4 / 3, 6), round(1.0 / 3, 6)]


def test_quota_sweep_sums_to_each_size():
    sweep = quota_sweep({"a": 2.0, "b": 1.0}, sizes=(10, 45))
    assert list(sweep.columns) == ["batch of 10", "batch of 45"]
    assert sweep.sum().tolist() == [10, 45] and sweep.loc["a", "batch of 10"] == 7


def test_compare_samplers_tables(labelled):
    sizes, labels, groups = labelled
    batches = compare_samplers(sizes, labels, groups, people_per_batch=10, images_per_person=5, seed=0,
                               n_batches=40, study=True)
    assert set(batches.samplers) == {"random", "stratified", "study"} and batches.n_batches == 40
    quotas = batches.quota_table()
    assert quotas["quota"].sum() == 50 and (quotas["quota"] - quotas["floor"]).isin([0, 1]).all()
    assert quotas["study quota (floors, remainder to the first)"].sum() == 50
    assert (quotas["identities"] == groups["identities"]).all()
    table = batches.label_table()
    assert set(table.index.get_level_values("sampler")) == {"random", "stratified", "study"}
    assert (table.xs("stratified", level="sampler")["std"] == 0).all()  # exact quotas every batch
    drift = batches.drift()
    assert drift.loc["stratified", "mean |share − target|"] < drift.loc["random", "mean |share − target|"]
    assert (drift["batches"] == 40).all() and (drift["batch size"] == 50).all() and (drift["labels"] == 3).all()
    assert batches.distances().index.names == ["sampler", "batch"]
    assert "of 40" in batches.borrowing_note() and "Batch size 50" in batches.quota_note()
    label_summary = groups.reset_index()[["label", "identities"]]
    shares = batches.share_table(label_summary)
    assert shares["stratified share std"].eq(0).all() and "identities" in shares


def test_batch_size_sweep_names_sizes_it_cannot_draw(labelled):
    sizes, labels, groups = labelled
    sweep, skipped = batch_size_sweep(sizes, labels, groups["share of identities"], people=[5, 10_000],
                                      images_per_person=5, n_batches=20)
    assert sweep["people per batch"].tolist() == [5] and sweep["images per batch"].tolist() == [25]
    assert skipped.startswith("- 10000 people per batch")
