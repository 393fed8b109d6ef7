"""Summary statistics of the bias study: mean ± sd over seeds, paired differences, training tables, thesis layout.

The training and evaluation chapters show each arm (base = random batches,
modified = stratified batches) over several training seeds. Runs with the
same seed share the identity split and the initial weights, so the arms are
compared seed by seed (:func:`paired_differences`). :func:`thesis_tables`
puts the dissertation's Tables 5.1 and 5.2 (``crowdkit.bias.reported``) beside
ours in its layout, with our ± over folds (as the thesis) and over seeds.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from crowdkit.bias.figures import ARM
from crowdkit.bias.profiles import BiasProfile
from crowdkit.bias.reported import ThesisTables

#: The metrics compared arm against arm.
PAIRED_METRICS = ("accuracy", "VAL", "AUC", "EER")


def mean_sd(values: Sequence[float] | pd.Series, places: int = 4) -> str:
    """``"mean ± sd"`` (sample sd) of ``values``, or the mean alone for a single value.

    >>> mean_sd([0.5, 0.7])
    '0.6000 ± 0.1414'
    >>> mean_sd([0.5])
    '0.5000'
    """
    s = pd.Series(values, dtype=float)
    return f"{s.mean():.{places}f} ± {s.std(ddof=1):.{places}f}" if len(s) > 1 else f"{s.mean():.{places}f}"


def paired_ci(differences: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences and its t-interval (n − 1 degrees of freedom); NaN bounds for one pair.

    >>> m, lo, hi = paired_ci([1.0, 2.0, 3.0])
    >>> m, round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    """
    from scipy import stats

    diff = np.asarray(differences, float)
    m = float(diff.mean())
    if len(diff) < 2:
        return m, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
    return m, m - half, m + half


def seed_layout(per_run: pd.DataFrame, reference: Any) -> pd.DataFrame:
    """Per epoch budget and arm: seeds, accuracy, VAL and AUC as mean ± sd over seeds; dlib beside them (± folds).

    ``per_run``: :meth:`crowdkit.bias.lfw_study.RunEvaluations.per_run`;
    ``reference``: dlib's :class:`~crowdkit.bias.protocol.LFWResult`.
    """
    layout = per_run.groupby(["epochs", "arm"]).agg(seeds=("seed", "count"), accuracy=("accuracy", mean_sd),
                                                   VAL=("VAL", mean_sd), AUC=("AUC", mean_sd))
    dlib_row = pd.DataFrame({"seeds": [1], "accuracy": [f"{reference.accuracy:.4f} ± {reference.std:.4f} (folds)"],
                             "VAL": [f"{reference.val:.4f}"], "AUC": [f"{reference.auc:.4f}"]},
                            index=pd.MultiIndex.from_tuples([("—", "dlib (reference)")], names=["epochs", "arm"]))
    return pd.concat([layout, dlib_row])


def paired_differences(per_run: pd.DataFrame, metrics: Sequence[str] = PAIRED_METRICS) -> pd.DataFrame:
    """Stratified minus random, seed by seed, per epoch budget and metric: mean, 95 % CI, whether it excludes 0."""
    rows = []
    for epochs, frame in per_run.groupby("epochs"):
        wide = frame.pivot(index="seed", columns="sampler", values=list(metrics)).dropna()
        for metric in metrics:
            m, lo, hi = paired_ci(wide[(metric, "stratified")] - wide[(metric, "random")])
            rows.append({"epochs": epochs, "metric": metric, "seeds": len(wide), "stratified − random": m,
                         "95% CI low": lo, "95% CI high": hi, "CI excludes 0": bool(lo > 0 or hi < 0)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- training

def training_runs(results: Sequence[Any]) -> pd.DataFrame:
    """One row per training run (:class:`crowdkit.bias.train.TrainResult`): arm, seed, epochs, best epoch and
    validation accuracy, final loss and active triplets, early stop, identities on each side."""
    return pd.DataFrame([{
        "arm": ARM[r.config.sampler], "seed": r.config.seed, "epochs run": len(r.history), "best epoch": r.best_epoch,
        "best val accuracy": round(r.best_val_accuracy, 4), "final loss": round(r.history[-1].loss, 4),
        "final active triplets": round(r.history[-1].active_fraction, 4), "stopped early": r.stopped_early,
        "train identities": r.n_train_identities, "val identities": r.n_val_identities} for r in results])


def training_set(data: Any, labels: Mapping[str, str]) -> tuple[str, pd.DataFrame]:
    """Markdown on the training inputs (identities, usable photos, photos skipped) and identities per predicted label.

    ``data``: :class:`crowdkit.bias.training_data.TrainingData`; ``labels``: identity → predicted label.
    """
    note = (f"**{len(data.inputs)}** identities, **{data.n_images}** usable photos; "
            f"**{len(data.skipped)}** photos skipped (no face detected).")
    counts = pd.Series([labels.get(k, "unlabelled") for k in data.inputs]).value_counts()
    return note, counts.rename("identities (predicted label)").to_frame()


def training_curves(results: Sequence[Any]) -> pd.DataFrame:
    """Every run's curve, one row per (run, epoch), with its sampler and seed."""
    return pd.concat([r.history_frame().assign(sampler=r.config.sampler, seed=r.config.seed) for r in results])


def final_epoch_stats(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each arm's last-epoch loss, active triplets and validation accuracy (4 places)."""
    final = curves.sort_values("epoch").groupby(["sampler", "seed"]).tail(1)
    return final.groupby("sampler")[["loss", "active_fraction", "val_accuracy"]].agg(["mean", "std"]).round(4)


# --------------------------------------------------------------------------- the thesis' layout

_TYPE = {"random": "base", "stratified": "modified"}


def _ours_51(results: Mapping[tuple, Any]) -> pd.DataFrame:
    """Our Table 5.1 rows: per (epochs, type) accuracy and VAL ± folds (mean fold sd) and ± seeds, FAR, AUC."""
    rows = [{"epochs": e, "type": _TYPE[s], "seed": seed, "accuracy": r.accuracy, "std": r.std, "val": r.val,
             "val_std": r.val_std, "far": r.far, "auc": r.auc} for (s, seed, e), r in results.items()]
    out = []
    for (epochs, kind), g in pd.DataFrame(rows).groupby(["epochs", "type"]):
        seeds = f"(seeds, n = {len(g)})" if len(g) > 1 else "(one seed)"
        out.append({"source": "ours", "epochs": epochs, "type": kind,
                    "Accuracy ± folds": f"{g['accuracy'].mean():.5f}+-{g['std'].mean():.5f}",
                    "Accuracy ± seeds": f"{mean_sd(g['accuracy'], 5)} {seeds}",
                    "Validation Rate ± folds @ achieved FAR":
                        f"{g['val'].mean():.5f}+-{g['val_std'].mean():.5f} @ FAR={g['far'].mean():.5f}",
                    "Validation Rate ± seeds": f"{mean_sd(g['val'], 5)} {seeds}",
                    "AUC": f"{g['auc'].mean():.3f}", "AUC ± seeds": mean_sd(g["auc"], 3)})
    return pd.DataFrame(out)


def _thesis_51(thesis: ThesisTables) -> pd.DataFrame:
    return pd.DataFrame([{"source": "thesis", "epochs": r.epochs, "type": r.type,
                          "Accuracy ± folds": f"{r.accuracy.text}+-{r.accuracy_std.text}",
                          "Accuracy ± seeds": "—",
                          "Validation Rate ± folds @ achieved FAR":
                              f"{r.val_rate.text}+-{r.val_rate_std.text} @ FAR={r.far.text}",
                          "Validation Rate ± seeds": "—", "AUC": r.auc.text, "AUC ± seeds": "—"}
                         for r in thesis.evaluation])


def _table_5_2(thesis: ThesisTables, ours: pd.DataFrame) -> pd.DataFrame:
    printed = pd.DataFrame([{"source": "thesis", "epochs": r.epochs, "type": r.type, "AUC": r.auc.text,
                             "Increase in AUC from counterpart": r.auc_increase.shown()} for r in thesis.auc])
    mine = ours[["source", "epochs", "type", "AUC"]].copy()
    auc = mine.set_index(["epochs", "type"])["AUC"].astype(float)
    mine["Increase in AUC from counterpart"] = [
        f"{auc[(e, 'modified')] - auc[(e, 'base')]:+.3f}" if t == "modified" and (e, "base") in auc.index else "-"
        for e, t in zip(mine["epochs"], mine["type"])]
    return pd.concat([printed, mine]).set_index(["source", "epochs", "type"])


def thesis_tables(thesis: ThesisTables, results: Mapping[tuple, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 5.1 and 5.2 as the thesis prints them (``thesis`` rows) with ours beneath (``ours`` rows).

    ``results``: (sampler, seed, epochs) → LFWResult
    (:attr:`crowdkit.bias.lfw_study.RunEvaluations.results`). Table 5.1's
    "± folds" is the spread over LFW's ten folds, as the thesis gives it (ours:
    the mean over seeds of each run's fold sd); "± seeds" is ours only, the
    sample sd over training seeds. The achieved FAR is the mean over folds of
    the FAR at the 10⁻³ threshold (ours: also averaged over seeds). Table 5.2's
    increase is modified − base at the same epochs (ours: of the seed means).
    """
    ours = _ours_51(results)
    table_51 = pd.concat([_thesis_51(thesis), ours]).set_index(["source", "epochs", "type"])
    return table_51, _table_5_2(thesis, ours)


def setting_differences(profile: BiasProfile, classifier: str, *, training_set: str = "CelebA") -> str:
    """Markdown: where our setting differs from the thesis' (classifier, training set, backbone, epochs), and why."""
    lines = []
    if classifier != "vgg16":
        lines.append(f"- **Classifier**: `{classifier}` (a linear probe on dlib descriptors) instead of the thesis' "
                     "VGG16 trained from scratch, because VGG16 needs a GPU and reached only about 0.5 validation "
                     "accuracy in the thesis.")
    lines.append(f"- **Training set**: {training_set} identities instead of CASIA-WebFace, which this project "
                 "does not hold.")
    if profile.backbone != "inception_resnet_v1":
        lines.append(f"- **Backbone**: a `{profile.backbone}` head on frozen dlib descriptors instead of "
                     "Inception-ResNet-v1 trained from scratch, so that both arms and every seed train on a CPU.")
    if tuple(profile.keep_epochs or (profile.epochs,)) != (30, 50, 75):
        lines.append(f"- **Epochs**: {profile.epochs} epochs of {profile.batches_per_epoch} batches instead of "
                     "30, 50 and 75 epochs of 1,000 batches, to fit a CPU budget; our rows are therefore at "
                     f"{profile.epochs} epochs and are not row-for-row comparable with the thesis'.")
    return "\n".join(lines)
