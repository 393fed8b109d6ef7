"""The figures of a crowd run page and of the summary across runs; nothing else here draws.

Each function takes a :class:`~crowdkit.crowd.results.CrowdRunResult` (or the
collected performance table) and returns a matplotlib figure or axes::

    plot_examples(result, "study")      # the study's thumbnails: two faces per outcome
    plot_curves(result, "iou")          # threshold sweep, ROC, precision–recall, with 95 % bands
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from crowdkit.common.metrics import OUTCOMES
from crowdkit.crowd.params import LEVELS
from crowdkit.crowd.results import CrowdRunResult
from crowdkit.crowd.scene import CHALLENGES

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


# --------------------------------------------------------------------------- one run


def plot_queries(result: CrowdRunResult) -> "Figure":
    """The query photos, the run's own framed in green; a photo without a face says so."""
    from crowdkit.common.io import read_image
    from crowdkit.engine.plots import thumbnail_grid

    rows = list(result.queries.itertuples())
    images = [read_image(r.path) for r in rows]
    captions = [f"{r.name}{' (run query)' if r.primary else ''}" + ("" if r.face_found else "\nno face found")
                for r in rows]
    return thumbnail_grid(images, captions, ncols=len(images), size=2.0, highlight=[bool(r.primary) for r in rows],
                          title=f"query photos of {result.inputs.subject}")


def plot_examples(result: CrowdRunResult, rule: str = "study") -> "Figure":
    """The study's table layout: one row per outcome (TP, FP, TN, FN), two face thumbnails each with distance."""
    import matplotlib.pyplot as plt

    examples, thumbs = result.examples[rule], result.thumbnails[rule]
    per = result.params.examples_per_outcome
    fig, axes = plt.subplots(len(OUTCOMES), per, figsize=(1.9 * per + 0.8, 1.9 * len(OUTCOMES)), squeeze=False)
    for row, outcome in enumerate(OUTCOMES):
        chosen = [i for i, o in enumerate(examples["outcome"]) if o == outcome]
        for col in range(per):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(chosen):
                i = chosen[col]
                record = examples.iloc[i]
                ax.imshow(thumbs[i])
                ax.set_title(f"d = {record['distance']:.3f}\nframe {int(record['frame'])}, "
                             f"{record['face_height']:.0f} px", fontsize=7)
            else:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes, color="grey")
                for spine in ax.spines.values():
                    spine.set_visible(False)
            if col == 0:
                ax.set_ylabel(outcome, fontsize=11, rotation=0, labelpad=18, va="center")
    fig.suptitle(f"{rule} rule: examples per outcome (threshold {result.threshold:g})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_overview(result: CrowdRunResult, rule: str = "iou") -> "Figure":
    """The far and the near overview frames with each detection coloured by outcome and missed subject faces."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    colours = {"TP": "#2ca02c", "FP": "#d62728", "TN": "#1f77b4", "FN": "#ff7f0e"}
    frames = sorted(result.overview)
    fig, axes = plt.subplots(1, max(1, len(frames)), figsize=(6.5 * max(1, len(frames)), 4), squeeze=False)
    outcomes = result.validations[rule].outcomes
    missed = result.validations[rule].missed
    for ax, frame in zip(axes.flat, frames):
        ax.imshow(result.overview[frame])
        for r in outcomes[outcomes["frame"] == frame].itertuples():
            ax.add_patch(Rectangle((r.x1, r.y1), r.x2 - r.x1, r.y2 - r.y1, fill=False, lw=1.2,
                                   edgecolor=colours[r.outcome]))
        for r in missed[missed["frame"] == frame].itertuples():
            ax.add_patch(Rectangle((r.x1, r.y1), r.x2 - r.x1, r.y2 - r.y1, fill=False, lw=1.2, ls="--",
                                   edgecolor="magenta"))
        ax.set_title(f"frame {frame}", fontsize=9)
        ax.set_axis_off()
    handles = [Rectangle((0, 0), 1, 1, fill=False, edgecolor=c, label=o) for o, c in colours.items()]
    handles.append(Rectangle((0, 0), 1, 1, fill=False, edgecolor="magenta", ls="--", label="subject missed"))
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_kde(result: CrowdRunResult, rule: str = "study", *, ax=None):
    """KDE of true- vs false-positive distances with the used, mean + 2σ and equal-error thresholds."""
    from crowdkit.crowd.threshold import plot_distance_kde

    analysis = result.thresholds[rule]
    ax = plot_distance_kde(analysis.tp_distances, analysis.fp_distances, ax=ax, thresholds={
        "used": analysis.threshold, "mean + 2σ": analysis.mean_plus_2sigma, "equal error": analysis.eer.threshold})
    ax.set_title(f"{rule} rule: distances of the faces declared the subject", fontsize=9)
    return ax


def plot_kdes(result: CrowdRunResult) -> "Figure":
    """:func:`plot_kde` for every rule the run reports, side by side."""
    import matplotlib.pyplot as plt

    rules = result.params.rules
    fig, axes = plt.subplots(1, len(rules), figsize=(6 * len(rules), 3.5), squeeze=False)
    for ax, rule in zip(axes.flat, rules):
        plot_kde(result, rule, ax=ax)
    fig.tight_layout()
    return fig


#: The legend's name for the bootstrap bands of :func:`plot_curves`.
BAND_LABEL = "95 % band (tracks resampled)"


def _band(ax, band: pd.DataFrame, x: str, rate: str, colour, label: str | None = None) -> None:
    """Shade ``band``'s interval of ``rate`` against column ``x`` (nothing when the band is empty)."""
    if band.empty or f"{rate}_low" not in band:
        return
    ax.fill_between(band[x], band[f"{rate}_low"], band[f"{rate}_high"], color=colour, alpha=0.18, linewidth=0,
                    label=label)


def _sweep_panel(ax, result: CrowdRunResult, analysis) -> None:
    """Precision, recall and F1 against the threshold, each with its band, and the thresholds marked."""
    for column in ("precision", "recall", "f1"):
        (line,) = ax.plot(analysis.sweep["threshold"], analysis.sweep[column], label=column)
        _band(ax, analysis.band, "threshold", column, line.get_color(), BAND_LABEL if column == "f1" else None)
    for name, value, style in (("used", analysis.threshold, "--"), ("mean + 2σ", analysis.mean_plus_2sigma, ":"),
                               ("equal error", analysis.eer.threshold, "-.")):
        if value is not None and math.isfinite(value):
            ax.axvline(value, color="black", linestyle=style, linewidth=1, label=f"{name} {value:.3f}")
    ax.set_xlabel(f"threshold ({result.params.metric} distance)")
    ax.set_ylabel("rate")
    ax.legend(fontsize=7)
    ax.set_title("threshold sweep", fontsize=9)


def _roc_pr_panels(roc_ax, pr_ax, analysis) -> None:
    """ROC with the equal-error point and precision–recall, each with its band; a note when undefined."""
    if analysis.roc.empty:
        for ax in (roc_ax, pr_ax):
            ax.text(0.5, 0.5, "undefined: the faces hold\nonly one class (subject or not)", ha="center",
                    va="center", transform=ax.transAxes)
    else:
        (roc,) = roc_ax.plot(analysis.roc["fpr"], analysis.roc["tpr"], label=f"AUC {analysis.roc.attrs['auc']:.3f}")
        _band(roc_ax, analysis.band, "fpr", "recall", roc.get_color(), BAND_LABEL)
        roc_ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        if math.isfinite(analysis.eer.rate):
            roc_ax.scatter([analysis.eer.rate], [1 - analysis.eer.rate], color="black", zorder=3,
                           label=f"EER {analysis.eer.rate:.3f}")
        (pr,) = pr_ax.plot(analysis.pr["recall"], analysis.pr["precision"],
                           label=f"AP {analysis.pr.attrs['average_precision']:.3f}")
        _band(pr_ax, analysis.band.dropna(subset=["recall"]) if not analysis.band.empty else analysis.band,
              "recall", "precision", pr.get_color(), BAND_LABEL)
        roc_ax.legend(fontsize=8, loc="lower right")
        pr_ax.legend(fontsize=8, loc="lower left")
    roc_ax.set(xlabel="false-positive rate", ylabel="true-positive rate", xlim=(0, 1), ylim=(0, 1.02))
    roc_ax.set_title("ROC", fontsize=9)
    pr_ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    pr_ax.set_title("precision–recall", fontsize=9)


def plot_curves(result: CrowdRunResult, rule: str = "iou") -> "Figure":
    """Three panels: rates against the threshold, ROC with the equal-error point, precision–recall.

    Each curve carries its 95 % band: the 2.5–97.5 % of the rate at each threshold over the
    run's cluster-bootstrap resamples of its tracks (:func:`crowdkit.crowd.intervals.sweep_band`).
    """
    import matplotlib.pyplot as plt

    analysis = result.thresholds[rule]
    fig, (sweep_ax, roc_ax, pr_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    _sweep_panel(sweep_ax, result, analysis)
    _roc_pr_panels(roc_ax, pr_ax, analysis)
    fig.suptitle(f"{rule} rule, per-frame decisions", fontsize=9)
    fig.tight_layout()
    return fig


def plot_distance_vs_size(result: CrowdRunResult, rule: str = "iou", *, ax=None):
    """Each face's distance against its height in pixels, subject vs others, with the threshold."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.6))
    outcomes = result.validations[rule].outcomes
    for subject, colour, label in ((False, "tab:grey", "someone else"), (True, "tab:green", result.inputs.subject)):
        chosen = outcomes[outcomes["subject"] == subject]
        ax.scatter(chosen["face_height"], chosen["distance"], s=10 if not subject else 18, color=colour,
                   alpha=0.6 if not subject else 0.9, label=f"{label} (n={len(chosen)})")
    ax.axhline(result.threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {result.threshold:g}")
    ax.set_xscale("log")
    ax.set_xlabel("detected face height (px)")
    ax.set_ylabel(f"{result.params.metric} distance to the query")
    ax.legend(fontsize=8)
    ax.set_title(f"{rule} rule: distance against face size", fontsize=9)
    return ax


def plot_levels(result: CrowdRunResult) -> "Figure":
    """Precision, recall and F1 of per-frame vs per-track decisions under each rule (run's query)."""
    import matplotlib.pyplot as plt

    table = result.main_performance().reset_index()
    metrics = ["precision", "recall", "strict_recall", "f1"]
    fig, axes = plt.subplots(1, len(result.params.rules), figsize=(5.2 * len(result.params.rules), 3.2),
                             squeeze=False)
    for ax, rule in zip(axes.flat, result.params.rules):
        part = table[table["rule"] == rule].set_index("level")[metrics]
        part.T.plot.bar(ax=ax, rot=0)
        for container, level in zip(ax.containers, part.index):
            for bar, value in zip(container, part.loc[level]):
                if not math.isfinite(value):
                    ax.text(bar.get_x() + bar.get_width() / 2, 0.02, "undef.", rotation=90, fontsize=7,
                            ha="center", va="bottom")
        ax.set_ylim(0, 1.3)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.set_title(f"{rule} rule", fontsize=9)
        ax.legend(title="decided per", fontsize=8, title_fontsize=8, loc="upper center", ncol=2)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- across runs


def plot_summary(performance: pd.DataFrame, *, value: str = "f1") -> "Figure":
    """Heat maps of ``value`` (member × challenge), one per rule × level; undefined cells are marked."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if performance.empty:
        fig, ax = plt.subplots(figsize=(6.2, 1.0))
        ax.text(0.5, 0.5, "no finished run to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    table = performance[performance["main"]]
    combos = [(r, l) for r in ("study", "iou") for l in LEVELS if ((table["rule"] == r) & (table["level"] == l)).any()]
    ncols = min(2, max(1, len(combos)))
    nrows = max(1, -(-len(combos) // ncols))
    height = 0.9 + 0.45 * max(1, table["member"].nunique())
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, height * nrows), squeeze=False)
    order = [c for c in CHALLENGES if c in set(table["challenge"])]
    for ax, (rule, level) in zip(axes.flat, combos):
        part = table[(table["rule"] == rule) & (table["level"] == level)]
        grid = part.pivot_table(index="member", columns="challenge", values=value, aggfunc="first", dropna=False)
        grid = grid.reindex(columns=order)
        sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", cbar=False,
                    annot_kws={"fontsize": 7}, mask=grid.isna())
        for (i, j), missing in np.ndenumerate(grid.isna().to_numpy()):
            if missing:
                ax.text(j + 0.5, i + 0.5, "undef.", ha="center", va="center", fontsize=7, color="grey")
        ax.set_title(f"{value}: {rule} rule, per {level}", fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.tight_layout()
    return fig
