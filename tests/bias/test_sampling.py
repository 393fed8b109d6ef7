"""Random and stratified identity batches: quotas, composition over many batches, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from crowdkit.common.exceptions import ConfigError
from crowdkit.bias.sampling import (
    Batch,
    IdentityBatchSampler,
    RandomBatchSampler,
    StratifiedBatchSampler,
    batch_composition,
    largest_remainder,
)

SHARES = {"White": 0.55, "Black": 0.15, "Asian": 0.15, "Indian": 0.10, "Others": 0.05}


@pytest.fixture(scope="module")
def dataset():
    """2,000 synthetic identities with 1–40 images and skewed labels (some with a single image)."""
    rng = np.random.default_rng(7)
    names = list(SHARES)
    sizes = {f"id{k:04d}": int(rng.integers(1, 41)) for k in range(2000)}
    labels = {k: names[int(rng.choice(len(names), p=list(SHARES.values())))] for k in sizes}
    return sizes, labels


# --------------------------------------------------------------------------- largest remainder


@pytest.mark.parametrize(
    "total, weights, expected",
    [
        (10, [1, 1, 1], [4, 3, 3]),  # a tie on remainders: input order decides
        (7, [0.5, 0.25, 0.25], [3, 2, 2]),  # 3.5/1.75/1.75: the two .75 win, the .5 loses
        (5, [0, 1, 0], [0, 5, 0]),  # zero weights get nothing
        (0, [1, 2], [0, 0]),
        (3, [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]),  # fewer seats than shares
        (100, [1e-9, 1, 1], [0, 50, 50]),
        (1800, [0.55, 0.15, 0.15, 0.10, 0.05], [990, 270, 270, 180, 90]),
    ],
)
def test_largest_remainder_cases(total, weights, expected):
    assert largest_remainder(total, weights) == expected


def test_largest_remainder_sums_exactly_and_stays_within_one():
    rng = np.random.default_rng(0)
    for _ in range(500):
        weights = rng.random(int(rng.integers(1, 9))) * rng.choice([1, 1e-3, 1e6])
        total = int(rng.integers(0, 2000))
        shares = np.array(largest_remainder(total, weights))
        assert shares.sum() == total
        assert np.all(np.abs(shares - weights / weights.sum() * total) < 1)  # Hamilton's quota property


def test_largest_remainder_mapping_and_bad_weights():
    assert largest_remainder(7, {"a": 2, "b": 1, "c": 1}) == {"a": 3, "b": 2, "c": 2}
    for bad in ([], [0, 0], [1, -1], [np.nan, 1]):
        with pytest.raises(ConfigError):
            largest_remainder(5, bad)


# --------------------------------------------------------------------------- stratified


def test_stratified_batches_follow_quotas_exactly(dataset):
    sizes, labels = dataset
    sampler = StratifiedBatchSampler(sizes, labels, people_per_batch=45, images_per_person=40, seed=0)
    assert isinstance(sampler, IdentityBatchSampler)
    eligible = [k for k, n in sizes.items() if n >= 2]
    counts = {name: sum(labels[k] == name for k in eligible) for name in SHARES}
    assert sampler.quotas == largest_remainder(1800, counts)
    assert sum(sampler.quotas.values()) == 1800
    batches = sampler.batches(200)
    composition = batch_composition(batches)
    assert all(b.borrowed == 0 for b in batches)  # every label has enough identities: no borrowing
    expected = np.array([sampler.quotas[c] for c in composition.columns])
    assert (composition.to_numpy() == expected).all()
    assert (composition.sum(axis=1) == 1800).all()
    for batch in batches:
        per_person = np.bincount(np.unique(batch.identities, return_inverse=True)[1])
        assert per_person.max() <= 40
        assert len(set(zip(batch.identities, batch.image_indices))) == len(batch)  # no image twice
        assert all(0 <= j < sizes[i] for i, j in zip(batch.identities, batch.image_indices))
        assert all(labels[i] == label for i, label in zip(batch.identities, batch.labels))


def test_stratified_excludes_single_image_identities(dataset):
    sizes, labels = dataset
    sampler = StratifiedBatchSampler(sizes, labels, people_per_batch=10, images_per_person=4, seed=0)
    singles = {k for k, n in sizes.items() if n < 2}
    assert set(sampler.excluded) == singles and singles
    used = {i for b in sampler.batches(300) for i in b.identities}
    assert not used & singles


def test_stratified_identities_cycle_per_label():
    sizes = {f"p{k:02d}": 4 for k in range(12)}
    labels = {k: ("a" if int(k[1:]) < 8 else "b") for k in sizes}
    sampler = StratifiedBatchSampler(sizes, labels, people_per_batch=3, images_per_person=4, seed=3)
    assert sampler.quotas == {"a": 8, "b": 4}  # 2 "a" identities and 1 "b" identity per batch
    batches = sampler.batches(8)
    for label, pool in (("a", 8), ("b", 4)):
        drawn = [p for b in batches for p in b.people if labels[p] == label]
        first_pass, second_pass = drawn[:pool], drawn[pool:2 * pool]
        assert sorted(first_pass) == sorted(second_pass) == sorted(k for k in sizes if labels[k] == label)
    assert [b.epoch for b in batches] == [0, 0, 0, 0, 1, 1, 1, 1]  # passes over the largest label
    assert all(b.borrowed == 0 for b in batches)


def test_stratified_borrows_when_a_label_runs_out():
    # label "rare" has 2 identities × 2 images = 4 images, but its quota per batch is 6 of 12
    sizes = {"r1": 2, "r2": 2, **{f"c{k}": 6 for k in range(10)}}
    labels = {"r1": "rare", "r2": "rare", **{f"c{k}": "common" for k in range(10)}}
    sampler = StratifiedBatchSampler(sizes, labels, people_per_batch=3, images_per_person=4, seed=0,
                                     proportions={"rare": 1, "common": 1})
    assert sampler.quotas == {"common": 6, "rare": 6}
    batch = sampler.batches(1)[0]
    assert len(batch) == 12 and batch.borrowed == 2
    assert batch.labels.count("rare") == 4 and batch.labels.count("common") == 8


def test_stratified_is_deterministic_by_seed(dataset):
    sizes, labels = dataset
    make = lambda seed: StratifiedBatchSampler(sizes, labels, people_per_batch=20, images_per_person=5, seed=seed)
    a, b, c = make(1).batches(20), make(1).batches(20), make(2).batches(20)
    assert a == b and a != c
    sampler = make(1)
    assert sampler.batches(5) == sampler.batches(5)  # a fresh stream on every call


def test_stratified_bad_input(dataset):
    sizes, labels = dataset
    with pytest.raises(ConfigError, match="no identity"):
        StratifiedBatchSampler({"a": 1}, {"a": "x"}, people_per_batch=1, images_per_person=1)
    with pytest.raises(ConfigError, match="cannot fill"):
        StratifiedBatchSampler({"a": 2, "b": 2}, {"a": "x", "b": "y"}, people_per_batch=3, images_per_person=2)
    with pytest.raises(ConfigError, match="Martian"):
        StratifiedBatchSampler(sizes, labels, proportions={"Martian": 1.0})


# --------------------------------------------------------------------------- random


def test_random_batches_match_dataset_on_average(dataset):
    sizes, labels = dataset
    sampler = RandomBatchSampler(sizes, people_per_batch=45, images_per_person=40, seed=0, labels=labels)
    batches = sampler.batches(200)
    assert all(len(b) == 1800 for b in batches)
    composition = batch_composition(batches)
    eligible = [k for k, n in sizes.items() if n >= 2]
    # expected share of images: identities weighted by the images they can give (≤ 40)
    given = {c: sum(min(sizes[k], 40) for k in eligible if labels[k] == c) for c in SHARES}
    expected = np.array([given[c] for c in composition.columns]) / sum(given.values())
    mean_share = composition.mean().to_numpy() / 1800
    assert np.abs(mean_share - expected).max() < 0.01
    # single batches do vary: random batches are not stratified
    assert composition.std().max() > 10


def test_random_follows_facenet_sample_people():
    sizes = {"a": 10, "b": 3, "c": 7, "d": 1}
    sampler = RandomBatchSampler(sizes, people_per_batch=2, images_per_person=4, seed=5)
    assert sampler.excluded == ("d",)
    for batch in sampler.batches(50):
        assert len(batch) == 8
        people = batch.people
        counts = [batch.identities.count(p) for p in people]
        # every identity but the last gives min(its images, 4); the last fills the batch
        assert all(c == min(sizes[p], 4) for p, c in zip(people[:-1], counts[:-1]))
        assert counts[-1] <= min(sizes[people[-1]], 4)


def test_random_is_deterministic_and_paths(dataset):
    sizes, _ = dataset
    a = RandomBatchSampler(sizes, people_per_batch=5, images_per_person=3, seed=9).batches(10)
    b = RandomBatchSampler(sizes, people_per_batch=5, images_per_person=3, seed=9).batches(10)
    assert a == b
    images = {k: [f"{k}/{j}.jpg" for j in range(n)] for k, n in sizes.items()}
    paths = a[0].paths(images)
    assert len(paths) == 15 and all(p.startswith(i + "/") for p, i in zip(paths, a[0].identities))


def test_batch_composition_with_override_labels():
    batch = Batch(("a", "a", "b"), (0, 1, 0), ("unlabelled",) * 3)
    frame = batch_composition([batch], {"a": "x", "b": "y"})
    assert frame.loc[0].to_dict() == {"x": 2, "y": 1}


# --------------------------------------------------------------------------- the dissertation's quota mode


def test_study_quotas_give_the_whole_remainder_to_the_first_label():
    from crowdkit.bias.sampling import study_quotas

    assert study_quotas(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert study_quotas(7, {"a": 0.25, "b": 0.5, "c": 0.25}) == {"a": 3, "b": 3, "c": 1}  # largest remainder: 2, 3, 2
    shares = dict(zip(SHARES, [0.551, 0.149, 0.15, 0.10, 0.05]))
    quotas = study_quotas(150, shares)
    assert sum(quotas.values()) == 150 and quotas["White"] == 82 + (150 - 82 - 22 - 22 - 15 - 7)
    with pytest.raises(ConfigError):
        study_quotas(10, {"a": 0, "b": 0})


def test_study_mode_draws_labels_at_random_with_replacement(dataset):
    sizes, labels = dataset
    sampler = StratifiedBatchSampler(sizes, labels, people_per_batch=15, images_per_person=10, seed=0,
                                     quota_mode="study")
    exact = StratifiedBatchSampler(sizes, labels, people_per_batch=15, images_per_person=10, seed=0)
    assert sum(sampler.quotas.values()) == sampler.batch_size
    first = next(iter(sampler.quotas))
    assert sampler.quotas[first] >= exact.quotas[first]
    batches = sampler.batches(50)
    assert all(len(b) == sampler.batch_size and b.borrowed == 0 and b.epoch == 0 for b in batches)
    composition = batch_composition(batches)
    # every label stays within images_per_person - 1 of its quota: it stops once spent, the last draw may overshoot
    for label, quota in sampler.quotas.items():
        assert (composition[label] <= quota + sampler.images_per_person - 1).all()
    # with replacement: over 50 batches some identity appears twice in one batch (as separate draws)
    assert any(len(b.people) < len([k for i, k in enumerate(b.identities) if i == 0 or b.identities[i - 1] != k])
               for b in batches)
    assert [b.identities for b in sampler.batches(3)] == [b.identities for b in batches[:3]]
    with pytest.raises(ConfigError, match="quota_mode"):
        StratifiedBatchSampler(sizes, labels, quota_mode="hamilton")
