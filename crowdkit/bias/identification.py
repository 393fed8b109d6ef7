"""Identification at the thesis' criterion: every LFW person with ≥ 10 photos, all their photos, closed and open set.

Closed set: half of each person's photos fit a linear SVC or give the
person's mean, the other half are identified
(:func:`crowdkit.bias.evaluate.svc_classification`,
:func:`~crowdkit.bias.evaluate.nearest_mean_classification`, split stratified
by person, seeded). Open set: the same means form the gallery, and people
with 2–9 photos are distractors that must be rejected: half of the distractor
people (seeded) choose the rejection distance on the fit side (the one at which
:data:`FIT_FPIR` of their photos are accepted), the other half are probes with
the gallery people's test photos. Accuracy intervals bootstrap the test
photos clustered by person (seeded).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

from crowdkit.bias import evaluate as ev

#: The share of the fit-side distractors' photos accepted at the open-set rejection distance.
FIT_FPIR = 0.05


def clustered_interval(correct: np.ndarray, counts: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of Σ correct / Σ counts when the people (clusters) are resampled with replacement."""
    correct, counts = np.asarray(correct, float), np.asarray(counts, float)
    picks = np.random.default_rng(seed).integers(0, len(counts), size=(n_boot, len(counts)))
    draws = correct[picks].sum(1) / counts[picks].sum(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _halves(names: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """bool (n,): the fit half of each person's photos (every person keeps ⌊n/2⌋ for fitting, at least one)."""
    fit = np.zeros(len(names), dtype=bool)
    for name in np.unique(names):
        rows = rng.permutation(np.flatnonzero(names == name))
        fit[rows[:max(1, len(rows) // 2)]] = True
    return fit


def open_set(x: np.ndarray, names: np.ndarray, *, min_images: int = 10, seed: int = 0) -> dict:
    """Open-set nearest-mean identification: gallery people (≥ ``min_images``), distractors (2 to min_images − 1).

    Returns rejection distance, open-set accuracy (gallery probes identified and accepted, distractors rejected),
    FNIR, FPIR on the test distractors, sizes, and the per-person (correct, photos) for the clustered interval.
    """
    x, names = _normalised(x), np.asarray(names)
    people, counts = np.unique(names, return_counts=True)
    gallery_people = people[counts >= min_images]
    distractors = people[(counts >= 2) & (counts < min_images)]
    rng = np.random.default_rng(seed)
    in_gallery = np.isin(names, gallery_people)
    fit = _halves(names, rng) & in_gallery
    means = _normalised(np.stack([x[fit & (names == p)].mean(0) for p in gallery_people]))
    fit_distractors = rng.permutation(distractors)[: len(distractors) // 2]
    d = cdist(x, means)  # (photos, people); a broadcast difference would hold photos × people × 128 floats (4 GB)
    nearest, best = gallery_people[d.argmin(1)], d.min(1)
    tau = float(np.quantile(best[np.isin(names, fit_distractors)], FIT_FPIR)) if len(fit_distractors) else np.inf
    probe = (in_gallery & ~fit) | (np.isin(names, distractors) & ~np.isin(names, fit_distractors))
    accepted = best <= tau
    right = np.where(in_gallery, accepted & (nearest == names), ~accepted)
    per_person = pd.DataFrame({"person": names[probe], "correct": right[probe]}).groupby("person")["correct"].agg(
        ["sum", "size"])
    genuine_probe, distractor_probe = probe & in_gallery, probe & ~in_gallery
    return {"rejection distance": tau, "accuracy": float(right[probe].mean()),
            "FNIR": float(1 - right[genuine_probe].mean()), "FPIR": float(accepted[distractor_probe].mean()),
            "gallery people": len(gallery_people), "distractor probes": int(distractor_probe.sum()),
            "gallery probes": int(genuine_probe.sum()), "per_person": per_person}


def thesis_nearest_mean(x: np.ndarray, names: np.ndarray, *, min_images: int = 10, seed: int = 0) -> dict:
    """Nearest mean with the thesis' roles: one photo per person is stored, the mean of the rest is the query.

    Each person with ≥ ``min_images`` photos keeps one seeded photo as their stored embedding; the
    (L2-normalised) mean of their other photos is matched to the nearest stored embedding (euclidean).
    Returns the accuracy, the people, and per person whether their mean found them (for the interval).
    """
    x, names = _normalised(x), np.asarray(names)
    people, counts = np.unique(names, return_counts=True)
    people = people[counts >= min_images]
    rng = np.random.default_rng(seed)
    stored, queries = [], []
    for person in people:
        rows = rng.permutation(np.flatnonzero(names == person))
        stored.append(x[rows[0]])
        queries.append(x[rows[1:]].mean(0))
    if not len(people):
        return {"accuracy": float("nan"), "people": 0, "correct": np.zeros(0)}
    stored, queries = np.stack(stored), _normalised(np.stack(queries))
    found = cdist(queries, stored).argmin(1)
    correct = (found == np.arange(len(people))).astype(float)
    return {"accuracy": float(correct.mean()), "people": len(people), "correct": correct}


def identification_table(models: Mapping[str, object], *, min_images: int = 10, seed: int = 0,
                         n_boot: int = 1000) -> pd.DataFrame:
    """Per model: closed-set SVC and nearest-mean accuracy and open-set accuracy, each with a 95 % interval.

    ``models``: name → :class:`crowdkit.bias.lfw_images.LFWImages` (or anything with ``embeddings``, ``names``
    and ``identities_with``).
    """
    rows = []
    for name, images in models.items():
        x, ids = images.identities_with(min_images)
        for method in (ev.svc_classification, ev.nearest_mean_classification):
            res = method(x, ids, min_images=min_images, test_size=0.5, seed=seed)
            t = res.per_identity
            low, high = clustered_interval(t["accuracy"] * t["n_test"], t["n_test"], n_boot=n_boot, seed=seed)
            rows.append({"model": name, "task": f"closed set, {res.method}", "accuracy": res.accuracy,
                         "95% low": low, "95% high": high, "people": res.n_identities, "fit photos": res.n_train,
                         "test photos": res.n_test, "distractor photos": 0})
        thesis = thesis_nearest_mean(images.embeddings, images.names, min_images=min_images, seed=seed)
        low, high = clustered_interval(thesis["correct"], np.ones(len(thesis["correct"])), n_boot=n_boot, seed=seed)
        rows.append({"model": name, "task": "closed set, nearest mean, the thesis' roles (one stored photo per "
                                            "person, the mean of the rest as the query)", "accuracy": thesis["accuracy"],
                     "95% low": low, "95% high": high, "people": thesis["people"], "fit photos": thesis["people"],
                     "test photos": thesis["people"], "distractor photos": 0})
        found = open_set(images.embeddings, images.names, min_images=min_images, seed=seed)
        pp = found["per_person"]
        low, high = clustered_interval(pp["sum"], pp["size"], n_boot=n_boot, seed=seed)
        rows.append({"model": name, "task": f"open set, nearest mean (FNIR {found['FNIR']:.3f}, FPIR "
                                            f"{found['FPIR']:.3f})", "accuracy": found["accuracy"],
                     "95% low": low, "95% high": high, "people": found["gallery people"],
                     "fit photos": None, "test photos": found["gallery probes"],
                     "distractor photos": found["distractor probes"]})
    return pd.DataFrame(rows).round(4)
