"""Triplet training: mining against brute force, a real CelebA step, checkpoints and resume, bad input."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdkit.bias import train as T  # noqa: E402
from crowdkit.bias.checkpoints import load_model  # noqa: E402
from crowdkit.bias.train_config import TrainConfig  # noqa: E402
from crowdkit.bias.training_data import TrainingData, load_training_data  # noqa: E402
from crowdkit.common.exceptions import ConfigError, EmptyGalleryError, UnknownBackendError  # noqa: E402


def _brute_force_semihard(emb: np.ndarray, labels: np.ndarray, margin: float) -> set[tuple[int, int, int]]:
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    d = np.linalg.norm(e[:, None] - e[None], axis=2)
    found = set()
    for a, p, n in itertools.permutations(range(len(labels)), 3):
        if labels[a] == labels[p] and labels[a] != labels[n]:
            if d[a, p] < d[a, n] <= d[a, p] + margin:
                found.add((a, p, n))
    return found


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_semihard_mining_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), 3)
    emb = rng.normal(size=(12, 8)).astype(np.float32) + labels[:, None] * 0.3
    a, p, n = T.semihard_triplets(torch.from_numpy(emb), torch.from_numpy(labels), margin=0.2)
    mined = set(zip(a.tolist(), p.tolist(), n.tolist()))
    assert mined == _brute_force_semihard(emb, labels, 0.2)
    assert len(mined) > 0


def test_count_valid_triplets():
    labels = np.array([0, 0, 0, 1, 1, 2])
    brute = sum(1 for a, p, n in itertools.permutations(range(6), 3)
                if labels[a] == labels[p] and labels[a] != labels[n])
    assert T.count_valid_triplets(labels) == brute


def _synthetic_data(n_ids: int = 12, per_id: int = 6, seed: int = 0) -> TrainingData:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, 128))
    inputs = {f"id{i:02d}": (centres[i] + 0.9 * rng.normal(size=(per_id, 128))).astype(np.float32) for i in range(n_ids)}
    return TrainingData("dlib", 0, inputs, {k: () for k in inputs})


def _cfg(tmp_path, name: str, **kw) -> TrainConfig:
    base = dict(epochs=4, batches_per_epoch=3, people_per_batch=4, images_per_person=3, lr=1e-2,
                val_fraction=0.25, checkpoint_dir=str(tmp_path / name), device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def test_resume_after_interruption_gives_the_uninterrupted_weights(tmp_path):
    data = _synthetic_data()
    full = T.train(_cfg(tmp_path, "full"), data, progress=False)
    first = T.train(_cfg(tmp_path, "cut"), data, progress=False, stop_after=2)  # "interrupted" after 2 epochs
    assert [h.epoch for h in first.history] == [1, 2]
    resumed = T.train(_cfg(tmp_path, "cut"), data, progress=False)
    assert resumed.resumed_from_epoch == 2
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    a = torch.load(full.last_checkpoint, weights_only=False)["model"]
    b = torch.load(resumed.last_checkpoint, weights_only=False)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.metrics_path.read_text().count("\n") == 5  # header + 4 epochs


def test_resume_refuses_a_different_run(tmp_path):
    data = _synthetic_data()
    T.train(_cfg(tmp_path, "r", epochs=1), data, progress=False)
    with pytest.raises(ConfigError, match="lr"):
        T.train(_cfg(tmp_path, "r", epochs=2, lr=0.5), data, progress=False)


def test_a_finished_run_on_other_inputs_is_trained_again(tmp_path, caplog):
    T.train(_cfg(tmp_path, "d", epochs=2), _synthetic_data(seed=0), progress=False)
    same = T.train(_cfg(tmp_path, "d", epochs=2), _synthetic_data(seed=0), progress=False)
    assert same.resumed_from_epoch == 2  # same inputs: the finished run is reloaded
    with caplog.at_level("WARNING"):
        other = T.train(_cfg(tmp_path, "d", epochs=2), _synthetic_data(seed=1), progress=False)
    assert other.resumed_from_epoch == 0 and "other inputs" in caplog.text
    assert [h.epoch for h in other.history] == [1, 2]


def test_early_stopping_and_checkpoint_loads(tmp_path):
    data = _synthetic_data()
    result = T.train(_cfg(tmp_path, "es", epochs=30, patience=1, lr=0.5), data, progress=False)
    assert result.stopped_early and len(result.history) < 30
    model = load_model(result.best_checkpoint)
    emb = model.embed_inputs(data.inputs["id00"])
    assert emb.shape == (6, 128)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_stratified_training_runs_with_labels(tmp_path):
    data = _synthetic_data()
    labels = {k: ("A" if i % 3 else "B") for i, k in enumerate(data.inputs)}
    result = T.train(_cfg(tmp_path, "strat", sampler="stratified", epochs=1), data, labels, progress=False)
    assert len(result.history) == 1


def test_bad_config_and_input(tmp_path):
    with pytest.raises(UnknownBackendError, match="projection"):
        TrainConfig(backbone="resnet9000")
    with pytest.raises(ConfigError, match="sampler"):
        TrainConfig(sampler="balanced")
    with pytest.raises(ConfigError, match="labels"):
        T.train(_cfg(tmp_path, "x", sampler="stratified"), _synthetic_data(), None, progress=False)
    with pytest.raises(EmptyGalleryError):
        load_training_data("projection", {"nobody": []}, progress=False)


def test_training_reduces_loss_on_real_celeba_faces(tmp_path, data_root):
    """10 real CelebA identities × 8 photos, dlib descriptors (cached), projection head."""
    from crowdkit.common.datasets import load_celeba

    identities = dict(sorted(load_celeba(data_root / "celeba").identities.items())[:10])
    data = load_training_data("projection", {k: v[:8] for k, v in identities.items()}, progress=False)
    assert data.n_images + len(data.skipped) == 80
    cfg = _cfg(tmp_path, "celeba", epochs=6, batches_per_epoch=5, people_per_batch=6, images_per_person=4,
               val_fraction=0.0, lr=0.05, embedding_dim=128)
    result = T.train(cfg, data, progress=False)
    first, last = result.history[0], result.history[-1]
    assert last.loss < first.loss
    assert last.active_fraction <= first.active_fraction


def test_lookup_table_from_another_classifier_is_refused(tmp_path):
    """The stratified arm reads its labels from the lookup table; a table made by another classifier is an error."""
    import sqlite3

    from crowdkit.common.exceptions import LookupTableMismatchError

    db = tmp_path / "lookup.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.execute("INSERT INTO meta VALUES ('classifier', 'probe')")
        con.execute("CREATE TABLE identities (identity TEXT PRIMARY KEY, label TEXT NOT NULL)")
        con.executemany("INSERT INTO identities VALUES (?, ?)", [(f"id{i:02d}", "AB"[i % 2]) for i in range(12)])
    data = _synthetic_data()
    with pytest.raises(LookupTableMismatchError, match="vgg16"):
        T.train(_cfg(tmp_path, "lk", sampler="stratified", epochs=1), data, db, classifier={"classifier": "vgg16"},
                progress=False)
    result = T.train(_cfg(tmp_path, "lk", sampler="stratified", epochs=1), data, db,
                     classifier={"classifier": "probe"}, progress=False)
    assert len(result.history) == 1
