"""One model's per-group error rates over a set of LFW images, and the two arms compared group by group.

:func:`measure_model` runs :mod:`crowdkit.bias.group_rates` for one model at
its global threshold (the 10-fold protocol's on View 2), at the threshold
giving FMR = 10⁻³ over all impostors, and at each group's own FMR = 10⁻³
threshold, with identity-bootstrap intervals; :func:`arm_differences`
compares stratified minus random per group, with intervals over seeds and
identities, and :func:`arm_verdict` says in words whether any group moved
beyond noise. Groups are **predicted** labels with a measured error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from crowdkit.bias import group_rates as gr
from crowdkit.bias.protocol import FAR_TARGET

#: The operating points every group is measured at (names used in the tables).
GLOBAL, AT_FMR = "global threshold", "FMR 1e-3 (all impostors)"


@dataclass(frozen=True, eq=False)
class ModelGroupRates:
    """One model's per-group rates: thresholds, sizes, point rates, bootstrap replicates, impostor histograms."""

    model: str
    layout: gr.GroupLayout = field(repr=False)
    thresholds: Mapping[str, float]
    own_thresholds: Mapping[str, float]
    point: Mapping[str, Mapping[str, tuple[float, float]]] = field(repr=False)
    own_fnmr: Mapping[str, float] = field(repr=False)
    replicates: Mapping[str, Mapping[str, np.ndarray]] = field(repr=False)
    edges: np.ndarray = field(repr=False)
    histograms: Mapping[str, np.ndarray] = field(repr=False)
    #: group → FNMR replicates at its own threshold, the threshold held fixed (its own sampling error not included)
    own_replicates: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)

    def sizes(self) -> pd.DataFrame:
        """Per group: identities, images, genuine pairs, impostor pairs."""
        rows = []
        for g in self.layout.groups:
            m = self.layout.members(g)
            genuine, impostor = self.layout.pair_sizes(m)
            rows.append({"group": g, "identities": len(m), "images": int(self.layout.photos[m].sum()),
                         "genuine pairs": genuine, "impostor pairs": impostor})
        everyone = self.layout.pair_sizes(np.arange(self.layout.n_identities))[1]
        rows.append({"group": gr.CROSS, "identities": self.layout.n_identities, "images": int(self.layout.photos.sum()),
                     "genuine pairs": 0, "impostor pairs": everyone - sum(r["impostor pairs"] for r in rows)})
        return pd.DataFrame(rows).set_index("group")

    def to_frame(self) -> pd.DataFrame:
        """Per group: sizes, FNMR and FMR with 95 % intervals at both operating points, the group's own threshold."""
        table = self.sizes()
        for point in (GLOBAL, AT_FMR):
            for k, rate in enumerate(("FNMR", "FMR")):
                table[f"{rate} @ {point}"] = [_with_interval(self.point[point][g][k], self.replicates[point].get(g),
                                                             k) for g in table.index]
        table["own FMR 1e-3 threshold"] = [round(self.own_thresholds.get(g, np.nan), 4) for g in table.index]
        table["FNMR @ own threshold"] = [_with_interval(self.own_fnmr.get(g, np.nan), self.own_replicates.get(g), 0)
                                         for g in table.index]
        return table


def _with_interval(value: float, replicates: np.ndarray | None, column: int) -> str:
    if not np.isfinite(value):
        return "–"
    if replicates is None:
        return f"{value:.4f}"
    low, high = np.nanpercentile(replicates[:, column] if replicates.ndim == 2 else replicates, [2.5, 97.5])
    return f"{value:.4f} [{low:.4f}, {high:.4f}]"


def _thresholds(layout: gr.GroupLayout, x: np.ndarray, metric: str, far_target: float) -> tuple[float, dict]:
    everyone = layout.pair_sizes(np.arange(layout.n_identities))[1]
    sizes = {g: layout.pair_sizes(layout.members(g))[1] for g in layout.groups}
    keep = {"all": gr.keep_for(everyone, far_target), **{g: gr.keep_for(n, far_target) for g, n in sizes.items() if n}}
    smallest = gr.smallest_impostor_distances(layout, x, metric, keep)
    own = {g: gr.fmr_threshold(smallest[g], sizes[g], far_target) for g in sizes if sizes[g]}
    return gr.fmr_threshold(smallest["all"], everyone, far_target), own


def measure_model(model: str, embeddings: np.ndarray, names: np.ndarray, labels: Mapping[str, str], *,
                  metric: str, global_threshold: float, n_boot: int = 1000, seed: int = 0,
                  far_target: float = FAR_TARGET, bins: int = 400) -> ModelGroupRates:
    """Every group's rates for one model's embeddings (n, D) of images of people ``names`` (n,)."""
    layout = gr.GroupLayout.build(names, labels)
    x = np.asarray(embeddings)[layout.order]
    at_fmr, own = _thresholds(layout, x, metric, far_target)
    points = {GLOBAL: global_threshold, AT_FMR: at_fmr}
    counts = gr.match_counts(layout, x, [global_threshold, at_fmr, *own.values()], metric)
    draws = {g: gr.bootstrap_draws(layout, g, n_boot, seed) for g in layout.groups}
    point, replicates = {}, {}
    for t, name in enumerate(points):
        point[name] = gr.rates(layout, counts, t)
        replicates[name] = {g: gr.bootstrap_rates(layout, counts, t, g, draws[g]) for g in layout.groups}
        replicates[name][gr.CROSS] = gr.cross_bootstrap_fmr(layout, counts, t, draws)
    own_fnmr = {g: gr.rates(layout, counts, 2 + k)[g][0] for k, g in enumerate(own)}
    own_replicates = {g: gr.bootstrap_rates(layout, counts, 2 + k, g, draws[g]) for k, g in enumerate(own)}
    top = float(np.nanmax([at_fmr, global_threshold, *own.values()])) * 2.5
    edges = np.linspace(0.0, top, bins + 1)
    return ModelGroupRates(model, layout, points, own, point, own_fnmr, replicates, edges,
                           gr.impostor_histograms(layout, x, metric, edges), own_replicates)


#: The rates the arms are compared on: (operating point, column of the replicates, name).
COMPARED = ((GLOBAL, 0, "FNMR"), (GLOBAL, 1, "FMR"), (AT_FMR, 0, "FNMR"), (AT_FMR, 1, "FMR"))


def arm_differences(by_run: Mapping[tuple[str, int], ModelGroupRates], *, seed: int = 0) -> pd.DataFrame:
    """Stratified minus random per group and rate, mean over seeds, 95 % interval over seeds and identities.

    ``by_run``: (sampler, seed) → rates. Runs of one seed share the identity draws, so each bootstrap
    replicate pairs the arms seed by seed; the seeds are resampled per replicate too.
    """
    seeds = sorted({s for sampler, s in by_run if sampler == "random"} & {s for sa, s in by_run if sa == "stratified"})
    if not seeds:
        return pd.DataFrame(columns=["group", "rate", "difference", "low", "high", "seeds"])
    rng = np.random.default_rng(seed)
    first = by_run[("random", seeds[0])]
    rows = []
    for point, column, rate in COMPARED:
        for g in first.layout.groups:
            diffs = np.stack([_replicate(by_run[("stratified", s)], point, g, column)
                              - _replicate(by_run[("random", s)], point, g, column) for s in seeds])
            pick = rng.integers(0, len(seeds), size=(diffs.shape[1], len(seeds)))
            resampled = np.nanmean(np.take_along_axis(diffs.T, pick, axis=1), axis=1)
            point_diff = np.mean([by_run[("stratified", s)].point[point][g][column]
                                  - by_run[("random", s)].point[point][g][column] for s in seeds])
            low, high = np.nanpercentile(resampled, [2.5, 97.5])
            rows.append({"group": g, "rate": f"{rate} @ {point}", "difference": point_diff, "low": low,
                         "high": high, "seeds": len(seeds)})
    return pd.DataFrame(rows)


def _replicate(rates: ModelGroupRates, point: str, group: str, column: int) -> np.ndarray:
    return rates.replicates[point][group][:, column]


def arm_verdict(differences: pd.DataFrame) -> str:
    """Markdown: whether stratification changed any group's error beyond noise (an interval that excludes 0)."""
    if differences.empty:
        return "No seed was trained with both arms, so the arms cannot be compared group by group."
    moved = differences[(differences["low"] > 0) | (differences["high"] < 0)]
    n = int(differences["seeds"].iloc[0])
    if moved.empty:
        return (f"Over {n} seed(s) and the identity bootstrap, stratification **did not change any group's error "
                "beyond noise**: every 95 % interval of stratified minus random contains zero.")
    listed = "; ".join(f"{r.group} {r.rate}: {r.difference:+.4f} [{r.low:+.4f}, {r.high:+.4f}]"
                       for r in moved.itertuples())
    return (f"Over {n} seed(s) and the identity bootstrap, stratification changed {len(moved)} of "
            f"{len(differences)} group rates beyond noise (95 % interval excluding zero): {listed}. "
            "With few seeds and many comparisons, one or two such intervals are expected by chance.")
