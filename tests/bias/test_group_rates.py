"""Per-group rates on small synthetic embeddings: blockwise equals brute force, known FMR, FMR=1e-3 threshold, bootstrap."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from crowdkit.bias import group_rates as gr
from crowdkit.bias import group_study
from crowdkit.bias.protocol import far_threshold


def _faces(seed=0, people=9, photos=(2, 3, 4), dim=8, spread=0.3):
    rng = np.random.default_rng(seed)
    x, names = [], []
    for p in range(people):
        n = photos[p % len(photos)]
        centre = rng.normal(size=dim)
        x.append(centre + spread * rng.normal(size=(n, dim)))
        names += [f"p{p}"] * n
    labels = {f"p{p}": "ABC"[p % 3] for p in range(people)}
    return np.concatenate(x), np.array(names), labels


def _brute(x, names, labels, t):
    """Every unordered pair, materialised: group → (FNMR, FMR); cross-group FMR."""
    out = {}
    for g in sorted(set(labels.values())):
        gen, imp = [], []
        for i, j in itertools.combinations(range(len(x)), 2):
            if labels[names[i]] != g or labels[names[j]] != g:
                continue
            (gen if names[i] == names[j] else imp).append(np.linalg.norm(x[i] - x[j]) <= t)
        out[g] = (1 - np.mean(gen), np.mean(imp))
    cross = [np.linalg.norm(x[i] - x[j]) <= t for i, j in itertools.combinations(range(len(x)), 2)
             if labels[names[i]] != labels[names[j]]]
    out[gr.CROSS] = (np.nan, np.mean(cross))
    return out


@pytest.mark.parametrize("block", [7, 10_000])
def test_blockwise_equals_brute_force(monkeypatch, block):
    monkeypatch.setattr(gr, "BLOCK_ELEMENTS", block)
    x, names, labels = _faces()
    layout = gr.GroupLayout.build(names, labels)
    counts = gr.match_counts(layout, x[layout.order], [2.0, 3.5], "euclidean")
    for t, threshold in enumerate([2.0, 3.5]):
        found, expected = gr.rates(layout, counts, t), _brute(x, names, labels, threshold)
        for g in expected:
            np.testing.assert_allclose(found[g], expected[g], equal_nan=True)


def test_a_group_with_a_known_fmr():
    # Group "near": 4 people whose photos all sit at one point (every impostor pair matches), "far": spread out.
    far = np.repeat(100 * np.arange(4), 2)[:, None] * np.ones((1, 2)) + 1000
    x = np.concatenate([np.zeros((8, 2)), far])
    names = np.repeat([f"n{i}" for i in range(4)] + [f"f{i}" for i in range(4)], 2)
    labels = {**{f"n{i}": "near" for i in range(4)}, **{f"f{i}": "far" for i in range(4)}}
    layout = gr.GroupLayout.build(names, labels)
    found = gr.rates(layout, gr.match_counts(layout, x[layout.order], [0.5], "euclidean"), 0)
    assert found["near"] == (0.0, 1.0) and found["far"] == (0.0, 0.0) and found[gr.CROSS][1] == 0.0
    assert layout.pair_sizes(layout.members("near")) == (4, 24)


def test_fmr_threshold_from_the_smallest_equals_the_protocols():
    rng = np.random.default_rng(1)
    d = rng.uniform(size=20_000)
    for target in (1e-3, 1e-2):
        k = gr.keep_for(len(d), target)
        assert gr.fmr_threshold(np.sort(d)[:k], len(d), target) == pytest.approx(
            far_threshold(d, np.zeros(len(d), bool), target), abs=1e-12)
    x, names, labels = _faces(people=12)
    layout = gr.GroupLayout.build(names, labels)
    xs = x[layout.order]
    everyone = layout.pair_sizes(np.arange(layout.n_identities))[1]
    smallest = gr.smallest_impostor_distances(layout, xs, "euclidean", {"all": everyone, "A": 5})
    assert len(smallest["all"]) == everyone and len(smallest["A"]) == 5
    threshold = gr.fmr_threshold(smallest["all"], everyone, 0.1)
    fmr = gr.rates(layout, gr.match_counts(layout, xs, [threshold], "euclidean"), 0)
    all_impostors = smallest["all"]
    assert np.mean(all_impostors <= threshold) == pytest.approx(0.1, abs=1.5 / everyone)
    assert set(fmr) == {"A", "B", "C", gr.CROSS}


def test_identity_bootstrap_is_reproducible_and_centred():
    x, names, labels = _faces(people=30)
    a = group_study.measure_model("m", x, names, labels, metric="euclidean", global_threshold=3.0, n_boot=200, seed=4)
    b = group_study.measure_model("m", x, names, labels, metric="euclidean", global_threshold=3.0, n_boot=200, seed=4)
    c = group_study.measure_model("m", x, names, labels, metric="euclidean", global_threshold=3.0, n_boot=200, seed=5)
    g = group_study.GLOBAL
    np.testing.assert_array_equal(a.replicates[g]["A"], b.replicates[g]["A"])
    assert not np.array_equal(a.replicates[g]["A"], c.replicates[g]["A"])
    low, high = np.nanpercentile(a.replicates[g]["A"][:, 1], [2.5, 97.5])
    assert low <= a.point[g]["A"][1] <= high
    table = a.to_frame()
    assert {"identities", "genuine pairs", "impostor pairs", f"FMR @ {g}"} <= set(table.columns)
    assert table.loc["A", "identities"] == 10 and "[" in table.loc["A", f"FMR @ {g}"]
    own_low, own_high = np.nanpercentile(a.own_replicates["A"][:, 0], [2.5, 97.5])
    assert own_low <= a.own_fnmr["A"] <= own_high  # the group's own threshold, held fixed in each replicate
    assert table.loc["A", "FNMR @ own threshold"] == f"{a.own_fnmr['A']:.4f} [{own_low:.4f}, {own_high:.4f}]"


def test_arm_differences_and_verdict():
    x, names, labels = _faces(people=15)
    runs = {(s, k): group_study.measure_model("m", x + (0.5 * k if s == "stratified" else 0), names, labels,
                                              metric="euclidean", global_threshold=3.0, n_boot=100, seed=0)
            for s in ("random", "stratified") for k in (0, 1)}
    diffs = group_study.arm_differences(runs)
    assert len(diffs) == 4 * 3 and (diffs["low"] <= diffs["high"]).all()
    assert np.allclose(diffs["difference"], 0)  # a constant shift leaves every distance unchanged
    assert "did not change any group's error beyond noise" in group_study.arm_verdict(diffs)
    moved = diffs.assign(low=0.01, high=0.02)
    assert "changed 12 of 12" in group_study.arm_verdict(moved)
