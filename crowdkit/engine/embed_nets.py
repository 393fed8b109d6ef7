"""Embedders built on deep-learning packages: deepface's ArcFace (TensorFlow) and facenet-pytorch's FaceNet."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from crowdkit.common import weights
from crowdkit.common.exceptions import ConfigError
from crowdkit.engine.embedding import Embedder, file_digest, package_version

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- arcface

class ArcFaceEmbedder(Embedder):
    """deepface's ArcFace (TensorFlow), 512-d.

    Parameters
    ----------
    normalization : {"base", "ArcFace"}, keyword-only
        ``"base"`` (deepface's default, which its thresholds were tuned with):
        BGR in [0, 1]. ``"ArcFace"``: BGR, ``(x - 127.5) / 128``.
    batch_size : int, keyword-only
        Chips per forward pass.
    """

    name = "arcface"
    template = "arcface"
    dim = 512
    default_metric = "cosine"
    thresholds = {"cosine": 0.68, "euclidean": 4.15, "euclidean_l2": 1.13}

    def __init__(self, *, normalization: str = "base", batch_size: int = 64) -> None:
        if normalization not in {"base", "ArcFace"}:
            raise ConfigError(f"normalization must be 'base' or 'ArcFace', got {normalization!r}")
        weight_file = weights.require("arcface")  # offline and missing: fails here, before any network
        if weight_file.parent.resolve() != weights.deepface_weights_dir().resolve():
            raise ConfigError(f"deepface only loads ArcFace weights from {weights.deepface_weights_dir()}; "
                              f"found them at {weight_file}")
        weights.prepare_tensorflow()
        from deepface.models.facial_recognition.tf.ArcFace import ArcFaceClient

        self.normalization = normalization
        self.batch_size = int(batch_size)
        self._client = ArcFaceClient()
        self.version = (f"deepface-{package_version('deepface')}/{weight_file.name}@{file_digest(weight_file)}"
                        f"/{normalization}")

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(chips), self.batch_size):
            batch = chips[start:start + self.batch_size, :, :, ::-1].astype(np.float32)  # RGB → BGR
            batch = batch / 255.0 if self.normalization == "base" else (batch - 127.5) / 128.0
            out.append(np.asarray(self._client.model(batch, training=False)))
        return np.concatenate(out)


# --------------------------------------------------------------------------- facenet

def load_facenet_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """An InceptionResnetV1 state dict from facenet-pytorch's file or a crowdkit checkpoint.

    Accepts a bare state dict, or a dict holding one under ``"state_dict"`` or
    ``"model"`` (a training checkpoint); strips a ``"module."`` prefix
    (DataParallel) and drops the classifier (``logits.*``), which embeddings
    do not use. Loaded with ``weights_only=True``: no pickled code runs.
    """
    import torch

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise weights.WeightsMissingError(f"facenet checkpoint {path} does not exist") from None
    except Exception as error:  # torch raises many types for a damaged file
        raise ConfigError(f"{path} is not a readable torch checkpoint ({type(error).__name__}: {error})") from error
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {key.removeprefix("module."): value for key, value in state.items()
            if not key.removeprefix("module.").startswith("logits.")}


class FaceNetEmbedder(Embedder):
    """facenet-pytorch's InceptionResnetV1, 512-d unit vectors.

    Parameters
    ----------
    checkpoint : path, keyword-only
        A state dict (facenet-pytorch's ``20180402-114759-vggface2.pt`` or one
        saved by crowdkit's trainer). Default: the VGGFace2 weights from
        :func:`crowdkit.common.weights.require`.
    batch_size : int, keyword-only
    device : str, keyword-only
        ``"cpu"`` or ``"cuda"``.
    """

    name = "facenet"
    template = "facenet"
    dim = 512
    default_metric = "cosine"
    thresholds = {"cosine": 0.54, "euclidean": 1.04, "euclidean_l2": 1.04}

    def __init__(self, *, checkpoint: str | os.PathLike | None = None, batch_size: int = 64,
                 device: str = "cpu") -> None:
        path = Path(checkpoint).expanduser() if checkpoint is not None else weights.require("facenet-vggface2")
        if not path.is_file():
            raise weights.WeightsMissingError(f"facenet checkpoint {path} does not exist")
        import torch
        from facenet_pytorch import InceptionResnetV1

        model = InceptionResnetV1(pretrained=None, classify=False)
        result = model.load_state_dict(load_facenet_state_dict(path), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ConfigError(
                f"{path} is not an InceptionResnetV1 state dict: missing {list(result.missing_keys)[:5]}, "
                f"unexpected {list(result.unexpected_keys)[:5]}"
            )
        self._torch = torch
        self.device = torch.device(device)
        self._model = model.eval().to(self.device)
        self.batch_size = int(batch_size)
        self.checkpoint = path
        self.version = f"facenet-pytorch-{package_version('facenet-pytorch')}/{path.name}@{file_digest(path)}"

    def _embed(self, chips: np.ndarray) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.no_grad():
            for start in range(0, len(chips), self.batch_size):
                batch = torch.from_numpy(chips[start:start + self.batch_size]).to(self.device)
                batch = (batch.permute(0, 3, 1, 2).float() - 127.5) / 128.0  # fixed_image_standardization
                out.append(self._model(batch).cpu().numpy())
        return np.concatenate(out)
