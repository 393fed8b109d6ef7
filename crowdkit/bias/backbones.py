"""The networks triplet training can train, chosen by name, and the embedding net around them.

Each backbone (:data:`BACKBONES`) says what it eats (``input``: ``"dlib"``
descriptors or ``"image"`` crops of ``image_size`` pixels) and builds a
``torch.nn.Module``; :func:`embedding_net` wraps it so its output is
L2-normalised, as FaceNet's embedding is.

* ``"projection"`` — a linear head on frozen dlib ResNet descriptors (fast CPU
  default), initialised to the identity, so training starts at dlib;
* ``"small_cnn"`` — a small CNN on 64 px MTCNN margin crops (CPU, minutes);
* ``"inception_resnet_v1"`` — facenet-pytorch's architecture, untrained, on
  160 px crops (the study's network; for a GPU).

Example
-------
>>> net = embedding_net(BACKBONES.create("projection"), 128)   # doctest: +SKIP
>>> net(to_tensor(descriptors, "dlib")).norm(dim=1)              # doctest: +SKIP
tensor([1., 1., ...])
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from crowdkit.common.registry import Registry

#: Name → backbone; ``BACKBONES.create(name)``.
BACKBONES: Registry["Backbone"] = Registry("backbone")

#: FaceNet's fixed image standardisation: (x − 127.5) / 128.
_MEAN, _SCALE = 127.5, 128.0


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


def embedding_net(backbone: Backbone, embedding_dim: int) -> Any:
    """``backbone``'s network with an L2-normalised output: a ``torch.nn.Module`` (B, …) → (B, embedding_dim).

    The body sits in the module's ``body`` attribute (checkpoints store its
    ``state_dict`` under ``body.*``).
    """
    import torch

    class EmbeddingNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = backbone.build(embedding_dim)

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            return torch.nn.functional.normalize(self.body(x), p=2, dim=1)

    return EmbeddingNet()


def to_tensor(x: np.ndarray, kind: str, device: str = "cpu") -> Any:
    """A batch of inputs as a float tensor: descriptors as they are; ``"image"`` uint8 NHWC → NCHW, FaceNet-standardised."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    if kind == "image":  # uint8 NHWC → float NCHW, FaceNet standardisation
        t = (t.permute(0, 3, 1, 2).float() - _MEAN) / _SCALE
    return t.float().to(device)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized (bilinear) to ``size`` × ``size``; returned unchanged when it already is."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
