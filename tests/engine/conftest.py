"""Fixtures the face-search tests share: shrunk real photos, the default backends, counting wrappers."""
from __future__ import annotations

from pathlib import Path

import pytest

from crowdkit.engine.backends import resolve_detector, resolve_embedder


@pytest.fixture(scope="module")
def detector():
    return resolve_detector("mtcnn")


@pytest.fixture(scope="module")
def embedder():
    return resolve_embedder("dlib")


def _shrunk_copy(src: Path, dst: Path, longest: int = 480) -> Path:
    """The same real photo at most ``longest`` px wide or high (MTCNN on 1,200-px photos takes seconds each)."""
    import cv2

    image = cv2.imread(str(src), cv2.IMREAD_COLOR)
    scale = min(1.0, longest / max(image.shape[:2]))
    small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    dst.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(dst), small, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return dst


@pytest.fixture(scope="module")
def photos(examples_dir: Path, tmp_path_factory) -> Path:
    """knn_examples (5 people; train: 9 photos, test: a 10th Obama photo) and two_people.jpg, shrunk."""
    root = tmp_path_factory.mktemp("photos")
    knn = examples_dir / "knn_examples"
    for src in sorted((knn / "train").rglob("*.jp*g")):
        _shrunk_copy(src, root / "train" / src.relative_to(knn / "train"))
    _shrunk_copy(knn / "test" / "obama1.jpg", root / "obama1.jpg")
    _shrunk_copy(examples_dir / "two_people.jpg", root / "two_people.jpg")
    return root


@pytest.fixture(scope="module")
def train_dir(photos: Path) -> Path:
    return photos / "train"


@pytest.fixture(scope="module")
def obama_query(photos: Path) -> Path:
    # A photo of Obama that is not in the train folders.
    return photos / "obama1.jpg"


@pytest.fixture()
def cache_files():
    """``cache_files(home)``: every file of the face cache under ``home`` → its mtime_ns."""
    def files(home: Path) -> dict[str, int]:
        root = home / "cache" / "faces"
        return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    return files
