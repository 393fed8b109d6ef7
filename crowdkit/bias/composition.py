"""What the batch samplers' batches are made of: quotas, label shares per batch, and how far they drift.

The batches chapter and the ethnicity chapter compare FaceNet's random
identity batches with the label-stratified ones (:mod:`crowdkit.bias.sampling`)
on the lookup table's **predicted** labels. :func:`compare_samplers` draws the
same number of batches from each sampler and returns a
:class:`SamplerComparison` whose methods give every table those pages show;
each per-label table carries the label's number of identities beside it.

Example
-------
>>> from crowdkit.bias.lookup import predicted_labels            # doctest: +SKIP
>>> batches = compare_samplers(predicted_labels(profile), people_per_batch=15, images_per_person=10)  # doctest: +SKIP
>>> batches.drift().round(3)                                      # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdkit.bias.sampling import (Batch, RandomBatchSampler, StratifiedBatchSampler, batch_composition,
                                    largest_remainder)
from crowdkit.common.exceptions import ConfigError

#: Batch sizes (images) the quota table is also shown for (FaceNet's default is 45 × 40 = 1,800).
QUOTA_SWEEP_SIZES = (50, 120, 450, 1800)


def label_shares(composition: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Each batch's images per label (a :func:`batch_composition` frame) as shares of the batch, in ``labels`` order."""
    return composition.div(composition.sum(axis=1), axis=0).reindex(columns=list(labels), fill_value=0)


def total_variation(composition: pd.DataFrame, target: pd.Series) -> pd.Series:
    """Per batch: half the summed absolute difference between its label shares and ``target`` (label → share)."""
    return 0.5 * (label_shares(composition, target.index) - target).abs().sum(axis=1)


def mean_absolute_deviation(composition: pd.DataFrame, target: pd.Series) -> pd.Series:
    """Per batch: the mean over labels of |batch share − target share| (``target``: label → share)."""
    return (label_shares(composition, target.index) - target).abs().mean(axis=1)


def quota_sweep(proportions: Mapping[str, float], sizes: Sequence[int] = QUOTA_SWEEP_SIZES) -> pd.DataFrame:
    """Largest-remainder quotas of ``proportions`` for several batch sizes: one column per size."""
    return pd.DataFrame({size: largest_remainder(size, proportions) for size in sizes}).rename_axis(
        "label").add_prefix("batch of ")


@dataclass(frozen=True, eq=False)
class SamplerComparison:
    """The same number of batches from FaceNet's random sampler and from the stratified one (or more samplers).

    ``samplers`` and ``batches`` are keyed by the sampler's name (``"random"``,
    ``"stratified"``, ``"study"``); ``groups`` is the labels' table
    (:meth:`crowdkit.bias.lookup.PredictedLabels.group_sizes`): identities,
    images and the share of identities, the target every batch is measured against.
    """

    samplers: Mapping[str, Any]
    batches: Mapping[str, Sequence[Batch]] = field(repr=False)
    groups: pd.DataFrame = field(repr=False)

    @property
    def target(self) -> pd.Series:
        return self.groups["share of identities"]

    @property
    def stratified(self) -> StratifiedBatchSampler:
        return self.samplers["stratified"]

    @property
    def n_batches(self) -> int:
        return len(next(iter(self.batches.values())))

    def compositions(self) -> dict[str, pd.DataFrame]:
        """Sampler → its batches' images per label (one row per batch)."""
        return {name: batch_composition(batches) for name, batches in self.batches.items()}

    def quota_table(self) -> pd.DataFrame:
        """Per label: identities, exact share of the batch, its floor, the quota, and whether it got a remainder image."""
        strat = self.stratified
        exact = pd.Series(strat.proportions) / sum(strat.proportions.values()) * strat.batch_size
        table = pd.DataFrame({"identities": self.groups["identities"], "exact share (images)": exact.round(3),
                              "floor": np.floor(exact).astype(int), "quota": pd.Series(strat.quotas)})
        table["got a remainder image"] = table["quota"] > table["floor"]
        if "study" in self.samplers:
            table["study quota (floors, remainder to the first)"] = pd.Series(self.samplers["study"].quotas)
        return table

    def quota_note(self) -> str:
        """Markdown: the batch size, what the quotas sum to, and the identities left out."""
        strat = self.stratified
        return (f"Batch size {strat.batch_size}; quotas sum to {sum(strat.quotas.values())}; "
                f"identities left out (fewer than 2 photos): {len(strat.excluded)}.")

    def label_table(self) -> pd.DataFrame:
        """Per label and sampler: identities, mean and std of the images per batch, batches without the label."""
        rows = []
        for name, frame in self.compositions().items():
            frame = frame.reindex(columns=self.target.index, fill_value=0)
            for label in self.target.index:
                rows.append({"sampler": name, "label": label, "identities": int(self.groups.loc[label, "identities"]),
                             "mean images": frame[label].mean().round(2), "std": frame[label].std().round(2),
                             "batches without this label": int((frame[label] == 0).sum())})
        return pd.DataFrame(rows).set_index(["label", "sampler"]).sort_index()

    def borrowing_note(self) -> str:
        """Markdown: stratified batches that borrowed images, and the passes over the largest label."""
        strat = self.batches["stratified"]
        return (f"Stratified batches that borrowed (a label had too few identities to fill its quota): "
                f"{sum(b.borrowed > 0 for b in strat)} of {len(strat)}; passes over the largest label: "
                f"{strat[-1].epoch + 1} (smaller labels cycle faster).")

    def distances(self) -> pd.Series:
        """Total-variation distance of every batch from the target, indexed by (sampler, batch)."""
        return pd.concat({name: total_variation(frame, self.target) for name, frame in self.compositions().items()},
                         names=["sampler", "batch"])

    def distance_summary(self) -> pd.DataFrame:
        """:meth:`distances` described per sampler (count, mean, std, quartiles), 3 places."""
        return self.distances().groupby("sampler").describe().round(3)

    def drift(self) -> pd.DataFrame:
        """Per sampler: batches, batch size, labels, and the mean absolute deviation of a batch's label shares
        from the target (mean, std and largest over batches), plus the mean total-variation distance."""
        rows = []
        for name, frame in self.compositions().items():
            mad = mean_absolute_deviation(frame, self.target)
            rows.append({"sampler": name, "batches": len(frame), "batch size": int(frame.sum(axis=1).iloc[0]),
                         "labels": len(self.target), "mean |share − target|": mad.mean(),
                         "std over batches": mad.std(), "largest": mad.max(),
                         "mean TV distance": total_variation(frame, self.target).mean()})
        return pd.DataFrame(rows).set_index("sampler")

    def share_table(self, label_summary: pd.DataFrame) -> pd.DataFrame:
        """Per label: identities, the stratified quota, and each sampler's mean and std share of a batch's images.

        ``label_summary``: :func:`crowdkit.bias.lookup.label_summary` (its ``identities`` column is used).
        """
        long = self.long_shares()
        stats = long.groupby(["label", "sampler"])["share"].agg(["mean", "std"]).unstack("sampler").round(3)
        stats.columns = [f"{sampler} share {stat}" for stat, sampler in stats.columns]
        return pd.DataFrame({"identities": label_summary.set_index("label")["identities"],
                             "stratified quota (images)": pd.Series(self.stratified.quotas)}).join(stats)

    def long_shares(self) -> pd.DataFrame:
        """One row per (sampler, batch, label): images and share of the batch (random and stratified only)."""
        comp = pd.concat({name: self.compositions()[name] for name in ("random", "stratified")},
                         names=["sampler", "batch"]).fillna(0)
        long = comp.stack().rename("images").reset_index().rename(columns={"level_2": "label"})
        long["share"] = long["images"] / self.stratified.batch_size
        return long


def compare_samplers(sizes: Mapping[Hashable, int], labels: Mapping[Hashable, str], groups: pd.DataFrame, *,
                     people_per_batch: int, images_per_person: int, seed: int = 0, n_batches: int = 200,
                     study: bool = False) -> SamplerComparison:
    """Draw ``n_batches`` from the random and the stratified sampler (and, with ``study``, the study's quota mode).

    Parameters
    ----------
    sizes, labels
        identity → photos and identity → predicted label (:class:`crowdkit.bias.lookup.PredictedLabels`).
    groups
        The labels' table (:meth:`~crowdkit.bias.lookup.PredictedLabels.group_sizes`).
    """
    shape = dict(people_per_batch=people_per_batch, images_per_person=images_per_person, seed=seed)
    samplers: dict[str, Any] = {"random": RandomBatchSampler(sizes, labels=labels, **shape),
                                "stratified": StratifiedBatchSampler(sizes, labels, **shape)}
    if study:
        samplers["study"] = StratifiedBatchSampler(sizes, labels, quota_mode="study", **shape)
    return SamplerComparison(samplers, {name: s.batches(n_batches) for name, s in samplers.items()}, groups)


def batch_size_sweep(sizes: Mapping[Hashable, int], labels: Mapping[Hashable, str], target: pd.Series, *,
                     people: Sequence[int], images_per_person: int, seed: int = 0,
                     n_batches: int = 200) -> tuple[pd.DataFrame, str]:
    """How far random batches stray from ``target`` for several batch sizes (people per batch).

    Returns the table (people, images per batch, mean and 95th-percentile
    total-variation distance) and Markdown naming the sizes that could not be
    drawn (too few identities, e.g. in the quick profile).
    """
    rows, skipped = [], []
    for count in people:
        try:
            sampler = RandomBatchSampler(sizes, people_per_batch=count, images_per_person=images_per_person,
                                         seed=seed, labels=labels)
        except ConfigError as error:
            skipped.append(f"{count} people per batch: {error}")
            continue
        d = total_variation(batch_composition(sampler.batches(n_batches)), target)
        rows.append({"people per batch": count, "images per batch": sampler.batch_size,
                     "mean distance": d.mean().round(3), "95th percentile": d.quantile(0.95).round(3)})
    return pd.DataFrame(rows), "\n".join(f"- {s}" for s in skipped)
