"""Part II's findings: the thesis' claim, ours under its protocol, ours under the corrected one.

The evaluation chapter saves the tables this module reads
(:func:`save_findings_tables`); the landing page of Part II (the bias summary
notebook) opens with three sentences and one figure built from them, so every
number on it is computed by the build:

1. the thesis' claim: stratified ("modified") minus random ("base") batches in
   its Table 5.1, accuracy and AUC on LFW, one training run per arm and budget;
2. our measurement under its protocol: the same two numbers on LFW View 2, the
   mean of stratified minus random over seeds that share everything but the
   sampler, with a 95 % t-interval;
3. our measurement under the corrected protocol: per predicted group, over all
   the LFW images of the profile, FNMR and FMR at each model's global
   threshold, stratified minus random with a 95 % interval over seeds and
   identities (:func:`crowdkit.bias.group_study.arm_differences`).

Group labels are a classifier's predictions with a measured error, never facts
about a person; the page says so and shows the group sizes beside every rate.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crowdkit.bias.group_study import arm_verdict
from crowdkit.bias.summary import paired_differences
from crowdkit.common.run_tables import collect_run_tables, download_links, save_run_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The tables the evaluation chapter saves for the landing page, in the order its download links list them.
TABLES = ("per_run", "group_differences", "group_sizes", "classifier")
#: The metrics the thesis' claim rests on, as Table 5.1 and our per-run table name them.
CLAIM_METRICS = {"accuracy": "accuracy", "AUC": "auc"}
#: The three measurements, in the order the page states them.
MEASUREMENTS = ("thesis, as printed", "ours, thesis' protocol", "ours, corrected protocol")
#: The per-group rates the corrected protocol compares (at each model's global threshold).
GROUP_RATES = ("FNMR @ global threshold", "FMR @ global threshold")


def save_findings_tables(evaluated: Any, everything: Any) -> str:
    """Save the evaluation's per-run results and per-group comparison as run tables; Markdown download links.

    ``evaluated``: :class:`crowdkit.bias.lfw_study.RunEvaluations`;
    ``everything``: :class:`crowdkit.bias.lfw_study.AllLFW`.
    """
    from scipy.stats import binomtest

    measured = everything.measured
    wrong = int(round(measured.error_rate * measured.report.n))
    interval = binomtest(wrong, measured.report.n).proportion_ci(method="wilson")
    first = next(iter(everything.rates.values()))
    tables = {
        "per_run": evaluated.per_run(),
        "group_differences": everything.arm_differences(),
        "group_sizes": first.sizes().reset_index(),
        "classifier": pd.DataFrame([{"classifier": measured.name, "error_rate": measured.error_rate,
                                     "low": interval.low, "high": interval.high, "n_test": measured.report.n}]),
    }
    for name, table in tables.items():
        save_run_table(name, table)
    return download_links(names=TABLES)


@dataclass(frozen=True)
class BiasFindings:
    """The saved tables of one evaluation run and the thesis' Table 5.1 (see the module docstring).

    ``thesis``: Table 5.1 (epochs, type, accuracy, auc, …); ``per_run``: one row per run and epoch budget;
    ``differences``: per group and rate, stratified minus random with its interval; ``sizes``: per group,
    identities, images, genuine and impostor pairs; ``classifier``: its measured error, interval and test size.
    """

    thesis: pd.DataFrame
    per_run: pd.DataFrame
    differences: pd.DataFrame
    sizes: pd.DataFrame
    classifier: pd.DataFrame

    @property
    def empty(self) -> bool:
        """No evaluation run saved its tables yet."""
        return self.per_run.empty

    @property
    def last_epochs(self) -> int:
        """The epoch budget every run reached (the one the arms are compared at)."""
        return int(self.per_run["epochs"].max())

    def thesis_differences(self) -> pd.DataFrame:
        """Per Table 5.1 budget and metric: modified minus base, as printed (one run per arm, so no interval)."""
        wide = self.thesis.pivot(index="epochs", columns="type", values=list(CLAIM_METRICS.values()))
        rows = [{"epochs": int(epochs), "metric": metric,
                 "stratified − random": float(wide.loc[epochs, (column, "modified")] - wide.loc[epochs, (column, "base")])}
                for epochs in wide.index for metric, column in CLAIM_METRICS.items()]
        return pd.DataFrame(rows)

    def our_differences(self) -> pd.DataFrame:
        """Per metric, at :attr:`last_epochs`: stratified minus random over seeds, with its 95 % t-interval."""
        last = self.per_run[self.per_run["epochs"] == self.last_epochs]
        return paired_differences(last, metrics=tuple(CLAIM_METRICS))

    def group_differences(self) -> pd.DataFrame:
        """The compared group rates, each with its group's sizes beside it."""
        rows = self.differences[self.differences["rate"].isin(GROUP_RATES)]
        return rows.merge(self.sizes, on="group", how="left")

    def to_frame(self) -> pd.DataFrame:
        """One row per measurement and metric: stratified minus random, its 95 % interval and what it rests on."""
        thesis = self.thesis_differences().assign(measurement=MEASUREMENTS[0], low=np.nan, high=np.nan,
                                                  rests_on="one run per arm")
        thesis["metric"] = thesis["metric"] + " @ " + thesis["epochs"].astype(str) + " epochs"
        columns = ["measurement", "metric", "stratified − random", "low", "high", "rests_on"]
        if self.empty:
            return thesis[columns].round(4)
        ours = self.our_differences().rename(columns={"95% CI low": "low", "95% CI high": "high"})
        ours = ours.assign(measurement=MEASUREMENTS[1], rests_on=[f"{n} seeds per arm" for n in ours["seeds"]])
        ours["metric"] = ours["metric"] + f" @ {self.last_epochs} epochs"
        groups = self.group_differences().rename(columns={"difference": "stratified − random"})
        groups = groups.assign(measurement=MEASUREMENTS[2], metric=groups["group"] + ": " + groups["rate"],
                               rests_on=[f"{seeds} seeds; {people} people, {genuine:,} genuine and {impostor:,} "
                                         "impostor pairs" for seeds, people, genuine, impostor in
                                         zip(groups["seeds"], groups["identities"], groups["genuine pairs"],
                                             groups["impostor pairs"])])
        return pd.concat([thesis[columns], ours[columns], groups[columns]], ignore_index=True).round(4)


def load_findings(runs_dir: str | os.PathLike = "book/runs/bias") -> BiasFindings:
    """The tables the evaluation run under ``runs_dir`` saved, with the thesis' Table 5.1."""
    from crowdkit.bias.reported import load_thesis_tables

    tables = {name: collect_run_tables(Path(runs_dir), name).drop(columns="run") for name in TABLES}
    return BiasFindings(load_thesis_tables().evaluation_frame(), tables["per_run"], tables["group_differences"],
                        tables["group_sizes"], tables["classifier"])


def _interval(value: float, low: float, high: float, digits: int = 4) -> str:
    if np.isnan(low) or np.isnan(high):
        return f"{value:+.{digits}f}"
    return f"{value:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _claim(found: BiasFindings) -> str:
    diffs = found.thesis_differences().set_index(["metric", "epochs"])["stratified − random"]
    budgets = sorted({e for _, e in diffs.index})

    def listed(metric: str) -> str:
        return ", ".join(f"{diffs[(metric, e)]:+.3f}" for e in budgets)

    higher_auc, lower_accuracy = int((diffs["AUC"] > 0).sum()), int((diffs["accuracy"] < 0).sum())
    return (f"- **The thesis' claim.** Stratified batches improve FaceNet, above all its AUC. Its Table 5.1 gives "
            f"stratified minus random AUC of {listed('AUC')} at {', '.join(map(str, budgets))} epochs "
            f"(higher in {higher_auc} of {len(budgets)}) and accuracy of {listed('accuracy')} (lower in "
            f"{lower_accuracy} of {len(budgets)}); each is one training run per arm, so none carries an interval.")


def _ours_thesis_protocol(found: BiasFindings, evaluation_page: str) -> str:
    ours = found.our_differences().set_index("metric")
    parts = [f"{metric} {_interval(r['stratified − random'], r['95% CI low'], r['95% CI high'])}"
             for metric, r in ours.iterrows()]
    excluded = [metric for metric, r in ours.iterrows() if r["CI excludes 0"]]
    verdict = ("both intervals contain zero: no difference beyond noise" if not excluded else
               f"the interval of {' and '.join(excluded)} excludes zero")
    seeds = int(ours["seeds"].iloc[0])
    return (f"- **Ours under the thesis' protocol** (LFW View 2, 10 folds, after {found.last_epochs} epochs, "
            f"{seeds} seeds per arm): stratified minus random {'; '.join(parts)} (mean over seeds, 95 % "
            f"t-interval); {verdict} ([the evaluation]({evaluation_page})).")


def _ours_corrected(found: BiasFindings, ethnicity_page: str) -> str:
    groups = found.group_differences()
    sizes = found.sizes[found.sizes["group"].isin(groups["group"].unique())]
    people = ", ".join(f"{g} {n}" for g, n in zip(sizes["group"], sizes["identities"]))
    c = found.classifier.iloc[0] if not found.classifier.empty else None
    error = ("" if c is None else f" The groups are predictions of the `{c['classifier']}` classifier, wrong on "
             f"{c['error_rate']:.1%} [{c['low']:.1%}, {c['high']:.1%}] of {int(c['n_test'])} held-out UTKFace faces "
             f"([the classifier]({ethnicity_page})), never facts about a person.")
    return (f"- **Ours under the corrected protocol** (every LFW image of the profile, FNMR and FMR per predicted "
            f"group at each model's global threshold, intervals over seeds and people; people per group: "
            f"{people}): {arm_verdict(groups)}{error}")


def findings_markdown(found: BiasFindings, *, evaluation_page: str = "../bias/4-evaluation.ipynb",
                      ethnicity_page: str = "../bias/1-ethnicity.ipynb") -> str:
    """Three sentences, one per measurement, with the numbers of this build and where to read more."""
    claim = _claim(found)
    if found.empty:
        return claim + "\n- No finished evaluation of ours yet: run `crowdkit run data/plans/bias.yaml`."
    return "\n".join([claim, _ours_thesis_protocol(found, evaluation_page), _ours_corrected(found, ethnicity_page)])


def plot_findings(found: BiasFindings) -> "Figure":
    """Left: stratified minus random accuracy and AUC, the thesis' per budget beside ours (with its interval).
    Right: ours per predicted group, FNMR and FMR at the global threshold, with 95 % intervals and group sizes."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1.4]})
    thesis = found.thesis_differences()
    for k, metric in enumerate(CLAIM_METRICS):
        rows = thesis[thesis["metric"] == metric]
        left.scatter(np.full(len(rows), k - 0.15), rows["stratified − random"], marker="s", color="C0",
                     label="thesis (one run per budget)" if k == 0 else None)
    if not found.empty:
        ours = found.our_differences().set_index("metric")
        for k, metric in enumerate(CLAIM_METRICS):
            r = ours.loc[metric]
            left.errorbar(k + 0.15, r["stratified − random"], fmt="o", color="C1", capsize=3,
                          yerr=[[r["stratified − random"] - r["95% CI low"]], [r["95% CI high"] - r["stratified − random"]]],
                          label=f"ours, {int(r['seeds'])} seeds, 95 % CI" if k == 0 else None)
        groups = found.group_differences()
        labels = [f"{g} ({n} people)\n{rate.split(' @ ')[0]}" for g, n, rate in
                  zip(groups["group"], groups["identities"], groups["rate"])]
        y = np.arange(len(groups))
        right.errorbar(groups["difference"], y, xerr=[groups["difference"] - groups["low"],
                                                      groups["high"] - groups["difference"]],
                       fmt="o", color="C1", capsize=3)
        right.set_yticks(y, labels, fontsize=7)
        right.invert_yaxis()
    right.axvline(0, color="k", lw=0.8)
    right.set_xlabel("stratified − random, at each model's global threshold")
    right.set_title("per predicted group (labels are predictions)", fontsize=10)
    left.axhline(0, color="k", lw=0.8)
    left.set_xticks(range(len(CLAIM_METRICS)), list(CLAIM_METRICS))
    left.set_ylabel("stratified − random")
    left.set_title("LFW View 2: the thesis and ours", fontsize=10)
    left.legend(fontsize=7)
    fig.tight_layout()
    return fig
