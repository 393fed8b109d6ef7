"""Backbones: each builds, and the embedding net around it L2-normalises its output."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from crowdkit.bias.backbones import BACKBONES, embedding_net  # noqa: E402


def test_backbones_build_and_normalise():
    for name, shape in [("projection", (2, 128)), ("small_cnn", (2, 3, 64, 64))]:
        net = embedding_net(BACKBONES.create(name), 32 if name == "small_cnn" else 128)
        out = net(torch.zeros(shape) + torch.randn(shape))
        assert torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    assert sorted(BACKBONES.names()) == ["inception_resnet_v1", "projection", "small_cnn"]


def test_inception_resnet_v1_builds_untrained():
    net = embedding_net(BACKBONES.create("inception_resnet_v1"), 128).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 160, 160))
    assert out.shape == (2, 128)
