"""Identity mini-batches for triplet training: FaceNet's random sampler and a label-stratified one.

A batch holds ``people_per_batch * images_per_person`` images drawn identity by
identity, at most ``images_per_person`` from each (FaceNet's ``sample_people``).
The stratified sampler splits those images between labels (predicted ethnicity
labels from the lookup table) in proportion to the dataset's label distribution,
rounded with the largest-remainder (Hamilton) method so the quotas sum exactly to
the batch size (``quota_mode="exact"``). ``quota_mode="study"`` follows the
dissertation's arithmetic instead (:func:`study_quotas`, :class:`StratifiedBatchSampler`).

Identities with fewer than ``min_images`` images (default 2: one image cannot
form a positive pair) are left out of both samplers and listed in ``excluded``.

Example::

    >>> sizes = {"a": 5, "b": 3, "c": 8, "d": 2}
    >>> labels = {"a": "x", "b": "x", "c": "y", "d": "y"}
    >>> sampler = StratifiedBatchSampler(sizes, labels, people_per_batch=2, images_per_person=2, seed=0)
    >>> sampler.quotas
    {'x': 2, 'y': 2}
    >>> len(sampler.batches(3)[0])
    4
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Hashable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from crowdkit.common.exceptions import ConfigError

logger = logging.getLogger(__name__)

UNLABELLED = "unlabelled"


@dataclass(frozen=True)
class Batch:
    """One mini-batch, one entry per image.

    ``identities[i]`` owns image ``image_indices[i]`` (an index into that identity's
    sorted image list) and carries label ``labels[i]``. ``borrowed`` counts images
    the stratified sampler took from other labels because a label ran out of
    identities in the epoch (always 0 for the random sampler).
    """

    identities: tuple[Hashable, ...]
    image_indices: tuple[int, ...]
    labels: tuple[str, ...]
    epoch: int = 0
    borrowed: int = 0

    def __len__(self) -> int:
        return len(self.identities)

    @property
    def people(self) -> tuple[Hashable, ...]:
        """The distinct identities, in batch order."""
        return tuple(dict.fromkeys(self.identities))

    def paths(self, images: Mapping[Hashable, Sequence]) -> list:
        """The image paths, given identity → sorted paths."""
        return [images[i][j] for i, j in zip(self.identities, self.image_indices)]


@runtime_checkable
class IdentityBatchSampler(Protocol):
    """Anything that yields :class:`Batch` objects deterministically from its seed."""

    batch_size: int
    excluded: tuple[Hashable, ...]

    def batches(self, n: int) -> list[Batch]: ...

    def __iter__(self) -> Iterator[Batch]: ...


def largest_remainder(total: int, weights: Mapping[Hashable, float] | Sequence[float]) -> dict | list[int]:
    """Split ``total`` into integers proportional to ``weights`` (Hamilton's method).

    Each share gets the floor of its exact quota; the seats left over go to the
    largest fractional remainders (ties: larger weight first, then input order).
    The result sums exactly to ``total``; zero weights get zero. Returns a dict
    for a mapping, a list for a sequence.

    >>> largest_remainder(10, [1, 1, 1])
    [4, 3, 3]
    >>> largest_remainder(7, {"a": 0.5, "b": 0.25, "c": 0.25})  # 3.5, 1.75, 1.75
    {'a': 3, 'b': 2, 'c': 2}
    """
    keys = list(weights) if isinstance(weights, Mapping) else None
    w = np.array([weights[k] for k in keys] if keys is not None else list(weights), dtype=np.float64)
    total = int(total)
    if total < 0:
        raise ConfigError(f"total must be non-negative, got {total}")
    if w.size == 0 or np.any(w < 0) or not np.all(np.isfinite(w)) or (total > 0 and w.sum() <= 0):
        raise ConfigError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    exact = w / w.sum() * total if w.sum() > 0 else np.zeros_like(w)
    shares = np.floor(exact).astype(np.int64)
    left = total - int(shares.sum())
    remainders = exact - shares
    order = sorted(range(len(w)), key=lambda i: (-remainders[i], -w[i], i))
    for i in order[:left]:
        shares[i] += 1
    result = [int(s) for s in shares]
    return dict(zip(keys, result)) if keys is not None else result


def study_quotas(total: int, weights: Mapping[Hashable, float]) -> dict:
    """Split ``total`` the dissertation's way: the floor of each label's share, the whole remainder to the first label.

    Unlike :func:`largest_remainder`, the first label (in mapping order) may get
    several images more than its exact share.

    >>> study_quotas(10, {"a": 1, "b": 1, "c": 1})   # 3.33 each: floors 3, 3, 3, remainder 1 to "a"
    {'a': 4, 'b': 3, 'c': 3}
    >>> study_quotas(7, {"a": 0.25, "b": 0.5, "c": 0.25})   # floors 1, 3, 1: the 2 left go to "a"
    {'a': 3, 'b': 3, 'c': 1}
    """
    keys = list(weights)
    w = np.array([weights[k] for k in keys], dtype=np.float64)
    if not keys or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ConfigError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    shares = np.floor(w / w.sum() * int(total)).astype(np.int64)
    shares[0] += int(total) - int(shares.sum())
    return {k: int(v) for k, v in zip(keys, shares)}


#: How :class:`StratifiedBatchSampler` turns label shares into a batch.
QUOTA_MODES = ("exact", "study")


def _eligible(identities: Mapping[Hashable, int], min_images: int) -> tuple[dict, tuple]:
    if min_images < 1:
        raise ConfigError(f"min_images must be at least 1, got {min_images}")
    kept = {k: int(n) for k, n in identities.items() if int(n) >= min_images}
    excluded = tuple(k for k, n in identities.items() if int(n) < min_images)
    if excluded:
        logger.info("sampler: %d identit(ies) with fewer than %d images excluded", len(excluded), min_images)
    if not kept:
        raise ConfigError(f"no identity has at least {min_images} images; nothing to sample")
    return kept, excluded


def _check_sizes(people_per_batch: int, images_per_person: int) -> None:
    if people_per_batch < 1 or images_per_person < 1:
        raise ConfigError(f"people_per_batch and images_per_person must be positive, got {people_per_batch}, {images_per_person}")


class RandomBatchSampler:
    """FaceNet's ``sample_people``: shuffle the identities, take up to ``images_per_person`` images
    of each (a random choice) until the batch holds ``people_per_batch * images_per_person`` images
    (the last identity may contribute fewer). Each batch draws afresh, as FaceNet does.

    Parameters
    ----------
    identities
        identity → number of images.
    labels
        Optional identity → label, only carried into the batches (for composition plots).
    """

    def __init__(self, identities: Mapping[Hashable, int], *, people_per_batch: int = 45, images_per_person: int = 40,
                 seed: int = 0, labels: Mapping[Hashable, str] | None = None, min_images: int = 2) -> None:
        _check_sizes(people_per_batch, images_per_person)
        self.identities, self.excluded = _eligible(identities, min_images)
        self.people_per_batch, self.images_per_person, self.seed = people_per_batch, images_per_person, seed
        self.batch_size = people_per_batch * images_per_person
        self.labels = {k: str(labels.get(k, UNLABELLED)) if labels else UNLABELLED for k in self.identities}
        self._keys = list(self.identities)
        if sum(min(n, images_per_person) for n in self.identities.values()) < self.batch_size:
            raise ConfigError(f"the {len(self._keys)} eligible identities cannot fill a batch of {self.batch_size} images")

    def _batch(self, rng: np.random.Generator, epoch: int) -> Batch:
        ids, idx = [], []
        for k in rng.permutation(len(self._keys)):
            key = self._keys[k]
            take = min(self.identities[key], self.images_per_person, self.batch_size - len(ids))
            chosen = rng.permutation(self.identities[key])[:take]
            ids.extend([key] * take)
            idx.extend(int(i) for i in chosen)
            if len(ids) >= self.batch_size:
                break
        return Batch(tuple(ids), tuple(idx), tuple(self.labels[i] for i in ids), epoch)

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng(self.seed)
        while True:
            yield self._batch(rng, 0)

    def batches(self, n: int) -> list[Batch]:
        """The first ``n`` batches of this seed's stream (the same on every call)."""
        it = iter(self)
        return [next(it) for _ in range(int(n))]


class StratifiedBatchSampler:
    """Batches whose images are split between labels by fixed quotas.

    The quotas (images per label per batch) are the largest-remainder rounding
    of ``batch_size`` by ``proportions`` — by default the share of each label
    among the eligible identities, so a batch mirrors the dataset's label
    distribution exactly instead of only on average.

    Within a label, identities are drawn without replacement from a shuffled
    queue (up to ``images_per_person`` random images each; the last identity of
    a quota may give fewer); a label whose queue is empty starts its next pass
    with a fresh shuffle, so small labels cycle through their identities faster
    than large ones and every batch keeps the exact quotas. ``Batch.epoch`` counts
    the passes over the largest label. No identity appears twice in a batch: a
    label that runs out of identities for the batch being filled (all of them are
    already in it) **borrows** the rest of its quota from the other labels (the
    one with the most identities not yet in the batch first), counted in
    ``Batch.borrowed``; this happens only when a label's identities cannot fill
    its quota at all.

    ``quota_mode="study"`` reproduces the dissertation's sampler instead: quotas
    from :func:`study_quotas` (floors, the remainder to the first label); then,
    until the batch is full, a label is drawn at random at every step and, if
    its quota is not spent, one of its identities is drawn at random **with
    replacement** (an identity may appear twice in a batch) and gives up to
    ``images_per_person`` images; the quota is reduced by what it gave and may
    end below zero (a label can overshoot its quota by up to
    ``images_per_person − 1`` images). Nothing is borrowed and ``Batch.epoch``
    stays 0.

    Parameters
    ----------
    identities
        identity → number of images.
    labels
        identity → label (e.g. predicted ethnicity from the lookup table). Identities
        without a label get :data:`UNLABELLED`.
    proportions
        Optional label → weight (e.g. equal weights for a balanced design).
    quota_mode
        ``"exact"`` (largest remainder, the default) or ``"study"`` (the dissertation's).
    """

    def __init__(self, identities: Mapping[Hashable, int], labels: Mapping[Hashable, str], *, people_per_batch: int = 45,
                 images_per_person: int = 40, seed: int = 0, proportions: Mapping[str, float] | None = None,
                 min_images: int = 2, quota_mode: str = "exact") -> None:
        _check_sizes(people_per_batch, images_per_person)
        if quota_mode not in QUOTA_MODES:
            raise ConfigError(f"quota_mode must be one of {', '.join(QUOTA_MODES)}, got {quota_mode!r}")
        self.quota_mode = quota_mode
        self.identities, self.excluded = _eligible(identities, min_images)
        self.people_per_batch, self.images_per_person, self.seed = people_per_batch, images_per_person, seed
        self.batch_size = people_per_batch * images_per_person
        self.labels = {k: str(labels.get(k, UNLABELLED)) for k in self.identities}
        self.pools: dict[str, list[Hashable]] = {}
        for key, label in self.labels.items():
            self.pools.setdefault(label, []).append(key)
        self.pools = dict(sorted(self.pools.items()))
        if proportions is None:
            proportions = {label: len(keys) for label, keys in self.pools.items()}
        unknown = sorted(set(proportions) - set(self.pools))
        if unknown:
            raise ConfigError(f"proportions name label(s) {unknown} that no eligible identity carries; labels: {list(self.pools)}")
        self.proportions = {label: float(proportions.get(label, 0.0)) for label in self.pools}
        split = largest_remainder if quota_mode == "exact" else study_quotas
        self.quotas: dict[str, int] = split(self.batch_size, self.proportions)
        if sum(min(n, images_per_person) for n in self.identities.values()) < self.batch_size:
            raise ConfigError(f"the {len(self.identities)} eligible identities cannot fill a batch of {self.batch_size} images")

    def __iter__(self) -> Iterator[Batch]:
        return self._study_stream() if self.quota_mode == "study" else self._exact_stream()

    def _study_stream(self) -> Iterator[Batch]:
        """The dissertation's loop: a random label per step, a random identity of it (with replacement)."""
        rng = np.random.default_rng(self.seed)
        names = list(self.pools)
        while True:
            left = dict(self.quotas)
            ids, idx, labs = [], [], []
            while len(ids) < self.batch_size:
                label = names[int(rng.integers(len(names)))]
                if left[label] <= 0:
                    continue
                pool = self.pools[label]
                key = pool[int(rng.integers(len(pool)))]
                take = min(self.identities[key], self.images_per_person, self.batch_size - len(ids))
                ids.extend([key] * take)
                idx.extend(int(i) for i in rng.permutation(self.identities[key])[:take])
                labs.extend([label] * take)
                left[label] -= take
            yield Batch(tuple(ids), tuple(idx), tuple(labs), 0, 0)

    def _exact_stream(self) -> Iterator[Batch]:
        rng = np.random.default_rng(self.seed)
        queues: dict[str, list[Hashable]] = {label: [] for label in self.pools}
        passes = {label: -1 for label in self.pools}
        largest = max(self.pools, key=lambda label: (len(self.pools[label]), label))

        def next_identity(label: str, in_batch: set) -> Hashable | None:
            """The label's next identity not yet in this batch; None when it has none left for this batch."""
            if not queues[label]:
                keys = self.pools[label]
                order = [keys[i] for i in rng.permutation(len(keys))]
                # identities already in the batch go to the front: popped last, never twice in one batch
                queues[label] = [k for k in order if k in in_batch] + [k for k in order if k not in in_batch]
                passes[label] += 1
            if queues[label][-1] in in_batch:
                return None
            return queues[label].pop()

        while True:
            ids, idx, labs, borrowed = [], [], [], 0
            in_batch: set = set()
            for label, quota in self.quotas.items():
                need = quota
                while need > 0:
                    source, key = label, next_identity(label, in_batch)
                    if key is None:  # this label is out of identities for this batch: borrow
                        others = sorted((o for o in self.pools if o != label),
                                        key=lambda o: (-sum(k not in in_batch for k in self.pools[o]), o))
                        for source in others:
                            key = next_identity(source, in_batch)
                            if key is not None:
                                break
                    if key is None:  # cannot happen: the constructor checked the capacity
                        raise ConfigError("not enough distinct identities to fill a batch")
                    in_batch.add(key)
                    take = min(self.identities[key], self.images_per_person, need)
                    chosen = rng.permutation(self.identities[key])[:take]
                    ids.extend([key] * take)
                    idx.extend(int(i) for i in chosen)
                    labs.extend([source] * take)
                    if source != label:
                        borrowed += take
                    need -= take
            yield Batch(tuple(ids), tuple(idx), tuple(labs), max(passes[largest], 0), borrowed)

    def batches(self, n: int) -> list[Batch]:
        """The first ``n`` batches of this seed's stream (the same on every call)."""
        it = iter(self)
        return [next(it) for _ in range(int(n))]


def batch_composition(batches: Sequence[Batch], labels: Mapping[Hashable, str] | None = None):
    """A DataFrame with one row per batch and one column per label: images of that label in the batch.

    ``labels`` (identity → label) overrides the labels the batches carry, e.g. to
    show a random sampler's batches by predicted ethnicity.
    """
    import pandas as pd

    rows = []
    for number, batch in enumerate(batches):
        names = [labels.get(i, UNLABELLED) for i in batch.identities] if labels is not None else list(batch.labels)
        counts = pd.Series(names).value_counts().to_dict() if names else {}
        rows.append({"batch": number, **counts})
    frame = pd.DataFrame(rows).set_index("batch").fillna(0).astype(int)
    return frame[sorted(frame.columns)]
