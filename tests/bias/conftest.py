"""Fixtures shared by the bias tests: a small seeded UTKFace split and a probe classifier fitted on it."""
from __future__ import annotations

import pytest

from crowdkit.bias.ethnicity import get_classifier
from crowdkit.common.datasets import load_utkface, split_stratified, subsample_per_class


@pytest.fixture(scope="session")
def split():
    """A small class-balanced subset of the seeded 70/30 split (its embeddings are cached after the first run)."""
    train, test = split_stratified(load_utkface(), test_size=0.3, seed=0)
    return subsample_per_class(train, 20, seed=0), subsample_per_class(test, 10, seed=0)


@pytest.fixture(scope="session")
def probe(split):
    train, _ = split
    return get_classifier("probe").fit(train.paths, train.labels)
