"""Every LFW image (or a profile's deterministic subset of them) embedded once per model, cached.

The per-group error rates and the identification section of the evaluation
chapter use LFW's 13,233 images, not only the 7,701 the View 2 pairs use.
dlib descriptors cost ~0.1–0.2 s per photo on two cores, so the ``quick`` and
``default`` profiles take a subset (:class:`LFWSubset`): people with at least
two photos (a genuine pair needs two), those in the profile's View 2 pairs
first (their photos are already embedded), the rest in a seeded order, each
capped at ``max_images`` photos (a seeded choice). ``full`` takes every image.
The trained arms map the cached dlib descriptors through their heads
(:func:`crowdkit.bias.evaluate.embed_paths`), which costs seconds.

Example
-------
>>> subset = LFWSubset(max_identities=200, max_images=10)
>>> images = embed_lfw_images("dlib", select_lfw_images(subset, prefer=pair_names))   # doctest: +SKIP
>>> images.n_identities, images.n_images                                              # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np

from crowdkit.bias.evaluate import embed_paths
from crowdkit.bias.lookup import sample_images
from crowdkit.common import config


@dataclass(frozen=True)
class LFWSubset:
    """Which LFW images a profile embeds: ``max_identities`` people, ``max_images`` photos each (None: all)."""

    max_identities: int | None = None
    max_images: int | None = None
    seed: int = 0

    @property
    def is_everything(self) -> bool:
        return self.max_identities is None and self.max_images is None

    def describe(self) -> str:
        """Markdown: the rule that picked the images."""
        if self.is_everything:
            return "every LFW image"
        return (f"up to {self.max_identities or 'all'} LFW people with at least two photos (those in the evaluated "
                f"View 2 pairs first, the rest in a seeded order), up to {self.max_images or 'all'} photos each")


def _order_key(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def select_lfw_images(subset: LFWSubset, *, people: Mapping[str, Sequence[Path]] | None = None,
                      prefer: Collection[str] = ()) -> list[Path]:
    """The image paths ``subset`` keeps, grouped by person (people sorted by name, photos sorted).

    ``people``: LFW identity → photos (:func:`crowdkit.common.datasets.lfw_people` when None);
    ``prefer``: identities to take first (those whose pair photos are already embedded).
    """
    from crowdkit.common.datasets import lfw_people

    people = dict(people) if people is not None else lfw_people()
    if subset.is_everything:
        return [p for name in sorted(people) for p in sorted(people[name])]
    prefer = set(prefer)
    candidates = [name for name in people if len(people[name]) >= 2]
    order = sorted(candidates, key=lambda n: (n not in prefer, _order_key(n, subset.seed)))[:subset.max_identities]
    paths: list[Path] = []
    for name in sorted(order):
        photos = people[name] if subset.max_images is None else sample_images(
            list(people[name]), name, max_images=subset.max_images, seed=subset.seed)
        paths += sorted(Path(p) for p in photos)
    return paths


@dataclass(frozen=True, eq=False)
class LFWImages:
    """One model's embeddings of a set of LFW images, grouped by person.

    ``names`` (n,) are the LFW folder names; ``status`` the descriptor status
    codes (:mod:`crowdkit.bias.descriptors`); ``metric`` the model's distance.
    """

    model: str
    metric: str
    paths: tuple = field(repr=False)
    names: np.ndarray = field(repr=False)
    embeddings: np.ndarray = field(repr=False)
    status: np.ndarray = field(repr=False)

    @property
    def n_images(self) -> int:
        return len(self.paths)

    @property
    def n_identities(self) -> int:
        return len(np.unique(self.names))

    def identities_with(self, min_images: int) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (M, D) and names (M,) of the images whose person has ≥ ``min_images`` of them here."""
        names, counts = np.unique(self.names, return_counts=True)
        keep = np.isin(self.names, names[counts >= min_images])
        return self.embeddings[keep], self.names[keep]

    def describe(self) -> str:
        """Markdown: how many people and images."""
        return f"{self.n_identities:,} LFW people, {self.n_images:,} images"


def embed_lfw_images(model: str, paths: Sequence[Path], *, root: Path | None = None,
                     progress: bool = False) -> LFWImages:
    """Embed ``paths`` (LFW images under ``root``) with ``model`` (``"dlib"`` or a checkpoint), cached."""
    root = Path(root) if root is not None else config.data_path("lfw", "images_deepfunneled")
    paths = [Path(p) for p in paths]
    emb, status, metric = embed_paths(model, paths, root=root, cache_name="lfw", progress=progress)
    return LFWImages(str(model), metric, tuple(paths), np.array([p.parent.name for p in paths]), emb, status)
