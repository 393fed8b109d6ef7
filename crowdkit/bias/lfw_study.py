"""The evaluation chapter's steps: every training run on LFW, per-group error rates, identification, clustering.

:func:`evaluate_runs` embeds LFW's View 2 pairs with every checkpoint
(:meth:`crowdkit.bias.checkpoints.TrainingRun.evaluation_checkpoints`) and runs
the 10-fold protocol; the :class:`RunEvaluations` it returns holds the pairs
and results, keyed by (sampler, seed, epochs), and builds the chapter's
tables. Per-group rates use the ethnicity classifier's **predicted** groups,
with the group's pairs and identities beside every rate.

Example
-------
>>> reference = evaluate_reference(n_pairs=600)                      # doctest: +SKIP
>>> evaluated = evaluate_runs(find_runs(root), n_pairs=600)          # doctest: +SKIP
>>> evaluated.per_run().round(4)                                     # doctest: +SKIP
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np
import pandas as pd

from crowdkit.common import config
from crowdkit.bias import cluster
from crowdkit.bias import evaluate as ev
from crowdkit.bias import group_study
from crowdkit.bias.identification import identification_table
from crowdkit.bias.lfw_images import LFWImages, LFWSubset, embed_lfw_images, select_lfw_images
from crowdkit.bias.profiles import BiasProfile
from crowdkit.bias.checkpoints import TrainingRuns
from crowdkit.bias.ethnicity import MeasuredClassifier
from crowdkit.bias.figures import ARM
from crowdkit.bias.protocol import FAR_TARGET, LFWResult
from crowdkit.common.exceptions import DataNotFoundError

#: The reference model's name on the pages.
REFERENCE = "dlib (reference)"

RunKey = tuple  # (sampler, seed, epochs)


@dataclass(frozen=True, eq=False)
class Reference:
    """dlib's own pipeline on the LFW pairs: the pairs' embeddings and the protocol's result."""

    pairs: ev.PairEmbeddings = field(repr=False)
    result: LFWResult = field(repr=False)
    n_pairs: int | None

    def describe(self) -> str:
        """Markdown: dlib's accuracy ± std over folds, VAL @ FAR, AUC, EER, images without a face, the CLI command."""
        r = self.result
        return (f"dlib on {r.n_pairs} pairs: accuracy **{r.accuracy:.4f} ± {r.std:.4f}**, "
                f"VAL {r.val:.4f} ± {r.val_std:.4f} @ FAR {r.far:.5f}, AUC {r.auc:.4f}, EER {r.eer:.4f}. "
                f"{self.pairs.n_fallbacks} of {self.pairs.n_images} images had no detectable face (central box). "
                f"Same command: `crowdkit eval lfw --model dlib --json`"
                + ("" if self.n_pairs is None else f" `--n-pairs {self.n_pairs}`") + ".")


def evaluate_reference(*, n_pairs: int | None, far_target: float = FAR_TARGET) -> Reference:
    """dlib on LFW View 2 (``n_pairs``: a stratified subset, None: all 6,000)."""
    pairs = ev.embed_lfw_pairs("dlib", n_pairs=n_pairs, progress=False)
    return Reference(pairs, pairs.protocol(far_target=far_target), n_pairs)


@dataclass(frozen=True, eq=False)
class RunEvaluations:
    """Every run's LFW pairs and protocol result, keyed by (sampler, seed, epochs)."""

    pairs: Mapping[RunKey, ev.PairEmbeddings] = field(repr=False)
    results: Mapping[RunKey, LFWResult] = field(repr=False)
    root: str = ""

    @property
    def last_epochs(self) -> int:
        """The longest epoch budget evaluated (the per-group, identification and clustering sections use it)."""
        return max(epochs for _, _, epochs in self.results)

    def describe(self) -> str:
        """Markdown: how many runs were found where."""
        runs = {(sampler, seed) for sampler, seed, _ in self.results}
        return f"{len(runs)} runs under `{config.display_path(self.root)}`."

    def per_run(self) -> pd.DataFrame:
        """One row per run and epoch budget: arm, sampler, seed, epochs, accuracy, std (folds), VAL, FAR, AUC, EER."""
        rows = [{"arm": ARM[sampler], "sampler": sampler, "seed": seed, "epochs": epochs, "accuracy": r.accuracy,
                 "std": r.std, "VAL": r.val, "FAR": r.far, "AUC": r.auc, "EER": r.eer}
                for (sampler, seed, epochs), r in self.results.items()]
        return pd.DataFrame(rows).sort_values(["epochs", "sampler", "seed"]).reset_index(drop=True)

    def models(self, reference: Reference) -> dict[str, ev.PairEmbeddings]:
        """dlib and each arm's first seed at :attr:`last_epochs`: the models identification and clustering compare."""
        chosen = {REFERENCE: reference.pairs}
        for sampler in ("random", "stratified"):
            first = min(s for (sa, s, e) in self.pairs if sa == sampler and e == self.last_epochs)
            chosen[ARM[sampler] + f", seed {first}"] = self.pairs[(sampler, first, self.last_epochs)]
        return chosen


def evaluate_runs(runs: TrainingRuns, *, n_pairs: int | None, far_target: float = FAR_TARGET) -> RunEvaluations:
    """Embed the LFW pairs with every evaluation checkpoint of ``runs`` and run the protocol on each.

    Raises
    ------
    DataNotFoundError
        When ``runs`` is empty (train first: the training chapter, same profile).
    """
    if not len(runs):
        raise DataNotFoundError(f"no training runs under {runs.root}; run notebooks/bias/training.ipynb "
                                "with the same profile first")
    pairs, results = {}, {}
    for run in runs:
        for epochs, checkpoint in run.evaluation_checkpoints():
            key = (run.sampler, run.seed, epochs)
            pairs[key] = ev.embed_lfw_pairs(str(checkpoint), n_pairs=n_pairs, progress=False)
            results[key] = pairs[key].protocol(far_target=far_target)
    return RunEvaluations(pairs, results, str(runs.root))


@dataclass(frozen=True, eq=False)
class AllLFW:
    """Per-group rates and identification over a profile's LFW images (all of them with ``full``).

    ``images``: model → its embeddings of the images; ``rates``: model → :class:`group_study.ModelGroupRates`;
    ``runs``: (sampler, seed) → rates of each run at :attr:`RunEvaluations.last_epochs`.
    """

    subset: LFWSubset
    labels: Mapping[str, str] = field(repr=False)
    measured: MeasuredClassifier = field(repr=False)
    images: Mapping[str, LFWImages] = field(repr=False)
    rates: Mapping[str, group_study.ModelGroupRates] = field(repr=False)
    runs: Mapping[tuple, group_study.ModelGroupRates] = field(repr=False)
    seconds: float = 0.0
    seed: int = 0

    def describe(self) -> str:
        """Markdown: which images, how many, how long, and that the groups are predictions with a measured error."""
        first = next(iter(self.images.values()))
        repeated = len(np.unique(first.identities_with(10)[1]))
        return (f"**Images:** {self.subset.describe()}: {first.describe()} ({repeated} people with ≥ 10 photos), "
                f"embedded by {len(self.images)} models in {self.seconds:.0f} s. "
                f"{self.measured.error_note()} Group labels are **predictions with a measured error, never facts "
                "about a person**; each LFW person's group is the classifier's mean over up to 10 of their photos.")

    def group_table(self) -> pd.DataFrame:
        """Every model's per-group table (sizes beside every rate, 95 % identity-bootstrap intervals)."""
        return pd.concat({name: r.to_frame() for name, r in self.rates.items()}, names=["model", "group"])

    def arm_differences(self) -> pd.DataFrame:
        """Stratified minus random per group (:func:`group_study.arm_differences`)."""
        return group_study.arm_differences(self.runs, seed=self.seed)

    def arm_verdict(self) -> str:
        """Markdown: did stratification change any group's error beyond noise."""
        return group_study.arm_verdict(self.arm_differences())

    def identification(self, min_images: int = 10) -> pd.DataFrame:
        """Closed- and open-set identification of every person with ≥ ``min_images`` photos here."""
        return identification_table(self.images, min_images=min_images, seed=self.seed)


def _run_name(sampler: str, seed: int) -> str:
    return f"{ARM[sampler]}, seed {seed}"


def evaluate_all_lfw(profile: BiasProfile, evaluated: RunEvaluations, reference: Reference,
                     measured: MeasuredClassifier, *, seed: int = 0, n_boot: int = 1000) -> AllLFW:
    """Embed the profile's LFW images with dlib and every run at :attr:`RunEvaluations.last_epochs`, then measure.

    Each model is measured at its own global threshold (its View 2 protocol result) and at FMR = 10⁻³.
    """
    started = time.perf_counter()
    subset = LFWSubset(profile.lfw_identities, profile.lfw_images, seed=seed)
    paths = select_lfw_images(subset, prefer=set(reference.pairs.names.tolist()))
    images = {REFERENCE: embed_lfw_images("dlib", paths)}
    thresholds = {REFERENCE: reference.result.threshold}
    for (sampler, run_seed, epochs), result in sorted(evaluated.results.items()):
        if epochs == evaluated.last_epochs:
            name = _run_name(sampler, run_seed)
            images[name] = embed_lfw_images(evaluated.pairs[(sampler, run_seed, epochs)].model, paths)
            thresholds[name] = result.threshold
    seconds = time.perf_counter() - started
    labels = ev.predict_group_labels(measured.classifier, images[REFERENCE], seed=seed)
    rates = {name: group_study.measure_model(name, im.embeddings, im.names, labels, metric=im.metric,
                                             global_threshold=thresholds[name], n_boot=n_boot, seed=seed)
             for name, im in images.items()}
    runs = {(s, k): rates[_run_name(s, k)] for s, k, e in evaluated.results if e == evaluated.last_epochs}
    return AllLFW(subset, labels, measured, images, rates, runs, seconds, seed)


@dataclass(frozen=True)
class ClusterSettings:
    """The clustering section's parameters (the dissertation's: K-Means max_iter 500, SOM 20×20, lr 0.01, 1,000
    iterations on 50 identities). ``min_images_*``: photos a person needs among the pair images."""

    tsne_identities: int = 10
    dbscan_identities: int = 50
    dbscan_eps: float = 0.4
    kmeans_max_iter: int = 500
    som_size: int = 20
    som_learning_rate: float = 0.01
    som_iterations: int = 1000
    min_images_small: int = 10
    min_images_large: int = 5

    @classmethod
    def for_pairs(cls, n_pairs: int | None, **settings: Any) -> "ClusterSettings":
        """The settings for ``n_pairs`` evaluated pairs: a subset holds fewer repeated people (3 and 2 photos)."""
        small = {} if n_pairs is None else {"min_images_small": 3, "min_images_large": 2}
        return cls(**{**small, **settings})

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any], *, n_pairs: int | None) -> "ClusterSettings":
        """:meth:`for_pairs` with the namespace's values for the fields it knows (a notebook passes ``globals()``)."""
        known = {f.name for f in fields(cls)}
        return cls.for_pairs(n_pairs, **{k: v for k, v in namespace.items() if k in known})


@dataclass(frozen=True, eq=False)
class ModelClusters:
    """One model's four clusterings, and the 50-identity embeddings DBSCAN, K-Means and the SOM ran on."""

    results: Mapping[str, cluster.ClusterResult] = field(repr=False)
    large_embeddings: np.ndarray = field(repr=False)


def _pick(pairs: ev.PairEmbeddings, n: int, min_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, ids = pairs.identities_with(min_images)
    idx = cluster.pick_identities(ids, n=min(n, len(np.unique(ids))), min_images=min_images, seed=seed)
    return x[idx], ids[idx]


def cluster_models(models: Mapping[str, ev.PairEmbeddings], settings: ClusterSettings,
                   seed: int = 0) -> dict[str, ModelClusters]:
    """t-SNE on the small set of people; DBSCAN, K-Means and the SOM on the large one, for each model."""
    s = settings
    found = {}
    for name, pairs in models.items():
        small = _pick(pairs, s.tsne_identities, s.min_images_small, seed)
        large = _pick(pairs, s.dbscan_identities, s.min_images_large, seed)
        found[name] = ModelClusters({
            "t-SNE": cluster.tsne(*small, seed=seed),
            "DBSCAN": cluster.dbscan(*large, eps=s.dbscan_eps),
            "K-Means": cluster.kmeans(*large, seed=seed, max_iter=s.kmeans_max_iter),
            "SOM": cluster.som(*large, size=s.som_size, learning_rate=s.som_learning_rate,
                               iterations=s.som_iterations, seed=seed)}, large[0])
    return found


def cluster_table(found: Mapping[str, ModelClusters]) -> pd.DataFrame:
    """Per model and method: people, faces, clusters, ARI, NMI; DBSCAN's noise and the SOM's node purity."""
    rows = []
    for name, clusters in found.items():
        for method, res in clusters.results.items():
            rows.append({"model": name, "method": method, "people": len(np.unique(res.identities)),
                         "faces": len(res.labels), "clusters": res.n_clusters, "ARI": round(res.ari, 3),
                         "NMI": round(res.nmi, 3),
                         "noise": round(res.noise_fraction, 3) if method == "DBSCAN" else None,
                         "SOM node purity": round(res.params["node_purity"], 3) if method == "SOM" else None})
    return pd.DataFrame(rows)
