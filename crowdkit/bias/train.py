"""Triplet-loss training on identity mini-batches (FaceNet), with checkpoints, resume and early stopping.

Pipeline::

    identities (CelebA / CASIA layout) ─► inputs per image ─► sampler batches ─► backbone ─► L2-normalised
    embeddings ─► online semi-hard mining (margin 0.2) ─► triplet loss ─► Adam ─► checkpoint per epoch

Inputs come from :mod:`crowdkit.bias.training_data`, the networks from
:mod:`crowdkit.bias.backbones`, the run's settings from
:class:`crowdkit.bias.train_config.TrainConfig`, the files it writes from
:mod:`crowdkit.bias.checkpoints`.

Mining and loss come from pytorch-metric-learning: ``TripletMarginMiner(
type_of_triplets="semihard")`` keeps every triplet with
``d(a,p) < d(a,n) <= d(a,p) + margin`` (FaceNet's semi-hard condition, all
of them rather than one random negative per anchor-positive pair), and
``TripletMarginLoss`` averages ``max(d(a,p) − d(a,n) + margin, 0)`` over them.
The fraction of all valid triplets that the miner keeps ("active triplets")
is logged each epoch. Validation: the LFW 10-fold protocol
(:mod:`crowdkit.bias.protocol`) on pairs of held-out identities.

Resume: every epoch writes ``last.pt`` (weights, optimizer, epoch, RNG state,
history); ``train`` on the same checkpoint folder continues after the last
completed epoch, and the sampler stream is replayed to the same position, so
an interrupted run ends with the weights an uninterrupted one would have.

Typical use::

    data = load_training_data("projection", load_celeba().identities)
    result = train(TrainConfig(sampler="stratified", epochs=30, seed=1), data, labels)
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from crowdkit.bias.backbones import BACKBONES, embedding_net, to_tensor
from crowdkit.bias.checkpoints import BEST, LAST, Checkpoint, epoch_checkpoint_name
from crowdkit.bias.protocol import lfw_protocol
from crowdkit.bias.train_config import EpochMetrics, TrainConfig
from crowdkit.bias.training_data import TrainingData
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.io import atomic_path, show_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a run produced: where its files are and its curve."""

    config: TrainConfig
    history: tuple[EpochMetrics, ...]
    best_checkpoint: Path
    last_checkpoint: Path
    metrics_path: Path
    best_epoch: int
    best_val_accuracy: float
    stopped_early: bool
    resumed_from_epoch: int
    n_train_identities: int
    n_val_identities: int
    n_images: int
    n_skipped: int
    seconds: float

    def history_frame(self):
        """The training curve, one row per epoch (the columns of :class:`EpochMetrics`)."""
        import pandas as pd

        return pd.DataFrame([asdict(h) for h in self.history])


# --------------------------------------------------------------------------- mining and loss

def semihard_triplets(embeddings: Any, labels: Any, *, margin: float = 0.2) -> tuple[Any, Any, Any]:
    """Indices (anchor, positive, negative) of the semi-hard triplets of a batch.

    Semi-hard: ``d(a,p) < d(a,n) <= d(a,p) + margin`` with euclidean distance
    on L2-normalised embeddings (pytorch-metric-learning's TripletMarginMiner).
    """
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.miners import TripletMarginMiner

    miner = TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=LpDistance(normalize_embeddings=True))
    return miner(embeddings, labels)


def count_valid_triplets(labels: np.ndarray) -> int:
    """Number of (a, p, n) with a ≠ p same label and n another label: Σ_c n_c (n_c − 1)(N − n_c)."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    n = counts.sum()
    return int(np.sum(counts * (counts - 1) * (n - counts)))


class _TripletStep:
    def __init__(self, margin: float) -> None:
        from pytorch_metric_learning.distances import LpDistance
        from pytorch_metric_learning.losses import TripletMarginLoss
        from pytorch_metric_learning.miners import TripletMarginMiner

        distance = LpDistance(normalize_embeddings=True)
        self.miner = TripletMarginMiner(margin=margin, type_of_triplets="semihard", distance=distance)
        self.loss = TripletMarginLoss(margin=margin, distance=distance)

    def __call__(self, embeddings: Any, labels: Any) -> tuple[Any, int]:
        triplets = self.miner(embeddings, labels)
        return self.loss(embeddings, labels, triplets), int(len(triplets[0]))


# --------------------------------------------------------------------------- validation

def _validation_pairs(sizes: Mapping[str, int], seed: int, max_pairs: int = 3000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced same/different pairs over held-out identities: (rows a, rows b, issame); rows index the stacked inputs."""
    rng = np.random.default_rng(seed + 7919)
    keys = list(sizes)
    offsets = np.cumsum([0] + [sizes[k] for k in keys])
    same = [(offsets[i] + a, offsets[i] + b) for i, k in enumerate(keys)
            for a in range(sizes[k]) for b in range(a + 1, sizes[k])]
    same = [same[i] for i in rng.permutation(len(same))[: max_pairs // 2]]
    owner = np.repeat(np.arange(len(keys)), [sizes[k] for k in keys])
    diff = []
    while len(diff) < len(same) and len(keys) > 1:
        a, b = rng.integers(0, offsets[-1], size=2)
        if owner[a] != owner[b]:
            diff.append((a, b))
    pairs = np.array(same + diff, dtype=np.int64).reshape(-1, 2)
    issame = np.r_[np.ones(len(same), bool), np.zeros(len(diff), bool)]
    return pairs[:, 0], pairs[:, 1], issame


def _validate(net: Any, val: TrainingData | None, device: str, seed: int) -> tuple[float, float]:
    if val is None or len(val.inputs) < 2:
        return float("nan"), float("nan")
    import torch

    x = np.concatenate([val.inputs[k] for k in val.inputs])
    net.eval()
    with torch.no_grad():
        emb = torch.cat([net(to_tensor(x[i:i + 256], val.input, device)) for i in range(0, len(x), 256)]).cpu().numpy()
    a, b, issame = _validation_pairs(val.sizes(), seed)
    if issame.sum() < 10:
        return float("nan"), float("nan")
    d = np.linalg.norm(emb[a] - emb[b], axis=1)
    folds = np.random.default_rng(seed).permutation(len(d)) % 10
    result = lfw_protocol(d, issame, folds)
    return result.accuracy, result.auc


# --------------------------------------------------------------------------- the steps of a run

def split_identities(identities: Sequence[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded identity split: (train, validation); nobody is in both."""
    keys = sorted(identities)
    order = np.random.default_rng(seed).permutation(len(keys))
    n_val = int(round(len(keys) * val_fraction))
    val = sorted(keys[i] for i in order[:n_val])
    return sorted(set(keys) - set(val)), val


def _make_sampler(cfg: TrainConfig, sizes: Mapping[str, int], labels: Mapping[str, str] | None) -> Any:
    from crowdkit.bias.sampling import RandomBatchSampler, StratifiedBatchSampler

    if cfg.sampler == "stratified":
        if not labels:
            raise ConfigError("the stratified sampler needs identity labels: pass the lookup table "
                              "(crowdkit.bias.lookup.lookup_labels(db)) as `labels`")
        return StratifiedBatchSampler(sizes, labels, people_per_batch=cfg.people_per_batch,
                                      images_per_person=cfg.images_per_person, seed=cfg.seed)
    return RandomBatchSampler(sizes, people_per_batch=cfg.people_per_batch, images_per_person=cfg.images_per_person,
                              seed=cfg.seed, labels=labels)


def _resolve_labels(labels: Mapping[str, str] | str | os.PathLike | None, classifier: Any) -> Mapping[str, str] | None:
    if isinstance(labels, (str, os.PathLike)):
        from crowdkit.bias.lookup import lookup_labels

        return lookup_labels(labels, classifier=classifier)
    return labels


@dataclass
class _RunState:
    """One run in progress: what it trains, and what changes from epoch to epoch (saved in every checkpoint)."""

    config: TrainConfig
    run_dir: Path
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    fingerprint: str
    net: Any
    optimizer: Any
    history: list[EpochMetrics] = field(default_factory=list)
    start_epoch: int = 0
    best_acc: float = -np.inf
    best_epoch: int = 0
    waited: int = 0

    def record(self, row: EpochMetrics) -> None:
        """Append an epoch; a better (or undefined) validation accuracy resets the early-stopping count."""
        self.history.append(row)
        improved = not np.isnan(row.val_accuracy) and row.val_accuracy > self.best_acc
        if improved or np.isnan(row.val_accuracy):
            self.best_acc, self.best_epoch, self.waited = (row.val_accuracy if improved else self.best_acc), row.epoch, 0
        else:
            self.waited += 1

    def checkpoint(self) -> Checkpoint:
        """The state after the last recorded epoch, as :func:`_save_epoch` writes it."""
        import torch

        return Checkpoint(config=self.config, epoch=self.history[-1].epoch, model_state=self.net.state_dict(),
                          optimizer_state=self.optimizer.state_dict(), torch_rng=torch.get_rng_state(),
                          history=tuple(self.history), best_val_accuracy=self.best_acc, best_epoch=self.best_epoch,
                          waited=self.waited, train_identities=self.train_ids, val_identities=self.val_ids,
                          data_fingerprint=self.fingerprint)


def _resume(state: _RunState, device: str) -> None:
    """Load ``last.pt`` into ``state`` when it belongs to this run; stale inputs start over, another run is an error."""
    import torch

    last_path = state.run_dir / LAST
    saved = Checkpoint.load(last_path, device=device)
    if saved.data_fingerprint != state.fingerprint:
        log.warning("%s was trained on other inputs (data fingerprint differs); starting over", last_path)
        return
    differs = state.config.same_run(saved.config)
    if differs:
        raise ConfigError(f"{last_path} belongs to a run with different {', '.join(differs)}; "
                          "use another checkpoint_dir or pass resume=False to start over")
    state.net.load_state_dict(saved.model_state)
    state.optimizer.load_state_dict(saved.optimizer_state)
    torch.set_rng_state(saved.torch_rng)
    state.start_epoch = saved.epoch
    state.best_acc, state.best_epoch, state.waited = saved.best_val_accuracy, saved.best_epoch, saved.waited
    state.history = list(saved.history)
    log.info("resuming %s from epoch %d", state.run_dir, state.start_epoch + 1)


def _batch_stream(config: TrainConfig, data: TrainingData, labels: Mapping[str, str] | None,
                  start_epoch: int) -> Iterator[Any]:
    """The sampler's batches, replayed to where a resumed run stopped."""
    stream = iter(_make_sampler(config, data.sizes(), labels))
    for _ in range(start_epoch * config.batches_per_epoch):
        next(stream)
    return stream


def _train_epoch(state: _RunState, step: _TripletStep, stream: Iterator[Any], data: TrainingData,
                 key_index: Mapping[str, int], config: TrainConfig, device: str) -> tuple[float, float, float]:
    """One epoch of Adam steps; returns the mean loss, active-triplet fraction and mined triplets per batch."""
    import torch

    state.net.train()
    losses, active, mined = [], [], []
    for _ in range(config.batches_per_epoch):
        batch = next(stream)
        x = np.stack([data.inputs[k][j] for k, j in zip(batch.identities, batch.image_indices)])
        y = torch.tensor([key_index[k] for k in batch.identities], device=device)
        emb = state.net(to_tensor(x, data.input, device))
        loss, n_mined = step(emb, y)
        state.optimizer.zero_grad()
        loss.backward()
        state.optimizer.step()
        losses.append(float(loss.detach()))
        mined.append(n_mined)
        active.append(n_mined / max(count_valid_triplets(y.cpu().numpy()), 1))
    return float(np.mean(losses)), float(np.mean(active)), float(np.mean(mined))


def _save_epoch(checkpoint: Checkpoint, run_dir: Path) -> None:
    """``best.pt`` when this epoch is the best, ``epochNNN.pt`` when kept, always ``last.pt`` and ``metrics.csv``."""
    import pandas as pd

    if checkpoint.best_epoch == checkpoint.epoch:
        checkpoint.save(run_dir / BEST)
    if checkpoint.epoch in checkpoint.config.keep_epochs:
        checkpoint.save(run_dir / epoch_checkpoint_name(checkpoint.epoch))
    checkpoint.save(run_dir / LAST)
    with atomic_path(run_dir / "metrics.csv") as tmp:
        pd.DataFrame([asdict(h) for h in checkpoint.history]).to_csv(tmp, index=False)


# --------------------------------------------------------------------------- training

def _run_epochs(state: _RunState, stream: Iterator[Any], train_data: TrainingData, val_data: TrainingData | None,
                device: str, *, progress: bool, stop_after: int | None) -> bool:
    """Train from ``state.start_epoch`` to ``config.epochs``, saving after every epoch; True when stopped early."""
    from tqdm.auto import tqdm

    config = state.config
    step = _TripletStep(config.margin)
    key_index = {k: i for i, k in enumerate(state.train_ids)}
    bar = tqdm(range(state.start_epoch, config.epochs), desc=f"{config.backbone}/{config.sampler} s{config.seed}",
               unit="epoch", disable=not show_progress(progress), initial=state.start_epoch, total=config.epochs)
    stopped_early, epochs_this_call = False, 0
    for epoch in bar:
        if config.patience is not None and state.waited >= config.patience:
            stopped_early = True
            break
        e0 = time.perf_counter()
        loss, active, mined = _train_epoch(state, step, stream, train_data, key_index, config, device)
        val_acc, val_auc = _validate(state.net, val_data, device, config.seed)
        state.record(EpochMetrics(epoch + 1, loss, active, mined, val_acc, val_auc, time.perf_counter() - e0))
        bar.set_postfix(loss=f"{loss:.4f}", active=f"{active:.3f}", val=f"{val_acc:.3f}")
        _save_epoch(state.checkpoint(), state.run_dir)
        epochs_this_call += 1
        if stop_after is not None and epochs_this_call >= stop_after:
            break
    bar.close()
    return stopped_early


def train(config: TrainConfig, data: TrainingData, labels: Mapping[str, str] | str | os.PathLike | None = None, *,
          classifier: Any = None, resume: bool = True, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Train ``config.backbone`` with triplet loss on ``data``; returns where the checkpoints are and the curve.

    Parameters
    ----------
    config : TrainConfig
    data : TrainingData from :func:`crowdkit.bias.training_data.load_training_data`.
    labels : identity → label (predicted ethnicity), or the path of a lookup
        table (SQLite, :func:`crowdkit.bias.lookup.lookup_labels`); required by
        the stratified sampler, carried along by the random one.
    classifier : with a lookup-table path, the ethnicity classifier (or its
        fingerprint) the table must have been built with; a table built by
        another one raises :class:`~crowdkit.common.exceptions.LookupTableMismatchError`.
    resume : continue from ``last.pt`` in the run folder when there is one
        (its config must match apart from epochs/patience/device). A
        checkpoint trained on other inputs (e.g. descriptors of an older
        pipeline) is stale: training starts over and replaces it.
    stop_after : stop (as if interrupted) after this many epochs of *this
        call*; for tests and for time-boxed runs.
    """
    import torch

    labels = _resolve_labels(labels, classifier)
    t0 = time.perf_counter()
    run_dir = config.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    device = config.resolved_device()
    train_ids, val_ids = split_identities(list(data.inputs), config.val_fraction, config.seed)
    train_data, val_data = data.subset(train_ids), (data.subset(val_ids) if val_ids else None)

    torch.manual_seed(config.seed)
    net = embedding_net(BACKBONES.create(config.backbone), config.embedding_dim).to(device)
    state = _RunState(config, run_dir, tuple(train_data.inputs), tuple(val_ids), data.fingerprint(), net,
                      torch.optim.Adam(net.parameters(), lr=config.lr))
    if resume and (run_dir / LAST).is_file():
        _resume(state, device)
    resumed_from = state.start_epoch
    stream = _batch_stream(config, train_data, labels, state.start_epoch)
    stopped_early = _run_epochs(state, stream, train_data, val_data, device, progress=progress, stop_after=stop_after)
    return TrainResult(
        config=config, history=tuple(state.history), best_checkpoint=run_dir / BEST, last_checkpoint=run_dir / LAST,
        metrics_path=run_dir / "metrics.csv", best_epoch=int(state.best_epoch),
        best_val_accuracy=float(state.best_acc), stopped_early=stopped_early, resumed_from_epoch=resumed_from,
        n_train_identities=len(state.train_ids), n_val_identities=len(val_ids), n_images=data.n_images,
        n_skipped=len(data.skipped), seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- the two arms

def train_arms(base: TrainConfig, data: TrainingData, labels: Mapping[str, str] | None, *, seeds: Sequence[int],
               root: str | os.PathLike, samplers: Sequence[str] = ("random", "stratified"),
               progress: bool = True) -> list[TrainResult]:
    """Train every sampler × seed (``root/<sampler>-s<seed>/``); finished runs are reloaded, interrupted ones resumed."""
    results = []
    for sampler in samplers:
        for seed in seeds:
            cfg = replace(base, sampler=sampler, seed=int(seed), checkpoint_dir=str(Path(root) / f"{sampler}-s{seed}"))
            results.append(train(cfg, data, labels, progress=progress))
    return results
