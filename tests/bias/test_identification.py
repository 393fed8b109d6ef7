"""Identification at the thesis' criterion on synthetic people: clustered interval, open set, the table."""
from __future__ import annotations

import numpy as np

from crowdkit.bias import identification
from crowdkit.bias.lfw_images import LFWImages


def _images(seed=0, gallery=6, distractors=8, noise=0.05):
    rng = np.random.default_rng(seed)
    x, names = [], []
    for p in range(gallery + distractors):
        n = 12 if p < gallery else 4
        x.append(rng.normal(size=16) + noise * rng.normal(size=(n, 16)))
        names += [f"p{p:02d}"] * n
    x = np.concatenate(x).astype(np.float32)
    return LFWImages("m", "euclidean", tuple(f"{n}/{i}.jpg" for i, n in enumerate(names)), np.array(names), x,
                     np.zeros(len(names), np.int8))


def test_clustered_interval_is_seeded_and_brackets_the_mean():
    correct, counts = np.array([5, 3, 6, 0]), np.array([6, 6, 6, 6])
    a = identification.clustered_interval(correct, counts, seed=1)
    assert a == identification.clustered_interval(correct, counts, seed=1)
    assert a[0] <= correct.sum() / counts.sum() <= a[1]
    assert identification.clustered_interval([3, 3], [3, 3]) == (1.0, 1.0)


def test_open_set_rejects_distractors_and_keeps_the_gallery():
    found = identification.open_set(_images().embeddings, _images().names, min_images=10, seed=0)
    assert found["gallery people"] == 6 and found["gallery probes"] == 36 and found["distractor probes"] == 16
    assert found["accuracy"] > 0.9 and found["FNIR"] < 0.1
    hard = identification.open_set(_images(noise=2.0).embeddings, _images(noise=2.0).names, seed=0)
    assert hard["accuracy"] < found["accuracy"]


def test_identification_table():
    table = identification.identification_table({"m": _images()}, min_images=10, n_boot=100)
    assert list(table["task"].str.split(",").str[0]) == ["closed set", "closed set", "closed set", "open set"]
    assert "thesis' roles" in table.loc[2, "task"] and table.loc[2, "people"] == 6
    assert (table["95% low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["95% high"]).all()
    assert table.loc[0, "people"] == 6 and table.loc[0, "test photos"] == 36


def test_the_thesis_roles_store_one_photo_and_query_with_the_mean_of_the_rest():
    images = _images(noise=0.05)
    found = identification.thesis_nearest_mean(images.embeddings, images.names, min_images=10, seed=0)
    assert found["people"] == 6 and found["accuracy"] == 1.0  # well-separated people: every mean finds its photo
    confused = _images(noise=50.0)  # the noise swamps who a photo shows
    worse = identification.thesis_nearest_mean(confused.embeddings, confused.names, min_images=10, seed=0)
    assert worse["accuracy"] < 1.0
    again = identification.thesis_nearest_mean(confused.embeddings, confused.names, min_images=10, seed=0)
    assert again["accuracy"] == worse["accuracy"]
