"""Identity folders (the CASIA-WebFace layout), CelebA as a CASIA stand-in, and AT&T faces."""
from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


from crowdkit.common import config
from crowdkit.common.exceptions import DataNotFoundError, DatasetFormatError, EmptyGalleryError
from crowdkit.common.io import IMAGE_SUFFIXES, sha256_file

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- identity folders


@dataclass(frozen=True)
class IdentityReport:
    """What an identity loader found: empty identities, missing files, conflicting duplicates."""

    root: Path
    identity_count: int
    image_count: int
    empty_identities: tuple[str, ...] = ()
    missing_files: tuple[str, ...] = ()
    unreadable_files: tuple[str, ...] = ()
    conflicting_duplicates: tuple[tuple[str, ...], ...] = ()  # byte-identical files under different identities
    dropped_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class IdentitySet:
    """identity → sorted image paths, with the report of how it was loaded."""

    identities: Mapping[str, tuple[Path, ...]]
    report: IdentityReport

    def __len__(self) -> int:
        return len(self.identities)

    def image_counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.identities.items()}

    def folders(self) -> dict[str, Path]:
        """identity → the folder holding its images (their common parent)."""
        import os

        return {k: Path(os.path.commonpath([str(p.parent) for p in v])) for k, v in self.identities.items()}

    def to_frame(self):
        import pandas as pd

        rows = [(k, str(p)) for k, paths in self.identities.items() for p in paths]
        return pd.DataFrame(rows, columns=["identity", "path"])


def _readable(path: Path, verify: bool) -> bool:
    try:
        if path.stat().st_size == 0:
            return False
        if verify:
            from PIL import Image

            with Image.open(path) as image:
                image.verify()
        return True
    except Exception:  # noqa: BLE001 - any decode failure means "unreadable"
        return False


def _finish(root: Path, identities: dict[str, list[Path]], *, empty: list[str], missing=(), unreadable=(), conflicts=(), dropped=()) -> IdentitySet:
    for name in empty:
        logger.warning("identity %s under %s has no readable images; skipped", name, root)
    kept = {k: tuple(v) for k, v in identities.items() if v}
    if not kept:
        raise EmptyGalleryError(
            f"{root} holds no identity with a readable image ({len(empty)} identity folder(s) empty or unreadable); "
            "expected root/<identity>/<image>.jpg"
        )
    report = IdentityReport(
        root=root,
        identity_count=len(kept),
        image_count=sum(len(v) for v in kept.values()),
        empty_identities=tuple(empty),
        missing_files=tuple(missing),
        unreadable_files=tuple(unreadable),
        conflicting_duplicates=tuple(conflicts),
        dropped_files=tuple(dropped),
    )
    return IdentitySet(kept, report)


def load_identity_folders(root: str | Path, *, verify: bool = False) -> IdentitySet:
    """Identity folders in the CASIA-WebFace layout: ``root/<identity>/*.jpg``.

    An identity folder with no readable image is reported and skipped; a root
    with none at all raises :class:`EmptyGalleryError`. ``verify=True`` opens
    every image with Pillow (slow on large sets); otherwise readable means a
    non-empty file with an image suffix.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"identity root {root} does not exist; expected root/<identity>/<image>.jpg")
    identities: dict[str, list[Path]] = {}
    empty, unreadable = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = []
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                (images if _readable(p, verify) else unreadable).append(p)
        identities[folder.name] = images
        if not images:
            empty.append(folder.name)
    return _finish(root, identities, empty=empty, unreadable=[str(p) for p in unreadable])


def load_celeba(root: str | Path | None = None, *, drop_conflicting_duplicates: bool = True) -> IdentitySet:
    """CelebA photos grouped by identity: ``root/images/*.jpg`` + ``root/identity_CelebA.txt``.

    Byte-identical photos labelled with different identities (label noise in
    CelebA) are reported in ``report.conflicting_duplicates``; with
    ``drop_conflicting_duplicates`` (default) every copy is removed, since such a
    photo would form a false different-person pair in training. Files listed but
    not present are reported in ``report.missing_files``.
    """
    root = Path(root) if root is not None else config.data_path("celeba")
    labels_file = root / "identity_CelebA.txt"
    images_dir = root / "images"
    if not labels_file.is_file() or not images_dir.is_dir():
        raise DataNotFoundError(f"{root} must hold images/ and identity_CelebA.txt (CelebA's identity annotation)")
    entries: list[tuple[Path, str]] = []
    missing = []
    for line_no, line in enumerate(labels_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DatasetFormatError(f"{labels_file}:{line_no}: expected '<file> <identity>', found {line!r}")
        path = images_dir / fields[0]
        if path.is_file():
            entries.append((path, fields[1]))
        else:
            missing.append(fields[0])
    by_hash: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    for path, identity in entries:
        by_hash[sha256_file(path)].append((path, identity))
    conflicts, dropped = [], set()
    for members in by_hash.values():
        if len({identity for _, identity in members}) > 1:
            conflicts.append(tuple(sorted(f"{p.name}:{identity}" for p, identity in members)))
            if drop_conflicting_duplicates:
                dropped.update(p for p, _ in members)
    if conflicts:
        logger.warning("CelebA: %d byte-identical photo group(s) carry different identities%s", len(conflicts),
                       "; all copies dropped" if drop_conflicting_duplicates else "")
    identities: dict[str, list[Path]] = defaultdict(list)
    for path, identity in entries:
        identities[identity]  # an identity whose every photo was dropped still counts as empty
        if path not in dropped:
            identities[identity].append(path)
    ordered = {k: sorted(identities[k]) for k in sorted(identities, key=lambda s: (len(s), s))}
    empty = [k for k, v in ordered.items() if not v]
    return _finish(root, ordered, empty=empty, missing=missing, conflicts=sorted(conflicts), dropped=sorted(p.name for p in dropped))


def load_att(root: str | Path | None = None) -> IdentitySet:
    """AT&T (ORL) faces: ``root/s1..s40/1..10.pgm``, sorted numerically."""
    root = Path(root) if root is not None else config.data_path("att_faces")
    if not root.is_dir():
        raise DataNotFoundError(f"AT&T folder {root} does not exist; expected s1..s40/1..10.pgm")

    def number(p: Path) -> int:
        digits = re.sub(r"\D", "", p.stem)
        return int(digits) if digits else 0

    identities, empty = {}, []
    for folder in sorted((p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)), key=number):
        images = sorted((p for p in folder.glob("*.pgm") if _readable(p, False)), key=number)
        identities[folder.name] = images
        if not images:
            empty.append(folder.name)
    return _finish(root, identities, empty=empty)
