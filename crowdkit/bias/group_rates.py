"""Per-group error rates over all pairs of a set of images, the way NIST FRVT demographics and RFW measure them.

For a set of images with identities, and a (predicted) group per identity:

* **FNMR** of a group over *all* genuine pairs of its identities (every two
  photos of one person), **FMR** over *all* impostor pairs within the group
  (two photos of different people, both in the group); a ``cross-group`` row
  holds the impostor pairs whose people are in different groups;
* at given thresholds (the model's global one from the 10-fold protocol, and
  the one giving FMR = 10⁻³ over all impostors) and at each group's own
  FMR = 10⁻³ threshold;
* 95 % intervals by bootstrapping identities within the group (seeded): a
  person drawn k times counts k times in every pair it is in.

Nothing is materialised as a pair list: distances are computed in row blocks
(numpy) and reduced to sparse identity × identity match counts (:func:`match_counts`),
from which every rate and bootstrap replicate follows. Group labels are a
classifier's **predictions** with a measured error, never facts about anyone.

Example
-------
>>> import numpy as np
>>> x = np.eye(4)[[0, 0, 1, 1]] + 0.01 * np.arange(4)[:, None]
>>> layout = GroupLayout.build(np.array(["a", "a", "b", "b"]), {"a": "G", "b": "G"})
>>> rates(layout, match_counts(layout, x[layout.order], [0.5]), 0)["G"]
(0.0, 0.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np
from scipy import sparse

from crowdkit.bias.protocol import FAR_TARGET
from crowdkit.common.exceptions import ConfigError

#: The row of impostor pairs whose two people are in different groups.
CROSS = "cross-group"

#: Distance-matrix elements per block (memory ≈ 8 bytes each).
BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True, eq=False)
class GroupLayout:
    """Images sorted by (group, identity): ``order`` maps sorted rows to the input rows.

    ``identity`` (n,) each sorted row's identity index; ``photos`` (K,) photos per identity;
    ``identity_group`` (K,) each identity's group index into ``groups``.
    """

    order: np.ndarray
    identity: np.ndarray
    photos: np.ndarray
    identity_group: np.ndarray
    groups: tuple
    identity_names: tuple = field(repr=False)

    @classmethod
    def build(cls, names: Sequence[str], labels: Mapping[str, str], unlabelled: str = "unlabelled") -> "GroupLayout":
        """The layout of images named ``names`` (their identities) under ``labels`` (identity → group)."""
        names = np.asarray(names).astype(str)
        group_of = np.array([labels.get(n, unlabelled) for n in names])
        order = np.lexsort((names, group_of))
        ids, identity = np.unique(names[order], return_inverse=True)
        # np.unique sorts by name; renumber identities in sorted-row order so that runs are contiguous.
        first = np.r_[True, identity[1:] != identity[:-1]]
        run = np.cumsum(first) - 1
        identity_names = tuple(ids[identity[first]])
        groups = tuple(sorted(set(group_of.tolist())))
        identity_group = np.array([groups.index(g) for g in group_of[order][first]], dtype=int)
        return cls(order, run, np.bincount(run), identity_group, groups, identity_names)

    @property
    def n_identities(self) -> int:
        return len(self.photos)

    def members(self, group: str) -> np.ndarray:
        """Identity indices of ``group``."""
        return np.flatnonzero(self.identity_group == self.groups.index(group))

    def pair_sizes(self, members: np.ndarray) -> tuple[int, int]:
        """(genuine pairs, impostor pairs) among the identities ``members``."""
        n = self.photos[members].astype(np.int64)
        return int((n * (n - 1) // 2).sum()), int((n.sum() ** 2 - (n ** 2).sum()) // 2)


def distance_block(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """(len(a), len(b)) distances: ``"euclidean"``, ``"euclidean_l2"`` (rows L2-normalised first) or ``"cosine"``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if metric in ("euclidean_l2", "cosine"):
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    if metric == "cosine":
        return np.clip(1.0 - a @ b.T, 0.0, 2.0)
    if metric not in ("euclidean", "euclidean_l2"):
        raise ConfigError(f"unknown metric {metric!r}; known: euclidean, euclidean_l2, cosine")
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0.0))


def _row_blocks(x: np.ndarray, metric: str) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, distances of a block of rows to every row) with each row's distance to itself set to +inf."""
    n = len(x)
    step = max(1, BLOCK_ELEMENTS // max(n, 1))
    for r0 in range(0, n, step):
        d = distance_block(x[r0:r0 + step], x, metric)
        d[np.arange(len(d)), r0 + np.arange(len(d))] = np.inf
        yield r0, d


def match_counts(layout: GroupLayout, x_sorted: np.ndarray, thresholds: Sequence[float],
                 metric: str = "euclidean") -> list[sparse.csr_array]:
    """Per threshold, a sparse (K, K) matrix: ordered pairs of photos of identities i and j with distance ≤ it.

    ``x_sorted`` are the embeddings in layout order (``x[layout.order]``). The
    diagonal counts each genuine pair twice; off the diagonal [i, j] = [j, i] is
    the number of impostor pairs between i and j that match. Sparse because at
    the thresholds that matter few impostor pairs match: all of LFW (5,749 people)
    needs 130 MB per threshold as a dense float32 matrix; one model's rates over
    all 13,233 images peaked at 1.55 GiB dense and 0.42 GiB sparse.
    """
    k = layout.n_identities
    counts = [sparse.csr_array((k, k), dtype=np.float64) for _ in thresholds]
    for r0, d in _row_blocks(x_sorted, metric):
        for t, threshold in enumerate(thresholds):
            rows, cols = np.nonzero(d <= threshold)
            block = sparse.coo_array((np.ones(len(rows)), (layout.identity[r0 + rows], layout.identity[cols])),
                                     shape=(k, k))
            counts[t] = counts[t] + block.tocsr()
    return counts


def _within(counts: sparse.csr_array, members: np.ndarray) -> sparse.csr_array:
    """The rows and columns of ``members`` (identity indices) of a count matrix."""
    return counts[members][:, members]


def _impostors_only(counts: sparse.csr_array) -> sparse.csr_array:
    """A count matrix without its diagonal (the genuine pairs)."""
    return counts - sparse.diags_array(counts.diagonal())


def smallest_impostor_distances(layout: GroupLayout, x_sorted: np.ndarray, metric: str,
                                keep: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The ``keep[g]`` smallest impostor distances (sorted) within each group g, and over all impostors (``"all"``).

    Each unordered pair once. Enough to find any FMR ≤ ``keep / pairs`` threshold exactly (:func:`fmr_threshold`).
    """
    group_of_row = layout.identity_group[layout.identity]
    found: dict[str, np.ndarray] = {name: np.empty(0) for name in keep}
    for r0, d in _row_blocks(x_sorted, metric):
        rows = np.arange(r0, r0 + len(d))
        impostor = (layout.identity[rows][:, None] != layout.identity[None, :]) & (
            np.arange(len(x_sorted))[None, :] > rows[:, None])
        same_group = group_of_row[rows][:, None] == group_of_row[None, :]
        for name, k in keep.items():
            mask = impostor if name == "all" else impostor & same_group & (
                group_of_row[rows] == layout.groups.index(name))[:, None]
            values = np.concatenate([found[name], d[mask]])
            found[name] = np.partition(values, k - 1)[:k] if len(values) > k else values
    return {name: np.sort(v) for name, v in found.items()}


def fmr_threshold(smallest: np.ndarray, n_impostors: int, target: float = FAR_TARGET) -> float:
    """The distance with FMR = ``target`` by linear interpolation, from the sorted smallest impostor distances.

    The same interpolation as :func:`crowdkit.bias.protocol.far_threshold` (FMR(d_(i)) = i / m,
    FMR = 0 just below d_(1), ties keep their largest FMR), exact when ``smallest`` holds at least
    ``ceil(target · m) + 2`` values or all of them.
    """
    s = np.sort(np.asarray(smallest, dtype=np.float64))
    if n_impostors <= 0 or not len(s):
        return float("nan")
    complete = len(s) >= n_impostors
    fmrs = np.arange(0, len(s) + 1) / n_impostors
    thresholds = np.concatenate([[s[0] - 1e-6], s])
    keep = np.ones(len(s) + 1, dtype=bool)
    keep[1:len(s)] = s[1:] > s[:-1]
    if not complete:  # the last point's tie status is unknown: leave it out
        keep[-1] = False
    return float(np.interp(target, fmrs[keep], thresholds[keep]))


def keep_for(n_impostors: int, target: float = FAR_TARGET) -> int:
    """How many smallest impostor distances :func:`fmr_threshold` needs for ``target`` among ``n_impostors``."""
    return int(max(1, min(n_impostors, int(np.ceil(target * n_impostors)) + 2)))


def rates(layout: GroupLayout, counts: Sequence[sparse.csr_array], t: int) -> dict[str, tuple[float, float]]:
    """group → (FNMR, FMR) at threshold index ``t`` of ``counts``; plus :data:`CROSS` → (nan, FMR)."""
    c = counts[t]
    out = {}
    within_matches, within_pairs = 0.0, 0
    for g in layout.groups:
        m = layout.members(g)
        genuine, impostor = layout.pair_sizes(m)
        block = _within(c, m)
        genuine_matched = block.diagonal().sum()
        matched = (block.sum() - genuine_matched) / 2
        within_matches, within_pairs = within_matches + matched, within_pairs + impostor
        out[g] = (float(1 - genuine_matched / 2 / genuine) if genuine else np.nan,
                  float(matched / impostor) if impostor else np.nan)
    everyone = np.arange(layout.n_identities)
    all_matches = (c.sum() - c.diagonal().sum()) / 2
    all_pairs = layout.pair_sizes(everyone)[1]
    cross_pairs = all_pairs - within_pairs
    out[CROSS] = (np.nan, float((all_matches - within_matches) / cross_pairs) if cross_pairs else np.nan)
    return out


def bootstrap_draws(layout: GroupLayout, group: str, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, K_g) how often each identity of ``group`` is drawn, per replicate (seeded by seed and group)."""
    m = layout.members(group)
    rng = np.random.default_rng([seed, layout.groups.index(group)])
    picks = rng.integers(0, len(m), size=(n_boot, len(m)))
    return np.stack([np.bincount(p, minlength=len(m)) for p in picks]).astype(np.float64)


def bootstrap_rates(layout: GroupLayout, counts: Sequence[sparse.csr_array], t: int, group: str,
                    draws: np.ndarray) -> np.ndarray:
    """(n_boot, 2) FNMR and FMR of ``group`` at threshold index ``t`` in each identity-bootstrap replicate."""
    m = layout.members(group)
    c = _within(counts[t], m)
    n = layout.photos[m].astype(np.float64)
    genuine_matched = c.diagonal() / 2
    off = _impostors_only(c)
    impostor_matched = ((off @ draws.T).T * draws).sum(1) / 2
    impostor_pairs = ((draws @ n) ** 2 - (draws ** 2) @ (n ** 2)) / 2
    genuine_pairs = draws @ (n * (n - 1) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([1 - draws @ genuine_matched / genuine_pairs, impostor_matched / impostor_pairs], axis=1)


def cross_bootstrap_fmr(layout: GroupLayout, counts: Sequence[sparse.csr_array], t: int,
                        draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n_boot,) cross-group FMR when every group's identities are resampled with ``draws[group]``."""
    c = _impostors_only(counts[t])
    w = np.zeros((len(next(iter(draws.values()))), layout.n_identities))
    for g, d in draws.items():
        w[:, layout.members(g)] = d
    n = layout.photos.astype(np.float64)
    total_matched = ((c @ w.T).T * w).sum(1) / 2
    total_pairs = ((w @ n) ** 2 - (w ** 2) @ (n ** 2)) / 2
    for g in draws:
        m = layout.members(g)
        total_matched -= ((_within(c, m) @ w[:, m].T).T * w[:, m]).sum(1) / 2
        total_pairs -= ((w[:, m] @ n[m]) ** 2 - (w[:, m] ** 2) @ (n[m] ** 2)) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return total_matched / total_pairs


def impostor_histograms(layout: GroupLayout, x_sorted: np.ndarray, metric: str,
                        edges: np.ndarray) -> dict[str, np.ndarray]:
    """Impostor distance counts per group (within-group pairs, each once) over the bins ``edges``."""
    group_of_row = layout.identity_group[layout.identity]
    hist = {g: np.zeros(len(edges) - 1) for g in layout.groups}
    for r0, d in _row_blocks(x_sorted, metric):
        rows = np.arange(r0, r0 + len(d))
        mask = (layout.identity[rows][:, None] != layout.identity[None, :]) & (
            np.arange(len(x_sorted))[None, :] > rows[:, None]) & (group_of_row[rows][:, None] == group_of_row[None, :])
        for gi, g in enumerate(layout.groups):
            values = d[mask & (group_of_row[rows] == gi)[:, None]]
            hist[g] += np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
    return hist
