"""Dataset loaders: UTKFace, LFW (folders and pairs files), identity folders (CASIA-WebFace layout, CelebA), AT&T.

Every loader finds its data through :func:`crowdkit.common.config.data_path` unless given a
folder, copes with the known problems of its dataset (see ``data/README.md`` in the
data folder) and says what it did in a frozen report instead of silently fixing it.

Example::

    >>> from crowdkit.common.datasets import load_utkface, split_stratified
    >>> index = load_utkface()                           # doctest: +SKIP
    >>> index.report.skipped_no_race                     # doctest: +SKIP
    ('39_1_20170116174525125.jpg.chip.jpg', ...)
    >>> train, test = split_stratified(index, test_size=0.3, seed=0)  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from crowdkit.common import config
from crowdkit.common.exceptions import DataNotFoundError, DatasetFormatError, EmptyGalleryError
from crowdkit.common.io import IMAGE_SUFFIXES, sha256_file

logger = logging.getLogger(__name__)

#: UTKFace's race codes 0–4, in order. These are the dataset's own annotation
#: categories, used here only to measure a classifier and its effect on batches.
RACE_NAMES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others")
#: UTKFace's gender codes 0–1.
GENDER_NAMES: tuple[str, ...] = ("male", "female")

# --------------------------------------------------------------------------- UTKFace

# age_gender_race_date.jpg.chip.jpg; one real file lacks the dot before "jpg"
# (``…357jpg.chip.jpg``): it still holds all four fields, so it is parsed (and reported).
_UTK_FULL = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>[01])_(?P<race>[0-4])_(?P<date>\d{8,})(?P<ext>\.jpg|jpg)\.chip\.jpg$")
# age_gender_date.jpg.chip.jpg: the race field is missing.
_UTK_NO_RACE = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>[01])_(?P<date>\d{8,})\.?jpg\.chip\.jpg$")


@dataclass(frozen=True)
class UTKFaceRecord:
    """One UTKFace image and the labels its file name carries."""

    path: Path
    age: int
    gender: int  # 0 male, 1 female
    race: int  # index into RACE_NAMES
    sha256: str

    @property
    def race_name(self) -> str:
        return RACE_NAMES[self.race]


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_utkface` found and did.

    ``duplicate_groups`` counts sets of byte-identical files (sha256); of each set
    one file is kept. A set whose files disagree on race is kept under the majority
    race when one race holds more than half of its files, otherwise the whole set
    is dropped (no label can be trusted). Sets that disagree only on gender or age
    are kept with the labels of the kept file (the first name in sorted order among
    those with the kept race) and listed.
    """

    folder: Path
    files_seen: int
    parsed: int
    skipped_no_race: tuple[str, ...]
    malformed_parsed: tuple[str, ...]
    unparseable: tuple[str, ...]
    duplicate_groups: int
    duplicate_files: int  # files in duplicate groups, all copies counted
    duplicates_removed: int  # files dropped because another copy was kept or the group was dropped
    conflicting_race: tuple[tuple[str, ...], ...]
    conflicting_gender: tuple[tuple[str, ...], ...]
    conflicting_age: tuple[tuple[str, ...], ...]
    race_conflicts_kept_by_majority: int
    race_conflicts_dropped: int
    kept: int
    class_counts: Mapping[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        """The counts as one flat dict (for a table in a notebook)."""
        return {
            "files seen": self.files_seen,
            "parsed": self.parsed,
            "skipped: no race field": len(self.skipped_no_race),
            "parsed despite malformed extension": len(self.malformed_parsed),
            "skipped: unparseable name": len(self.unparseable),
            "byte-identical groups": self.duplicate_groups,
            "files in those groups": self.duplicate_files,
            "groups with conflicting race": len(self.conflicting_race),
            "  kept under majority race": self.race_conflicts_kept_by_majority,
            "  dropped (no majority)": self.race_conflicts_dropped,
            "groups with conflicting gender": len(self.conflicting_gender),
            "groups with conflicting age": len(self.conflicting_age),
            "files removed by deduplication": self.duplicates_removed,
            "images kept": self.kept,
        }


@dataclass(frozen=True)
class UTKFaceIndex:
    """Deduplicated UTKFace images with their labels, plus the report of how they were loaded."""

    records: tuple[UTKFaceRecord, ...]
    report: LoadReport

    def __len__(self) -> int:
        return len(self.records)

    @property
    def paths(self) -> list[Path]:
        return [r.path for r in self.records]

    @property
    def labels(self) -> np.ndarray:
        """Race codes, int64 (N,)."""
        return np.array([r.race for r in self.records], dtype=np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "UTKFaceIndex":
        return UTKFaceIndex(tuple(self.records[int(i)] for i in indices), self.report)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "path": [str(r.path) for r in self.records],
                "age": [r.age for r in self.records],
                "gender": [GENDER_NAMES[r.gender] for r in self.records],
                "race": [r.race for r in self.records],
                "race_name": [r.race_name for r in self.records],
                "sha256": [r.sha256 for r in self.records],
            }
        )


def parse_utkface_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from a UTKFace file name, or None when the name has no race field or no pattern fits."""
    match = _UTK_FULL.match(name)
    if match is None:
        return None
    return int(match["age"]), int(match["gender"]), int(match["race"])


def load_utkface(folder: str | Path | None = None) -> UTKFaceIndex:
    """Load UTKFace's cropped faces, labels from the file names, byte-identical files deduplicated.

    Parameters
    ----------
    folder
        The folder holding ``*.jpg.chip.jpg`` files. Default: ``utkface/UTKFace`` in the data folder.

    Returns
    -------
    UTKFaceIndex
        Records sorted by file name and a :class:`LoadReport`. Deduplication
        happens here, before any split, so copies of one photo never land on both
        sides of a train/test split.
    """
    folder = Path(folder) if folder is not None else config.data_path("utkface", "UTKFace")
    if not folder.is_dir():
        raise DataNotFoundError(f"UTKFace folder {folder} does not exist; pass the folder holding the *.jpg.chip.jpg files")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(".jpg"))
    if not files:
        raise EmptyGalleryError(f"{folder} holds no .jpg files; is it the UTKFace folder (UTKFace/*.jpg.chip.jpg)?")

    parsed: list[UTKFaceRecord] = []
    no_race, malformed, unparseable = [], [], []
    for path in files:
        match = _UTK_FULL.match(path.name)
        if match is None:
            (no_race if _UTK_NO_RACE.match(path.name) else unparseable).append(path.name)
            continue
        if match["ext"] != ".jpg":
            malformed.append(path.name)
        parsed.append(UTKFaceRecord(path, int(match["age"]), int(match["gender"]), int(match["race"]), sha256_file(path)))
    for name in no_race:
        logger.warning("UTKFace: %s has no race field; skipped", name)
    for name in malformed:
        logger.info("UTKFace: %s has a malformed extension; its four fields were parsed", name)
    for name in unparseable:
        logger.warning("UTKFace: %s does not follow age_gender_race_date.jpg.chip.jpg; skipped", name)

    groups: dict[str, list[UTKFaceRecord]] = defaultdict(list)
    for record in parsed:
        groups[record.sha256].append(record)
    kept: list[UTKFaceRecord] = []
    conf_race, conf_gender, conf_age = [], [], []
    by_majority = dropped = dup_groups = dup_files = 0
    for members in groups.values():
        members.sort(key=lambda r: r.path.name)
        if len(members) == 1:
            kept.append(members[0])
            continue
        dup_groups += 1
        dup_files += len(members)
        names = tuple(r.path.name for r in members)
        races = Counter(r.race for r in members)
        if len(races) > 1:
            conf_race.append(names)
            race, count = races.most_common(1)[0]
            if count * 2 <= len(members):
                dropped += 1
                continue
            by_majority += 1
            members = [r for r in members if r.race == race]
        if len({r.gender for r in members}) > 1:
            conf_gender.append(names)
        if len({r.age for r in members}) > 1:
            conf_age.append(names)
        kept.append(members[0])
    kept.sort(key=lambda r: r.path.name)
    counts = Counter(r.race_name for r in kept)
    report = LoadReport(
        folder=folder,
        files_seen=len(files),
        parsed=len(parsed),
        skipped_no_race=tuple(no_race),
        malformed_parsed=tuple(malformed),
        unparseable=tuple(unparseable),
        duplicate_groups=dup_groups,
        duplicate_files=dup_files,
        duplicates_removed=len(parsed) - len(kept),
        conflicting_race=tuple(conf_race),
        conflicting_gender=tuple(conf_gender),
        conflicting_age=tuple(conf_age),
        race_conflicts_kept_by_majority=by_majority,
        race_conflicts_dropped=dropped,
        kept=len(kept),
        class_counts={name: counts.get(name, 0) for name in RACE_NAMES},
    )
    logger.info(
        "UTKFace: %d files, %d kept; %d byte-identical groups (%d with conflicting race: %d kept by majority, %d dropped)",
        report.files_seen, report.kept, dup_groups, len(conf_race), by_majority, dropped,
    )
    return UTKFaceIndex(tuple(kept), report)


def split_stratified(index: UTKFaceIndex, *, test_size: float = 0.3, seed: int = 0) -> tuple[UTKFaceIndex, UTKFaceIndex]:
    """A seeded train/test split stratified by race (``sklearn.model_selection.train_test_split``).

    Returns ``(train, test)``; both keep the original load report.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size}")
    indices = np.arange(len(index))
    train, test = train_test_split(indices, test_size=test_size, random_state=seed, stratify=index.labels)
    return index.subset(np.sort(train)), index.subset(np.sort(test))


def subsample_per_class(index: UTKFaceIndex, n_per_class: int, *, seed: int = 0) -> UTKFaceIndex:
    """At most ``n_per_class`` images of each race, a seeded random choice, in file-name order.

    For quick runs (tests, the book's quick profile) that still cover every class.
    """
    rng = np.random.default_rng(seed)
    labels = index.labels
    chosen: list[int] = []
    for race in range(len(RACE_NAMES)):
        members = np.flatnonzero(labels == race)
        chosen.extend(rng.permutation(members)[:n_per_class].tolist())
    return index.subset(sorted(chosen))


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
