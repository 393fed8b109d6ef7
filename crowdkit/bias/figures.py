"""The bias chapters' figures: each function draws one figure from a typed result and returns it.

Every figure that shows per-group numbers names the groups as **predicted**
labels (the ethnicity classifier's, with a measured error) and, where the page
has them, their sizes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from crowdkit.bias import cluster
from crowdkit.common.datasets import RACE_NAMES

#: How the two arms are named on the pages.
ARM = {"random": "base (random)", "stratified": "modified (stratified)"}


def conflicting_race_groups(folder: Path, groups: Sequence[Sequence[str]], n: int = 4) -> Any:
    """Byte-identical UTKFace files whose race labels disagree, one row per group (title: race, age, gender)."""
    groups = list(groups)[:n]
    width = max(len(g) for g in groups)
    fig, axes = plt.subplots(len(groups), width, figsize=(2.2 * width, 2.4 * len(groups)), squeeze=False)
    for row, group in zip(axes, groups):
        for ax in row:
            ax.axis("off")
        for ax, name in zip(row, group):
            age, gender, race = name.split("_")[:3]
            ax.imshow(plt.imread(Path(folder) / name))
            ax.set_title(f"{RACE_NAMES[int(race)]}, {age}, {'mf'[int(gender)]}", fontsize=9)
    fig.suptitle("byte-identical files with conflicting race labels (title: race, age, gender from the name)")
    fig.tight_layout()
    return fig


def class_balance(class_counts: Mapping[str, int]) -> pd.DataFrame:
    """Bar chart of UTKFace's images per label; returns the counts with their shares (the table under it)."""
    counts = pd.Series(class_counts, name="images").rename_axis("UTKFace label")
    ax = counts.plot.bar(color=sns.color_palette("colorblind", 5), figsize=(6, 3), rot=0)
    ax.bar_label(ax.containers[0])
    ax.set_ylabel("images after deduplication")
    plt.show()
    return counts.to_frame().assign(share=(counts / counts.sum()).round(3))


def confusion(confusion_counts: pd.DataFrame) -> Any:
    """The confusion matrix in counts and row-normalised (recall on the diagonal), side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sns.heatmap(confusion_counts, annot=True, fmt="d", cmap="Blues", cbar=False, ax=axes[0])
    axes[0].set_title("confusion (counts)")
    rates = confusion_counts.div(confusion_counts.sum(axis=1), axis=0)
    sns.heatmap(rates, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=axes[1])
    axes[1].set_title("row-normalised (recall on the diagonal)")
    fig.tight_layout()
    plt.show()
    return fig


def label_confidence(lookup: pd.DataFrame, order: Sequence[str]) -> Any:
    """Stacked histogram of each identity's label confidence, by predicted label."""
    fig, ax = plt.subplots(figsize=(7, 3))
    sns.histplot(data=lookup, x="confidence", hue="label", hue_order=list(order), multiple="stack", bins=20, ax=ax)
    ax.set_title("confidence of the predicted label (mean probability over each identity's photos)")
    plt.show()
    return fig


def batch_share_boxes(long: pd.DataFrame, label_summary: pd.DataFrame, n_batches: int) -> Any:
    """Box plot of a batch's share per predicted label and sampler, with the identities' share marked.

    ``long``: :meth:`crowdkit.bias.composition.SamplerComparison.long_shares`;
    ``label_summary``: :func:`crowdkit.bias.lookup.label_summary` (order, sizes and shares).
    """
    order = label_summary["label"].tolist()
    by_label = label_summary.set_index("label")
    fig, ax = plt.subplots(figsize=(9, 4))
    sns.boxplot(data=long, x="label", y="share", hue="sampler", order=order, ax=ax)
    ax.scatter(range(len(order)), [by_label.loc[label, "share"] for label in order], marker="_", s=600,
               color="black", zorder=5, label="share of identities")
    ax.set_ylabel("share of a batch's images")
    ax.set_xlabel("predicted label (n identities: "
                  + ", ".join(f"{label} {int(by_label.loc[label, 'identities'])}" for label in order) + ")")
    ax.set_title(f"composition of {n_batches} batches per sampler (stratified: flat at its quota)")
    ax.legend()
    plt.show()
    return fig


def batch_shares(compositions: Mapping[str, pd.DataFrame], labels: Sequence[str], n: int = 50) -> Any:
    """Stacked bars of each sampler's first ``n`` batches by predicted label share, one panel per sampler."""
    from crowdkit.bias.composition import label_shares

    fig, axes = plt.subplots(1, len(compositions), figsize=(6 * len(compositions), 4), squeeze=False)
    names = list(compositions)
    for ax, name in zip(axes[0], names):
        shares = label_shares(compositions[name], labels)
        shares.iloc[:n].plot.bar(stacked=True, width=1.0, ax=ax, legend=name == names[-1],
                                 color=sns.color_palette("colorblind", len(labels)))
        ax.set_title(f"{name}: first {n} batches")
        ax.set_xticks([])
        ax.set_ylabel("share of the batch's images")
    axes[0][-1].legend(title="predicted label", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    plt.show()
    return fig


def distance_histogram(distances: pd.Series) -> Any:
    """Histogram of every batch's total-variation distance from the identities' label shares, per sampler."""
    ax = sns.histplot(distances.rename("distance").reset_index(), x="distance", hue="sampler", bins=30)
    ax.set_xlabel("total-variation distance between a batch's label shares and the identities' shares")
    plt.show()
    return ax.figure


def training_curves(curves: pd.DataFrame) -> Any:
    """Loss, active triplets and validation accuracy per epoch, mean over seeds with a ± 1 sd band, per arm."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, column, title in zip(axes, ["loss", "active_fraction", "val_accuracy"],
                                 ["triplet loss", "active (semi-hard) triplets", "validation accuracy"]):
        sns.lineplot(data=curves, x="epoch", y=column, hue="sampler", errorbar="sd", ax=ax)
        ax.set_title(title)
    fig.tight_layout()
    return fig


def lfw_roc(reference: Any, results: Mapping[tuple[str, int, int], Any], epochs: int) -> Any:
    """ROC of dlib and of every run at ``epochs`` (``results``: (sampler, seed, epochs) → LFWResult)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot(reference.fpr, reference.tpr, color="k", label=f"dlib (AUC {reference.auc:.4f})")
    labelled: set = set()
    for (sampler, _seed, run_epochs), result in sorted(results.items()):
        if run_epochs != epochs:
            continue
        ax.plot(result.fpr, result.tpr, color="C0" if sampler == "random" else "C1", alpha=0.6, lw=1,
                label=None if sampler in labelled else f"{ARM[sampler]} (seeds)")
        labelled.add(sampler)
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("LFW ROC")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def cluster_grid(results: Mapping[str, Any]) -> Any:
    """One row per model: t-SNE map, DBSCAN and K-Means on a PCA, the SOM grid.

    ``results``: model → :class:`crowdkit.bias.lfw_study.ModelClusters`.
    """
    fig, axes = plt.subplots(len(results), 4, figsize=(18, 4.4 * len(results)), squeeze=False)
    for row, (name, found) in zip(axes, results.items()):
        tsne = found.results["t-SNE"]
        cluster.plot_scatter(tsne, ax=row[0], title=f"{name}\nt-SNE: ARI {tsne.ari:.2f}")
        cluster.plot_clusters(found.results["DBSCAN"], found.large_embeddings, ax=row[1])
        cluster.plot_clusters(found.results["K-Means"], found.large_embeddings, ax=row[2])
        cluster.plot_som(found.results["SOM"], ax=row[3])
        for ax in row[1:]:
            ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig


def group_fmr(rates: Any) -> Any:
    """The FRVT demographic plot of one model: FMR against threshold per predicted group, the global threshold
    marked; beside it, FNMR per group at the global, the FMR = 10⁻³ and the group's own FMR = 10⁻³ threshold.

    ``rates``: :class:`crowdkit.bias.group_study.ModelGroupRates`.
    """
    import numpy as np

    sizes = rates.sizes()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for g, hist in rates.histograms.items():
        total = hist.sum()
        if total:
            left.step(rates.edges[1:], np.cumsum(hist) / total, where="post",
                      label=f"{g} ({sizes.loc[g, 'identities']} people, {sizes.loc[g, 'impostor pairs']:,} impostors)")
    for (name, t), style in zip(rates.thresholds.items(), ("--", ":")):
        left.axvline(t, color="k", ls=style, lw=1, label=f"{name} ({t:.3f})")
    left.set_yscale("log")
    left.set_ylim(1e-5, 1)
    left.set_xlabel("distance threshold")
    left.set_ylabel("FMR (within-group impostors)")
    left.set_title(f"{rates.model}: FMR by predicted group")
    left.legend(fontsize=7)
    rows = [{"group": g, "operating point": name, "FNMR": rates.point[name][g][0]}
            for name in rates.thresholds for g in rates.layout.groups]
    rows += [{"group": g, "operating point": "own FMR 1e-3", "FNMR": v} for g, v in rates.own_fnmr.items()]
    sns.barplot(data=pd.DataFrame(rows), x="group", y="FNMR", hue="operating point", ax=right)
    right.tick_params(axis="x", rotation=20)
    right.set_title("FNMR per predicted group at fixed thresholds")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig
