"""UTKFace: labels parsed from the file names, known naming problems reported, byte-identical copies merged."""
from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from crowdkit.common import config
from crowdkit.common.exceptions import DataNotFoundError, EmptyGalleryError
from crowdkit.common.io import sha256_file

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
    names = _parse_names(files)
    merged = _merge_duplicates(names.parsed)
    kept = sorted(merged.kept, key=lambda r: r.path.name)
    counts = Counter(r.race_name for r in kept)
    report = LoadReport(
        folder=folder,
        files_seen=len(files),
        parsed=len(names.parsed),
        skipped_no_race=names.no_race,
        malformed_parsed=names.malformed,
        unparseable=names.unparseable,
        duplicate_groups=merged.groups,
        duplicate_files=merged.files,
        duplicates_removed=len(names.parsed) - len(kept),
        conflicting_race=merged.conflicting_race,
        conflicting_gender=merged.conflicting_gender,
        conflicting_age=merged.conflicting_age,
        race_conflicts_kept_by_majority=merged.kept_by_majority,
        race_conflicts_dropped=merged.dropped,
        kept=len(kept),
        class_counts={name: counts.get(name, 0) for name in RACE_NAMES},
    )
    logger.info(
        "UTKFace: %d files, %d kept; %d byte-identical groups (%d with conflicting race: %d kept by majority, %d dropped)",
        report.files_seen, report.kept, merged.groups, len(merged.conflicting_race), merged.kept_by_majority,
        merged.dropped,
    )
    return UTKFaceIndex(tuple(kept), report)


@dataclass(frozen=True)
class _ParsedNames:
    parsed: tuple[UTKFaceRecord, ...]
    no_race: tuple[str, ...]
    malformed: tuple[str, ...]  # parsed, but the extension is malformed
    unparseable: tuple[str, ...]


def _parse_names(files: Sequence[Path]) -> _ParsedNames:
    """Labels from each file name; names without a race field or any pattern are set aside (and logged)."""
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
    return _ParsedNames(tuple(parsed), tuple(no_race), tuple(malformed), tuple(unparseable))


@dataclass(frozen=True)
class _MergedDuplicates:
    kept: tuple[UTKFaceRecord, ...]
    groups: int  # groups of byte-identical files
    files: int  # files in those groups
    conflicting_race: tuple[tuple[str, ...], ...]
    conflicting_gender: tuple[tuple[str, ...], ...]
    conflicting_age: tuple[tuple[str, ...], ...]
    kept_by_majority: int  # race conflicts settled by a strict majority
    dropped: int  # race conflicts without one: the whole group is left out


def _merge_duplicates(records: Sequence[UTKFaceRecord]) -> _MergedDuplicates:
    """One record per group of byte-identical files; a race conflict keeps the strict majority or drops the group."""
    groups: dict[str, list[UTKFaceRecord]] = defaultdict(list)
    for record in records:
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
    return _MergedDuplicates(tuple(kept), dup_groups, dup_files, tuple(conf_race), tuple(conf_gender), tuple(conf_age),
                             by_majority, dropped)


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

