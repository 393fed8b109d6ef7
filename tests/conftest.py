"""Shared test fixtures: real photos from the data folder (../shared/data or CROWDKIT_DATA)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# Importing triton (torchvision loads it through torch._dynamo) after TensorFlow segfaults
# (TF 2.19 + torch 2.14): import it first so one pytest process may use both, in any order.
# Library code does the same in crowdkit.common.weights.prepare_tensorflow().
try:
    import triton  # noqa: F401
except ImportError:
    pass


@pytest.fixture(scope="session")
def data_root() -> Path:
    from crowdkit.common import config

    return config.data_root()


@pytest.fixture(scope="session")
def fixtures_dir(data_root: Path) -> Path:
    return data_root / "fixtures"


@pytest.fixture(scope="session")
def examples_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "face_recognition" / "examples"


@pytest.fixture(scope="session")
def lfw_dir(data_root: Path) -> Path:
    return data_root / "lfw" / "images_deepfunneled"


@pytest.fixture()
def isolated_home(tmp_path, monkeypatch) -> Path:
    """A fresh CROWDKIT_HOME so caches written by a test start empty."""
    home = tmp_path / "crowdkit_home"
    monkeypatch.setenv("CROWDKIT_HOME", str(home))
    return home


@pytest.fixture()
def offline_home(isolated_home, tmp_path, monkeypatch) -> Path:
    """Empty crowdkit, deepface and torch homes, downloads off: what a fresh offline machine sees."""
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "deepface_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("CROWDKIT_ALLOW_DOWNLOAD", "0")
    return tmp_path
