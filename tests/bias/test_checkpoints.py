"""Checkpoints: the payload round-trips, finished runs are found and typed, a small CNN checkpoint embeds real photos."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from crowdkit.bias.checkpoints import (  # noqa: E402
    Checkpoint,
    TrainingRun,
    checkpoint_epoch,
    epoch_checkpoint_name,
    find_runs,
    load_model,
)
from crowdkit.bias.train import train, train_arms  # noqa: E402
from crowdkit.bias.train_config import TrainConfig  # noqa: E402
from crowdkit.bias.training_data import TrainingData  # noqa: E402
from crowdkit.common.exceptions import ConfigError, DataNotFoundError  # noqa: E402


def _descriptor_data(n_ids: int = 8, per_id: int = 5) -> TrainingData:
    rng = np.random.default_rng(0)
    inputs = {f"id{i:02d}": rng.normal(size=(per_id, 128)).astype(np.float32) for i in range(n_ids)}
    return TrainingData("dlib", 0, inputs, {k: () for k in inputs})


def _small(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(epochs=2, batches_per_epoch=2, people_per_batch=4, images_per_person=3,
                                 val_fraction=0.25, device="cpu"), **kw})


def test_epoch_names_round_trip():
    assert epoch_checkpoint_name(30) == "epoch030.pt"
    assert checkpoint_epoch("runs/x/epoch030.pt") == 30
    assert checkpoint_epoch("runs/x/last.pt") is None and checkpoint_epoch("best.pt") is None


def test_checkpoint_payload_round_trips(tmp_path):
    result = train(_small(checkpoint_dir=str(tmp_path / "r")), _descriptor_data(), progress=False)
    saved = Checkpoint.load(result.last_checkpoint)
    assert saved.epoch == 2 and saved.config == result.config and saved.history == result.history
    assert len(saved.train_identities) + len(saved.val_identities) == 8
    assert set(saved.to_payload()) == {"model", "optimizer", "epoch", "config", "torch_rng", "history",
                                       "best_val_accuracy", "best_epoch", "waited", "train_identities",
                                       "val_identities", "data_fingerprint"}
    copy = saved.save(tmp_path / "copy.pt")
    again = Checkpoint.load(copy)
    assert again.history == saved.history and again.data_fingerprint == saved.data_fingerprint
    for key, value in saved.model_state.items():
        assert torch.equal(value, again.model_state[key])


def test_checkpoint_load_says_what_is_wrong(tmp_path):
    with pytest.raises(DataNotFoundError, match="train a model first"):
        Checkpoint.load(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a crowdkit.bias.train checkpoint"):
        load_model(tmp_path / "other.pt")


def test_find_runs_returns_typed_runs_and_their_checkpoints(tmp_path):
    root = tmp_path / "arms"
    train_arms(_small(keep_epochs=(1, 2)), _descriptor_data(), None, seeds=[0, 3], root=root, samplers=("random",),
               progress=False)
    runs = find_runs(root)
    assert [(r.sampler, r.seed, r.epoch) for r in runs] == [("random", 0, 2), ("random", 3, 2)]
    assert all(isinstance(r, TrainingRun) and r.last.name == "last.pt" for r in runs)
    assert [e for e, _ in runs[0].evaluation_checkpoints()] == [1, 2]
    frame = runs.to_frame()
    assert list(frame["seed"]) == [0, 3] and list(frame["kept"]) == [2, 2]
    plain = TrainingRun("stratified", 1, 5, 4, tmp_path / "best.pt", tmp_path / "last.pt")
    assert plain.evaluation_checkpoints() == ((5, tmp_path / "last.pt"),)
    assert len(find_runs(tmp_path / "nothing")) == 0


@pytest.mark.slow
def test_small_cnn_checkpoint_embeds_lfw_images(tmp_path, isolated_home, lfw_dir):
    rng = np.random.default_rng(0)
    inputs = {f"id{i}": rng.integers(0, 255, size=(4, 64, 64, 3), dtype=np.uint8) for i in range(6)}
    data = TrainingData("image", 64, inputs, {k: () for k in inputs})
    cfg = TrainConfig(backbone="small_cnn", epochs=1, batches_per_epoch=2, people_per_batch=4, images_per_person=3,
                      lr=1e-2, val_fraction=0.0, checkpoint_dir=str(tmp_path / "cnn"), device="cpu")
    result = train(cfg, data, progress=False)
    model = load_model(result.last_checkpoint)
    paths = sorted((lfw_dir / "Aaron_Peirsol").glob("*.jpg"))[:2]
    emb, status = model.embed_paths(paths, progress=False)
    assert emb.shape == (2, 128) and status.tolist() == [0, 0]
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
