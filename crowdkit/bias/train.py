"""Triplet-loss training on identity mini-batches (FaceNet), with checkpoints, resume and early stopping.

Pipeline::

    identities (CelebA / CASIA layout) ─► inputs per image ─► sampler batches ─► backbone ─► L2-normalised
    embeddings ─► online semi-hard mining (margin 0.2) ─► triplet loss ─► Adam ─► checkpoint per epoch

Inputs depend on the backbone (chosen by name from :data:`BACKBONES`):

* ``"projection"`` — a linear head on frozen dlib ResNet descriptors (fast CPU
  default; the descriptors are computed once and cached);
* ``"small_cnn"`` — a small CNN on 64 px MTCNN margin crops (CPU, minutes);
* ``"inception_resnet_v1"`` — facenet-pytorch's architecture, untrained, on
  160 px crops (the study's network; for a GPU).

Mining and loss come from pytorch-metric-learning: ``TripletMarginMiner(
type_of_triplets="semihard")`` keeps every triplet with
``d(a,p) < d(a,n) <= d(a,p) + margin`` (FaceNet's semi-hard condition, all
of them rather than one random negative per anchor-positive pair), and
``TripletMarginLoss`` averages ``max(d(a,p) − d(a,n) + margin, 0)`` over them.
The fraction of all valid triplets that the miner keeps ("active triplets")
is logged each epoch.

Resume: every epoch writes ``last.pt`` (weights, optimizer, epoch, RNG state,
history); ``train`` on the same checkpoint folder continues after the last
completed epoch, and the sampler stream is replayed to the same position, so
an interrupted run ends with the weights an uninterrupted one would have.

Typical use::

    data = load_training_data("projection", load_celeba().identities)
    result = train(TrainConfig(sampler="stratified", epochs=30, seed=1), data, labels)
"""
from __future__ import annotations

import json
import logging
import os
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from crowdkit.common import config as ck_config
from crowdkit.common.exceptions import ConfigError, DataNotFoundError, EmptyGalleryError, NoFaceError
from crowdkit.common.io import atomic_path, read_image
from crowdkit.common.registry import Registry

log = logging.getLogger(__name__)

#: Name → backbone; ``BACKBONES.create(name)``.
BACKBONES: Registry["Backbone"] = Registry("backbone")

#: FaceNet's fixed image standardisation: (x − 127.5) / 128.
_MEAN, _SCALE = 127.5, 128.0


# --------------------------------------------------------------------------- backbones

class Backbone(ABC):
    """A network family: what it eats (``input``: ``"dlib"`` descriptors or ``"image"`` crops) and how to build it."""

    name: str
    input: str
    image_size: int = 0

    @abstractmethod
    def build(self, embedding_dim: int) -> Any:
        """A ``torch.nn.Module`` mapping a batch of inputs to (B, embedding_dim) un-normalised embeddings."""


@BACKBONES.register("projection")
class ProjectionBackbone(Backbone):
    """A linear map on frozen 128-d dlib descriptors, initialised to the identity (training starts at dlib)."""

    name, input = "projection", "dlib"

    def build(self, embedding_dim: int) -> Any:
        import torch

        layer = torch.nn.Linear(128, embedding_dim)
        with torch.no_grad():
            layer.weight.copy_(torch.eye(embedding_dim, 128))
            layer.bias.zero_()
        return layer


@BACKBONES.register("small_cnn")
class SmallCNNBackbone(Backbone):
    """Four conv–BN–ReLU–pool blocks (32→256 channels) and a linear layer, on 64 px crops."""

    name, input, image_size = "small_cnn", "image", 64

    def build(self, embedding_dim: int) -> Any:
        from torch import nn

        def block(c_in: int, c_out: int) -> list:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                    nn.MaxPool2d(2)]

        return nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), *block(128, 256),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, embedding_dim))


@BACKBONES.register("inception_resnet_v1")
class InceptionResnetV1Backbone(Backbone):
    """facenet-pytorch's Inception-ResNet-v1 with random weights (``pretrained=None``), 160 px; meant for a GPU."""

    name, input, image_size = "inception_resnet_v1", "image", 160

    def build(self, embedding_dim: int) -> Any:
        import torch
        from facenet_pytorch import InceptionResnetV1

        net = InceptionResnetV1(pretrained=None, classify=False)
        if embedding_dim != 512:
            net.last_linear = torch.nn.Linear(1792, embedding_dim, bias=False)
            net.last_bn = torch.nn.BatchNorm1d(embedding_dim, eps=0.001, momentum=0.1, affine=True)
        return net


def _embedding_net(backbone: Backbone, embedding_dim: int) -> Any:
    import torch

    class EmbeddingNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = backbone.build(embedding_dim)

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            return torch.nn.functional.normalize(self.body(x), p=2, dim=1)

    return EmbeddingNet()


# --------------------------------------------------------------------------- config and results

@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (saved in every checkpoint).

    ``epochs``: the study used 30, 50 and 75. ``patience``: stop after this
    many epochs without a better validation accuracy (None: never).
    ``val_fraction``: share of identities held out for validation.
    ``device``: "auto" (cuda when available), "cpu" or "cuda".
    ``checkpoint_dir``: None → ``$CROWDKIT_HOME/runs/<backbone>-<sampler>-s<seed>``.
    ``keep_epochs``: also keep ``epochNNN.pt`` after these epochs (e.g. (30, 50, 75)
    to evaluate the study's three budgets from one 75-epoch run).
    """

    backbone: str = "projection"
    sampler: str = "random"
    epochs: int = 30
    batches_per_epoch: int = 10
    people_per_batch: int = 30
    images_per_person: int = 10
    embedding_dim: int = 128
    lr: float = 1e-3
    margin: float = 0.2
    seed: int = 0
    device: str = "auto"
    patience: int | None = None
    val_fraction: float = 0.2
    checkpoint_dir: str | None = None
    keep_epochs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            BACKBONES.get(self.backbone)  # raises, listing the known names
        if self.sampler not in ("random", "stratified"):
            raise ConfigError(f"sampler must be 'random' or 'stratified', got {self.sampler!r}")
        for name in ("epochs", "batches_per_epoch", "people_per_batch", "images_per_person", "embedding_dim"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")

    def run_dir(self) -> Path:
        if self.checkpoint_dir is not None:
            return Path(self.checkpoint_dir)
        return ck_config.home() / "runs" / f"{self.backbone}-{self.sampler}-s{self.seed}"

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    #: Fields that may differ between an interrupted run and its resumption.
    RESUMABLE = ("epochs", "patience", "device", "checkpoint_dir", "keep_epochs")

    def same_run(self, other: "TrainConfig") -> list[str]:
        """Names of fields (other than :attr:`RESUMABLE`) on which two configs differ."""
        return [f.name for f in fields(self) if f.name not in self.RESUMABLE
                and getattr(self, f.name) != getattr(other, f.name)]


@dataclass(frozen=True)
class EpochMetrics:
    """One row of the training curve."""

    epoch: int
    loss: float
    active_fraction: float
    mined_triplets: float
    val_accuracy: float
    val_auc: float
    seconds: float


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
        import pandas as pd

        return pd.DataFrame([asdict(h) for h in self.history])


# --------------------------------------------------------------------------- inputs

@dataclass(frozen=True, eq=False)
class TrainingData:
    """Per-identity model inputs ready for batching.

    ``inputs[identity]``: float32 (n, 128) dlib descriptors or uint8 (n, S, S, 3)
    crops. ``paths[identity]``: the image each row came from. ``skipped``:
    images left out because no face was detected.
    """

    input: str
    image_size: int
    inputs: Mapping[str, np.ndarray] = field(repr=False)
    paths: Mapping[str, tuple[Path, ...]] = field(repr=False)
    skipped: tuple[Path, ...] = ()

    @property
    def n_images(self) -> int:
        return int(sum(len(v) for v in self.inputs.values()))

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.inputs.items()}

    def fingerprint(self) -> str:
        """sha256 of the identities and their inputs' bytes: which data a checkpoint was trained on."""
        import hashlib

        hasher = hashlib.sha256(f"{self.input}:{self.image_size}".encode())
        for key in sorted(self.inputs):
            hasher.update(key.encode())
            hasher.update(np.ascontiguousarray(self.inputs[key]).tobytes())
        return hasher.hexdigest()

    def subset(self, identities: Sequence[str]) -> "TrainingData":
        return TrainingData(self.input, self.image_size, {k: self.inputs[k] for k in identities},
                            {k: self.paths[k] for k in identities}, self.skipped)


def load_training_data(backbone: str, identities: Mapping[str, Sequence[str | os.PathLike]], *,
                       dataset: str = "celeba", progress: bool = True) -> TrainingData:
    """Prepare the inputs ``backbone`` needs for every image of ``identities`` (identity → paths).

    ``"dlib"`` input: descriptors from :func:`crowdkit.bias.descriptors.describe_photos`
    (cached by file content, shared with the lookup table and the evaluation);
    images where no detector found a face are skipped and counted. ``"image"`` input: MTCNN margin
    crops from :func:`align_dataset` (cached as JPEGs), resized to the
    backbone's size. Identities left with no usable image are dropped (logged);
    none at all raises :class:`EmptyGalleryError`.
    """
    spec = BACKBONES.create(backbone)
    identities = {str(k): [Path(p) for p in v] for k, v in identities.items()}
    empty = [k for k, v in identities.items() if not v]
    if empty:
        log.warning("%d identities have no images and are skipped: %s", len(empty), ", ".join(empty[:5]))
    identities = {k: v for k, v in identities.items() if v}
    if not identities:
        raise EmptyGalleryError("no identity has any image; expected identity → list of image paths")
    inputs, kept_paths, skipped = {}, {}, []
    if spec.input == "dlib":
        from crowdkit.bias.descriptors import describe_photos

        flat = [p for v in identities.values() for p in v]
        feats = describe_photos(flat, progress=progress)
        row = 0
        for k, v in identities.items():
            emb, ok = feats.embeddings[row:row + len(v)], feats.has_face[row:row + len(v)]
            row += len(v)
            skipped += [p for p, good in zip(v, ok) if not good]
            inputs[k], kept_paths[k] = emb[ok], tuple(p for p, good in zip(v, ok) if good)
    else:
        report = align_dataset(identities, dataset=dataset, progress=progress)
        skipped = list(report.skipped)
        for k, chips in report.aligned.items():
            arr = np.stack([_resize(read_image(p), spec.image_size) for p in chips]) if chips else None
            if arr is not None:
                inputs[k], kept_paths[k] = arr, tuple(chips)
    if skipped:
        log.warning("%d of %d images had no detectable face and were skipped",
                    len(skipped), sum(len(v) for v in identities.values()))
    inputs = {k: v for k, v in inputs.items() if len(v)}
    if not inputs:
        raise NoFaceError(f"no face was detected in any of the {len(skipped)} images; check the image folder")
    return TrainingData(spec.input, spec.image_size, inputs, {k: kept_paths[k] for k in inputs}, tuple(skipped))


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


# --------------------------------------------------------------------------- alignment

@dataclass(frozen=True)
class AlignmentReport:
    """Result of :func:`align_dataset`: identity → aligned JPEG paths, and the images with no face."""

    folder: Path
    aligned: Mapping[str, tuple[Path, ...]]
    skipped: tuple[Path, ...]
    n_cached: int
    n_new: int

    @property
    def n_aligned(self) -> int:
        return sum(len(v) for v in self.aligned.values())


def align_dataset(identities: Mapping[str, Sequence[str | os.PathLike]], *, dataset: str,
                  detector: str = "mtcnn", margin: int = 44, crop_size: int = 182, output_size: int = 160,
                  progress: bool = True) -> AlignmentReport:
    """davidsandberg/facenet's ``align_dataset_mtcnn``: largest face, margin 44 → 182 px → centre 160 px.

    Crops are cached as JPEGs under ``config.cache_dir("aligned", dataset, <detector>-m<margin>-<output_size>)/
    <identity>/<file>.jpg``; a list of images with no detectable face sits
    beside them (``no_face.json``) so a rerun skips them too. Images with no
    face are reported (log + ``skipped``) and left out.
    """
    from tqdm.auto import tqdm

    from crowdkit.engine.align import margin_crop
    from crowdkit.engine.detect import get_detector

    folder = ck_config.cache_dir("aligned", dataset, f"{detector}-m{margin}-{crop_size}-{output_size}")
    no_face_file = folder / "no_face.json"
    no_face = set(json.loads(no_face_file.read_text())) if no_face_file.is_file() else set()
    det = None
    aligned: dict[str, list[Path]] = {}
    skipped: list[Path] = []
    n_cached = n_new = 0
    todo = [(str(k), Path(p)) for k, v in identities.items() for p in v]
    for identity, path in tqdm(todo, desc=f"aligning {dataset}", unit="img", disable=not progress):
        target = folder / identity / (path.stem + ".jpg")
        key = f"{identity}/{path.name}"
        if target.is_file():
            aligned.setdefault(identity, []).append(target)
            n_cached += 1
            continue
        if key in no_face:
            skipped.append(path)
            continue
        det = det or get_detector(detector)
        image = read_image(path)
        faces = det.detect(image)
        if not faces:
            skipped.append(path)
            no_face.add(key)
            continue
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        chip = margin_crop(image, largest.box, margin=margin, crop_size=crop_size, output_size=output_size)
        target.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        with atomic_path(target) as tmp:
            Image.fromarray(chip).save(tmp, format="JPEG", quality=95)
        aligned.setdefault(identity, []).append(target)
        n_new += 1
    if no_face:
        with atomic_path(no_face_file) as tmp:
            tmp.write_text(json.dumps(sorted(no_face)))
    if skipped:
        log.warning("alignment: no face in %d of %d images (skipped; listed in %s)", len(skipped), len(todo), no_face_file)
    return AlignmentReport(folder, {k: tuple(v) for k, v in aligned.items()}, tuple(skipped), n_cached, n_new)


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


# --------------------------------------------------------------------------- checkpoints

def _save(path: Path, payload: dict) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _config_from_dict(d: Mapping[str, Any]) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in d.items() if k in known}
    if "keep_epochs" in values:
        values["keep_epochs"] = tuple(values["keep_epochs"])
    return TrainConfig(**values)


@dataclass(frozen=True)
class TrainedModel:
    """A checkpoint loaded for inference; ``embed_paths`` embeds image files (cached by the caller)."""

    config: TrainConfig
    net: Any = field(repr=False)
    backbone: Backbone = field(repr=False)
    metric: str = "euclidean_l2"

    def embed_inputs(self, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        import torch

        out = []
        self.net.eval()
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                out.append(self.net(_to_tensor(x[i:i + batch_size], self.backbone.input)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config.embedding_dim), np.float32)

    def embed_paths(self, paths: Sequence[Path], *, root: Path, cache_name: str,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(N, D) embeddings and statuses (see :mod:`crowdkit.bias.evaluate`) for image files.

        Projection head: dlib descriptors from the evaluation pipeline (centre
        fallback when no face). Image backbones: MTCNN margin crops of each
        image, the central box when no face is found.
        """
        from crowdkit.bias import evaluate as ev

        if self.backbone.input == "dlib":
            feats, status, _ = ev.embed_paths("dlib", list(paths), root=root, cache_name=cache_name, progress=progress)
            return self.embed_inputs(feats).astype(np.float32), status
        chips, status = _lfw_chips(paths, self.backbone.image_size, progress=progress)
        return self.embed_inputs(chips).astype(np.float32), status


def _lfw_chips(paths: Sequence[Path], size: int, *, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from tqdm.auto import tqdm

    from crowdkit.bias import evaluate as ev
    from crowdkit.engine.align import margin_crop
    from crowdkit.engine.detect import get_detector

    det = get_detector("mtcnn")
    chips, status = [], []
    for path in tqdm(paths, desc="MTCNN crops", unit="img", disable=not progress):
        image = read_image(path)
        faces = det.detect(image)
        cy, cx = image.shape[0] / 2, image.shape[1] / 2
        if faces:
            face = min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)
            box, code = face.box, ev.FACE_FOUND
        else:
            h, w = image.shape[:2]
            x1, y1, x2, y2 = ev.CENTRE_BOX
            box, code = (x1 * w, y1 * h, x2 * w, y2 * h), ev.CENTRE_FALLBACK
        chips.append(_resize(margin_crop(image, box), size))
        status.append(code)
    return np.stack(chips), np.asarray(status, dtype=np.int8)


def load_model(path: str | os.PathLike, *, device: str = "cpu") -> TrainedModel:
    """Load a checkpoint written by :func:`train` (``best.pt`` or ``last.pt``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"checkpoint {path} does not exist; train a model first (crowdkit.bias.train.train)")
    payload = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise ConfigError(f"{path} is not a crowdkit.bias.train checkpoint (no 'model'/'config' entries)")
    cfg = _config_from_dict(payload["config"])
    spec = BACKBONES.create(cfg.backbone)
    net = _embedding_net(spec, cfg.embedding_dim)
    net.load_state_dict(payload["model"])
    net.to(device).eval()
    return TrainedModel(cfg, net, spec)


def _to_tensor(x: np.ndarray, kind: str, device: str = "cpu") -> Any:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    if kind == "image":  # uint8 NHWC → float NCHW, FaceNet standardisation
        t = (t.permute(0, 3, 1, 2).float() - _MEAN) / _SCALE
    return t.float().to(device)


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

    from crowdkit.bias.evaluate import lfw_protocol

    x = np.concatenate([val.inputs[k] for k in val.inputs])
    net.eval()
    with torch.no_grad():
        emb = torch.cat([net(_to_tensor(x[i:i + 256], val.input, device)) for i in range(0, len(x), 256)]).cpu().numpy()
    a, b, issame = _validation_pairs(val.sizes(), seed)
    if issame.sum() < 10:
        return float("nan"), float("nan")
    d = np.linalg.norm(emb[a] - emb[b], axis=1)
    folds = np.random.default_rng(seed).permutation(len(d)) % 10
    result = lfw_protocol(d, issame, folds)
    return result.accuracy, result.auc


# --------------------------------------------------------------------------- training

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
                              "(crowdkit.bias.ethnicity.lookup_labels(db)) as `labels`")
        return StratifiedBatchSampler(sizes, labels, people_per_batch=cfg.people_per_batch,
                                      images_per_person=cfg.images_per_person, seed=cfg.seed)
    return RandomBatchSampler(sizes, people_per_batch=cfg.people_per_batch, images_per_person=cfg.images_per_person,
                              seed=cfg.seed, labels=labels)


def _write_metrics(path: Path, history: Sequence[EpochMetrics]) -> None:
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame([asdict(h) for h in history]).to_csv(tmp, index=False)


def train(config: TrainConfig, data: TrainingData, labels: Mapping[str, str] | str | os.PathLike | None = None, *,
          classifier: Any = None, resume: bool = True, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Train ``config.backbone`` with triplet loss on ``data``; returns where the checkpoints are and the curve.

    Parameters
    ----------
    config : TrainConfig
    data : TrainingData from :func:`load_training_data`.
    labels : identity → label (predicted ethnicity), or the path of a lookup
        table (SQLite, :func:`crowdkit.bias.ethnicity.lookup_labels`); required by
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
    from tqdm.auto import tqdm

    if isinstance(labels, (str, os.PathLike)):
        from crowdkit.bias.ethnicity import lookup_labels

        labels = lookup_labels(labels, classifier=classifier)
    t0 = time.perf_counter()
    run_dir = config.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path, metrics_path = run_dir / "last.pt", run_dir / "best.pt", run_dir / "metrics.csv"
    device = config.resolved_device()

    train_ids, val_ids = split_identities(list(data.inputs), config.val_fraction, config.seed)
    train_data = data.subset(train_ids)
    val_data = data.subset(val_ids) if val_ids else None
    keys = list(train_data.inputs)
    key_index = {k: i for i, k in enumerate(keys)}

    torch.manual_seed(config.seed)
    spec = BACKBONES.create(config.backbone)
    net = _embedding_net(spec, config.embedding_dim).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    step = _TripletStep(config.margin)
    history: list[EpochMetrics] = []
    start_epoch, best_acc, best_epoch, waited = 0, -np.inf, 0, 0

    data_fingerprint = data.fingerprint()
    payload = torch.load(last_path, map_location=device, weights_only=False) if resume and last_path.is_file() else None
    if payload is not None and payload.get("data_fingerprint") != data_fingerprint:
        log.warning("%s was trained on other inputs (data fingerprint differs); starting over", last_path)
        payload = None
    if payload is not None:
        previous = _config_from_dict(payload["config"])
        differs = config.same_run(previous)
        if differs:
            raise ConfigError(f"{last_path} belongs to a run with different {', '.join(differs)}; "
                              "use another checkpoint_dir or pass resume=False to start over")
        net.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        torch.set_rng_state(payload["torch_rng"])
        start_epoch = int(payload["epoch"])
        best_acc, best_epoch, waited = payload["best_val_accuracy"], payload["best_epoch"], payload["waited"]
        history = [EpochMetrics(**h) for h in payload["history"]]
        log.info("resuming %s from epoch %d", run_dir, start_epoch + 1)
    resumed_from = start_epoch

    sampler = _make_sampler(config, train_data.sizes(), labels)
    stream = iter(sampler)
    for _ in range(start_epoch * config.batches_per_epoch):  # replay the stream to where the run stopped
        next(stream)

    stopped_early = False
    epochs_this_call = 0
    bar = tqdm(range(start_epoch, config.epochs), desc=f"{config.backbone}/{config.sampler} s{config.seed}",
               unit="epoch", disable=not progress, initial=start_epoch, total=config.epochs)
    for epoch in bar:
        if config.patience is not None and waited >= config.patience:
            stopped_early = True
            break
        e0 = time.perf_counter()
        net.train()
        losses, active, mined = [], [], []
        for _ in range(config.batches_per_epoch):
            batch = next(stream)
            x = np.stack([train_data.inputs[k][j] for k, j in zip(batch.identities, batch.image_indices)])
            y = torch.tensor([key_index[k] for k in batch.identities], device=device)
            emb = net(_to_tensor(x, train_data.input, device))
            loss, n_mined = step(emb, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            mined.append(n_mined)
            active.append(n_mined / max(count_valid_triplets(y.cpu().numpy()), 1))
        val_acc, val_auc = _validate(net, val_data, device, config.seed)
        row = EpochMetrics(epoch + 1, float(np.mean(losses)), float(np.mean(active)), float(np.mean(mined)),
                           val_acc, val_auc, time.perf_counter() - e0)
        history.append(row)
        bar.set_postfix(loss=f"{row.loss:.4f}", active=f"{row.active_fraction:.3f}", val=f"{val_acc:.3f}")
        improved = not np.isnan(val_acc) and val_acc > best_acc
        if improved or np.isnan(val_acc):
            best_acc, best_epoch, waited = (val_acc if improved else best_acc), epoch + 1, 0
        else:
            waited += 1
        payload = {
            "model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
            "config": asdict(config), "torch_rng": torch.get_rng_state(), "history": [asdict(h) for h in history],
            "best_val_accuracy": best_acc, "best_epoch": best_epoch, "waited": waited,
            "train_identities": keys, "val_identities": val_ids, "data_fingerprint": data_fingerprint,
        }
        if best_epoch == epoch + 1:
            _save(best_path, payload)
        if epoch + 1 in config.keep_epochs:
            _save(run_dir / f"epoch{epoch + 1:03d}.pt", payload)
        _save(last_path, payload)
        _write_metrics(metrics_path, history)
        epochs_this_call += 1
        if stop_after is not None and epochs_this_call >= stop_after:
            break
    bar.close()
    return TrainResult(
        config=config, history=tuple(history), best_checkpoint=best_path, last_checkpoint=last_path,
        metrics_path=metrics_path, best_epoch=int(best_epoch), best_val_accuracy=float(best_acc),
        stopped_early=stopped_early, resumed_from_epoch=resumed_from, n_train_identities=len(keys),
        n_val_identities=len(val_ids), n_images=data.n_images, n_skipped=len(data.skipped),
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- the two arms

#: Book profiles. "quick"/"default" are CPU profiles (projection head on cached dlib descriptors of
#: CelebA; seconds per run; lr 1e-4 because the head starts at dlib's embedding and 1e-3 drifts
#: further from it on 120 training identities: LFW 0.980 vs 0.985 on 600 pairs, seed 0). "full" is the study's set-up for a GPU: facenet-pytorch's
#: Inception-ResNet-v1 from scratch on 160 px MTCNN crops, FaceNet's batch shape (45 people × 40 images),
#: 1000 batches per epoch, one 75-epoch run per arm and seed keeping the 30- and 50-epoch checkpoints.
TRAIN_PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"backbone": "projection", "epochs": 5, "batches_per_epoch": 5, "people_per_batch": 15,
              "images_per_person": 10, "lr": 1e-4, "seeds": (0, 1)},
    "default": {"backbone": "projection", "epochs": 30, "batches_per_epoch": 10, "people_per_batch": 15,
                "images_per_person": 10, "lr": 1e-4, "seeds": (0, 1, 2, 3, 4)},
    "full": {"backbone": "inception_resnet_v1", "epochs": 75, "batches_per_epoch": 1000, "people_per_batch": 45,
             "images_per_person": 40, "lr": 0.05, "seeds": (0, 1, 2), "keep_epochs": (30, 50, 75)},
}


def profile_config(profile: str = "default", **overrides: Any) -> tuple[TrainConfig, tuple[int, ...]]:
    """The :class:`TrainConfig` and seeds of a book profile, with ``overrides`` (None values ignored)."""
    try:
        settings = dict(TRAIN_PROFILES[profile])
    except KeyError:
        raise ConfigError(f"unknown profile {profile!r}; known profiles: {', '.join(TRAIN_PROFILES)}") from None
    settings.update({k: v for k, v in overrides.items() if v is not None})
    seeds = tuple(int(s) for s in settings.pop("seeds"))
    if "keep_epochs" in settings:
        settings["keep_epochs"] = tuple(settings["keep_epochs"])
    return TrainConfig(**settings), seeds


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


def find_runs(root: str | os.PathLike) -> list[dict[str, Any]]:
    """Finished runs under ``root`` (as written by :func:`train_arms`): sampler, seed, epochs, checkpoint paths."""
    import torch

    runs = []
    for last in sorted(Path(root).glob("*/last.pt")):
        payload = torch.load(last, map_location="cpu", weights_only=False)
        cfg = payload["config"]
        runs.append({"sampler": cfg["sampler"], "seed": cfg["seed"], "epoch": payload["epoch"],
                     "best_epoch": payload["best_epoch"], "best": last.parent / "best.pt", "last": last,
                     "kept": sorted(last.parent.glob("epoch*.pt"))})
    return runs
