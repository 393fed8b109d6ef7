"""What a run records about itself: parameters, package versions, data checksums, timing."""
from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable

from crowdkit.common.io import sha256_file

#: Packages whose versions change results; recorded with every run.
KEY_PACKAGES = (
    "crowdkit", "numpy", "pandas", "scikit-learn", "scipy", "torch", "torchvision",
    "facenet-pytorch", "tensorflow-cpu", "tf-keras", "deepface", "retina-face", "mtcnn",
    "dlib-bin", "face_recognition_models", "opencv-python-headless", "seaborn",
    "matplotlib", "minisom", "papermill", "jupyter-book",
)


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def file_checksums(paths: Iterable[str | Path]) -> dict[str, str]:
    """sha256 of each existing file (folders are skipped; use a dataset's SHA256SUMS for those)."""
    return {str(p): sha256_file(p) for p in map(Path, paths) if Path(p).is_file()}
