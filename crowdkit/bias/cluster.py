"""How well embeddings cluster by identity: t-SNE, DBSCAN, K-Means and a self-organising map.

Every method works on L2-normalised embeddings (so euclidean distance is
``sqrt(2 − 2 cos)``, the metric FaceNet trains) and returns a
:class:`ClusterResult` whose ``ari`` (adjusted Rand index) and ``nmi``
(normalised mutual information) compare the clusters with the true
identities: 1 = identities recovered exactly, ≈ 0 = chance.

* ``tsne``: 2-D map (sklearn TSNE, seeded); the score is that of K-Means
  (k = number of identities) on the map.
* ``dbscan``: eps 0.4 (euclidean on L2-normalised embeddings), noise points
  labelled −1 and scored as one extra cluster.
* ``kmeans``: k = number of identities, 10 seeded restarts (``max_iter``: the study's 500 in the book).
* ``som``: MiniSom 20×20, learning rate 0.01, 1000 iterations, seeded; each
  face's cluster is its winning node (``params`` adds node purity and the ARI
  of K-Means on the winning nodes' grid positions, since 400 nodes
  over-segment a few identities and cap the node ARI).

Example::

    ids = pick_identities(identities, n=10, min_images=10, seed=0)
    result = tsne(embeddings[ids], identities[ids], seed=0)
    plot_scatter(result)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from crowdkit.common.exceptions import ConfigError


@dataclass(frozen=True, eq=False)
class ClusterResult:
    """Clusters of one method.

    Attributes
    ----------
    method : "tsne" | "dbscan" | "kmeans" | "som".
    labels : (N,) int cluster of each face (−1 = DBSCAN noise; SOM: winning node index).
    identities : (N,) the true identity of each face.
    ari, nmi : agreement of ``labels`` with ``identities``.
    n_clusters : distinct clusters found (noise excluded).
    coordinates : (N, 2) where to draw each face (t-SNE map, SOM node position); empty (0, 2) otherwise.
    params : the method's settings, for captions.
    """

    method: str
    labels: np.ndarray = field(repr=False)
    identities: np.ndarray = field(repr=False)
    ari: float
    nmi: float
    n_clusters: int
    coordinates: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 2)))
    params: dict = field(default_factory=dict)

    @property
    def noise_fraction(self) -> float:
        return float(np.mean(self.labels == -1)) if len(self.labels) else float("nan")


def _prepare(embeddings: np.ndarray, identities: Sequence) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(embeddings, dtype=np.float64)
    ids = np.asarray(identities)
    if x.ndim != 2 or len(x) != len(ids):
        raise ConfigError(f"embeddings must be (N, D) with one identity per row, got {x.shape} and {ids.shape}")
    if len(x) < 2:
        raise ConfigError("clustering needs at least 2 faces")
    if not np.isfinite(x).all():
        raise ConfigError("embeddings contain NaN/inf rows (images with no face?); drop them first")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), ids


def _score(method: str, labels: np.ndarray, ids: np.ndarray, **extra: Any) -> ClusterResult:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return ClusterResult(
        method=method, labels=np.asarray(labels), identities=ids,
        ari=float(adjusted_rand_score(ids, labels)), nmi=float(normalized_mutual_info_score(ids, labels)),
        n_clusters=int(len(set(np.asarray(labels).tolist()) - {-1})), **extra,
    )


def pick_identities(identities: Sequence, *, n: int, min_images: int = 1, seed: int = 0) -> np.ndarray:
    """Indices of every face of ``n`` identities with at least ``min_images`` faces (seeded choice, sorted)."""
    ids = np.asarray(identities)
    names, counts = np.unique(ids, return_counts=True)
    eligible = names[counts >= min_images]
    if len(eligible) < n:
        raise ConfigError(f"only {len(eligible)} identities have at least {min_images} faces; asked for {n}")
    chosen = np.random.default_rng(seed).choice(eligible, size=n, replace=False)
    return np.flatnonzero(np.isin(ids, chosen))


def kmeans(embeddings: np.ndarray, identities: Sequence, *, k: int | None = None, seed: int = 0,
           max_iter: int = 300) -> ClusterResult:
    """K-Means with k = number of identities (or ``k``), at most ``max_iter`` iterations per restart
    (scikit-learn's 300 by default; the dissertation used 500)."""
    from sklearn.cluster import KMeans

    x, ids = _prepare(embeddings, identities)
    k = int(k or len(np.unique(ids)))
    labels = KMeans(n_clusters=k, n_init=10, max_iter=max_iter, random_state=seed).fit_predict(x)
    return _score("kmeans", labels, ids, params={"k": k, "seed": seed, "max_iter": max_iter})


def dbscan(embeddings: np.ndarray, identities: Sequence, *, eps: float = 0.4, min_samples: int = 3) -> ClusterResult:
    """DBSCAN, euclidean distance on L2-normalised embeddings (eps 0.4 ⇔ cosine similarity ≥ 0.92)."""
    from sklearn.cluster import DBSCAN

    x, ids = _prepare(embeddings, identities)
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="euclidean").fit_predict(x)
    return _score("dbscan", labels, ids, params={"eps": eps, "min_samples": min_samples,
                                                 "metric": "euclidean on L2-normalised embeddings"})


def tsne(embeddings: np.ndarray, identities: Sequence, *, seed: int = 0, perplexity: float = 30.0) -> ClusterResult:
    """2-D t-SNE map; scored by K-Means (k = number of identities) on the map."""
    from sklearn.cluster import KMeans
    from sklearn.manifold import TSNE

    x, ids = _prepare(embeddings, identities)
    perplexity = float(min(perplexity, (len(x) - 1) / 3))
    coords = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    k = len(np.unique(ids))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(coords)
    return _score("tsne", labels, ids, coordinates=coords, params={"perplexity": perplexity, "seed": seed})


def som(embeddings: np.ndarray, identities: Sequence, *, size: int = 20, learning_rate: float = 0.01,
        iterations: int = 1000, sigma: float = 1.0, seed: int = 0) -> ClusterResult:
    """A ``size``×``size`` MiniSom; each face's cluster is its winning node."""
    from minisom import MiniSom

    x, ids = _prepare(embeddings, identities)
    net = MiniSom(size, size, x.shape[1], sigma=sigma, learning_rate=learning_rate, random_seed=seed)
    net.random_weights_init(x)
    net.train_random(x, iterations)
    winners = np.array([net.winner(v) for v in x])
    labels = winners[:, 0] * size + winners[:, 1]
    # Winning nodes over-segment (400 nodes for a few identities), which caps the ARI; two more
    # numbers say whether the map keeps people apart (purity) and together (K-Means on node positions).
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    k = len(np.unique(ids))
    grid_labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(winners.astype(float))
    purity = float(np.mean([np.unique(ids[labels == node], return_counts=True)[1].max() / np.sum(labels == node)
                            for node in np.unique(labels)]))
    return _score("som", labels, ids, coordinates=winners.astype(float),
                  params={"size": size, "learning_rate": learning_rate, "iterations": iterations,
                          "sigma": sigma, "seed": seed, "quantization_error": float(net.quantization_error(x)),
                          "node_purity": purity, "grid_kmeans_ari": float(adjusted_rand_score(ids, grid_labels))})


# --------------------------------------------------------------------------- plots

def plot_scatter(result: ClusterResult, *, ax: Any = None, by: str = "identity", title: str | None = None) -> Any:
    """Scatter of ``result.coordinates`` (t-SNE) coloured by true identity (``by="identity"``) or cluster."""
    import matplotlib.pyplot as plt

    if result.coordinates.shape[0] != len(result.labels):
        raise ConfigError(f"{result.method} has no 2-D coordinates to draw; use plot_clusters for it")
    ax = ax or plt.subplots(figsize=(6, 5))[1]
    colour_of = result.identities if by == "identity" else result.labels
    names = list(dict.fromkeys(colour_of.tolist()))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    for i, name in enumerate(names):
        m = colour_of == name
        ax.scatter(result.coordinates[m, 0], result.coordinates[m, 1], s=14, color=cmap(i % 20),
                   label=str(name) if len(names) <= 12 else None)
    if len(names) <= 12:
        ax.legend(fontsize=7, loc="best", frameon=False)
    ax.set_title(title or f"{result.method}: ARI {result.ari:.2f}, NMI {result.nmi:.2f}")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_clusters(result: ClusterResult, embeddings: np.ndarray, *, ax: Any = None, seed: int = 0) -> Any:
    """Clusters of a method without its own map (DBSCAN, K-Means), drawn on a 2-D PCA of the embeddings."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    x, _ = _prepare(embeddings, result.identities)
    coords = PCA(n_components=2, random_state=seed).fit_transform(x)
    ax = ax or plt.subplots(figsize=(6, 5))[1]
    noise = result.labels == -1
    ax.scatter(coords[noise, 0], coords[noise, 1], s=10, c="lightgrey", label="noise" if noise.any() else None)
    ax.scatter(coords[~noise, 0], coords[~noise, 1], s=14, c=result.labels[~noise] % 20, cmap="tab20")
    extra = f", noise {result.noise_fraction:.0%}" if result.method == "dbscan" else ""
    ax.set_title(f"{result.method}: {result.n_clusters} clusters, ARI {result.ari:.2f}, NMI {result.nmi:.2f}{extra}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    return ax


def plot_som(result: ClusterResult, *, ax: Any = None) -> Any:
    """The SOM grid: each node shaded by how many faces it won, marked with its majority identity."""
    import matplotlib.pyplot as plt

    if result.method != "som":
        raise ConfigError(f"plot_som draws a SOM result, got {result.method!r}")
    size = int(result.params["size"])
    ax = ax or plt.subplots(figsize=(6, 6))[1]
    hits = np.zeros((size, size))
    names = list(dict.fromkeys(result.identities.tolist()))
    cmap = plt.get_cmap("tab20", max(len(names), 1))
    for (i, j) in result.coordinates.astype(int):
        hits[i, j] += 1
    ax.imshow(hits.T, cmap="Greys", origin="lower", alpha=0.4)
    for (i, j) in {tuple(c) for c in result.coordinates.astype(int)}:
        here = result.identities[(result.coordinates[:, 0] == i) & (result.coordinates[:, 1] == j)]
        values, counts = np.unique(here, return_counts=True)
        top = values[np.argmax(counts)]
        ax.scatter(i, j, s=40 + 25 * len(here), color=cmap(names.index(top) % 20), edgecolor="k", linewidth=0.3)
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(-0.5, size - 0.5)
    ax.set_title(f"SOM {size}×{size}: ARI {result.ari:.2f}, NMI {result.nmi:.2f}")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax
