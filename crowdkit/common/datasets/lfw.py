"""LFW: identity folders and the pairs files of its verification protocol."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crowdkit.common import config
from crowdkit.common.exceptions import DataNotFoundError, DatasetFormatError, EmptyGalleryError
from crowdkit.common.io import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- LFW


def lfw_people(root: str | Path | None = None, *, min_images: int = 1) -> dict[str, list[Path]]:
    """LFW identity → sorted image paths (``root/<Name>/<Name>_NNNN.jpg``).

    ``root`` defaults to the deep-funneled variant, ``lfw/images_deepfunneled``.
    """
    root = Path(root) if root is not None else config.data_path("lfw", "images_deepfunneled")
    if not root.is_dir():
        raise DataNotFoundError(f"LFW folder {root} does not exist; pass the folder holding one sub-folder per person")
    people = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(images) >= min_images:
            people[folder.name] = images
    if not people:
        raise EmptyGalleryError(f"{root} holds no identity folders with at least {min_images} image(s)")
    return people


def lfw_image_path(root: str | Path, name: str, number: int) -> Path:
    """``root/<name>/<name>_<number:04d>.jpg``."""
    return Path(root) / name / f"{name}_{int(number):04d}.jpg"


@dataclass(frozen=True, eq=False)
class PairSet:
    """Face-verification pairs: image paths, whether each pair shows one person, and its fold.

    ``same`` is bool (P,), ``fold`` int64 (P,) in ``0..n_folds-1``.
    """

    paths1: tuple[Path, ...]
    paths2: tuple[Path, ...]
    same: np.ndarray
    fold: np.ndarray

    def __len__(self) -> int:
        return len(self.paths1)

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1 if len(self.fold) else 0

    @property
    def unique_paths(self) -> list[Path]:
        """Every image the pairs use, once, sorted (embed these, then look pairs up)."""
        return sorted(set(self.paths1) | set(self.paths2))


def read_lfw_pairs(path: str | Path | None = None, *, images_root: str | Path | None = None, check_files: bool = True) -> PairSet:
    """Read an LFW pairs file: View 2 ``pairs.txt`` (header ``10 300``) or View 1 (header ``1100``).

    The header gives the number of folds and the number of same-person pairs
    per fold (a one-number header means one fold). Each fold holds that many
    same-person lines ``name n1 n2`` followed by as many different-person lines
    ``name1 n1 name2 n2``.

    Parameters
    ----------
    path
        The pairs file; default ``lfw/pairs.txt`` in the data folder.
    images_root
        Folder of per-person sub-folders; default ``images_deepfunneled`` beside the pairs file.
    check_files
        Fail with :class:`DataNotFoundError` naming the pair and file when an image is missing.
    """
    path = Path(path) if path is not None else config.data_path("lfw", "pairs.txt")
    if not path.is_file():
        raise DataNotFoundError(f"pairs file {path} does not exist")
    images_root = Path(images_root) if images_root is not None else path.parent / "images_deepfunneled"
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise DatasetFormatError(f"{path} is empty; expected a header like '10 300' then pair lines")
    header = lines[0]
    try:
        n_folds, per_fold = (1, int(header[0])) if len(header) == 1 else (int(header[0]), int(header[1]))
    except ValueError:
        raise DatasetFormatError(f"{path}: header {' '.join(header)!r} is not '<folds> <pairs per class>' or '<pairs>'") from None
    body = lines[1:]
    if len(body) != n_folds * 2 * per_fold:
        raise DatasetFormatError(
            f"{path}: header says {n_folds} fold(s) × 2 × {per_fold} pairs = {n_folds * 2 * per_fold} lines, found {len(body)}"
        )
    paths1, paths2, same, fold = [], [], [], []
    for i, fields in enumerate(body):
        line_no = i + 2
        expect_same = (i % (2 * per_fold)) < per_fold
        if len(fields) == 3 and expect_same:
            a = lfw_image_path(images_root, fields[0], int(fields[1]))
            b = lfw_image_path(images_root, fields[0], int(fields[2]))
        elif len(fields) == 4 and not expect_same:
            a = lfw_image_path(images_root, fields[0], int(fields[1]))
            b = lfw_image_path(images_root, fields[2], int(fields[3]))
        else:
            kind = "same-person 'name n1 n2'" if expect_same else "different-person 'name1 n1 name2 n2'"
            raise DatasetFormatError(f"{path}:{line_no}: expected a {kind} line, found {' '.join(fields)!r}")
        if check_files:
            for image in (a, b):
                if not image.is_file():
                    raise DataNotFoundError(
                        f"{path}:{line_no} names {image}, which does not exist; point images_root at the LFW "
                        "variant the pairs belong to (e.g. lfw/images_deepfunneled)"
                    )
        paths1.append(a)
        paths2.append(b)
        same.append(expect_same)
        fold.append(i // (2 * per_fold))
    return PairSet(tuple(paths1), tuple(paths2), np.array(same, dtype=bool), np.array(fold, dtype=np.int64))

