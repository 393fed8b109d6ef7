"""The LFW image subset rule, and one small real-LFW run: a few people embedded with dlib and measured per group."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdkit.bias import group_study
from crowdkit.bias.lfw_images import LFWSubset, embed_lfw_images, select_lfw_images


def _people(n=40):
    return {f"P{i:02d}": [Path(f"P{i:02d}/P{i:02d}_{k:04d}.jpg") for k in range(1 + i % 13)] for i in range(n)}


def test_subset_prefers_the_pair_people_caps_photos_and_is_deterministic():
    people = _people()
    subset = LFWSubset(max_identities=10, max_images=5, seed=0)
    chosen = select_lfw_images(subset, people=people, prefer={"P03", "P05"})
    names = {p.parent.name for p in chosen}
    assert len(names) == 10 and {"P03", "P05"} <= names and all(len(people[n]) >= 2 for n in names)
    assert max(sum(p.parent.name == n for p in chosen) for n in names) == 5
    assert chosen == select_lfw_images(subset, people=people, prefer={"P03", "P05"})
    assert len(select_lfw_images(LFWSubset(), people=people)) == sum(map(len, people.values()))
    assert "up to 10 LFW people" in subset.describe() and LFWSubset().describe() == "every LFW image"


def test_a_few_real_lfw_people_per_group():
    from crowdkit.common.datasets import lfw_people

    try:
        people = lfw_people()
    except Exception as error:  # noqa: BLE001 - no LFW on this machine
        pytest.skip(f"LFW not available: {error}")
    few = {n: people[n] for n in ("Aaron_Peirsol", "Abdullah_Gul", "Adrien_Brody", "Al_Gore") if n in people}
    paths = select_lfw_images(LFWSubset(max_identities=4, max_images=3), people=few)
    images = embed_lfw_images("dlib", paths)
    assert images.n_identities == len(few) and images.embeddings.shape == (len(paths), 128)
    labels = {n: ("G1" if i % 2 else "G2") for i, n in enumerate(few)}
    rates = group_study.measure_model("dlib", images.embeddings, images.names, labels, metric=images.metric,
                                      global_threshold=0.6, n_boot=50)
    table = rates.to_frame()
    assert table.loc["G1", "genuine pairs"] == 6 and table.loc["G1", "impostor pairs"] == 9
    assert np.isfinite(rates.point[group_study.GLOBAL]["G1"][0])
