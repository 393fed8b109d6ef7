"""The SQLite lookup table: every training identity labelled by the ethnicity classifier, and the labels read back.

For each identity: up to ``max_images`` photos (a seeded choice,
:func:`sample_images`), the classifier's class probabilities per photo
(``images`` table), their mean, its argmax label and that probability as
``confidence`` (``identities`` table), and the classifier that made them
(``meta``). The labels are **predictions with a measured error**, not facts
about anyone: :func:`predicted_labels` returns them together with the
classifier's error measured on UTKFace (:class:`PredictedLabels`), and a table
built by another classifier is refused (:class:`LookupTableMismatchError`).

Example
-------
>>> from crowdkit.bias.profiles import get_profile
>>> predicted = predicted_labels(get_profile("quick"), "probe", seed=0)   # doctest: +SKIP
>>> predicted.labels["10001"], predicted.measured.error_rate              # doctest: +SKIP
('White', 0.21)
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from crowdkit import __version__
from crowdkit.bias.classifier import CLASSES, PROBA_COLUMNS, EthnicityClassifier
from crowdkit.bias.ethnicity import MeasuredClassifier, measure_classifier
from crowdkit.bias.profiles import BiasProfile
from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError, DataNotFoundError, LookupTableMismatchError
from crowdkit.common.io import atomic_path, show_progress

logger = logging.getLogger(__name__)


def default_lookup_path(dataset: str = "celeba", *, classifier: str = "probe", seed: int = 0) -> Path:
    """The conventional lookup-table file for ``dataset`` labelled by ``classifier`` (under the cache folder)."""
    return config.cache_dir("ethnicity", "lookup") / f"{dataset}-{classifier}-seed{int(seed)}.sqlite"


_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE identities (
    identity TEXT PRIMARY KEY, image_count INTEGER NOT NULL, sampled_count INTEGER NOT NULL, path TEXT NOT NULL,
    label TEXT NOT NULL, confidence REAL NOT NULL, faces_found INTEGER,
    {", ".join(f"{c} REAL NOT NULL" for c in PROBA_COLUMNS)});
CREATE TABLE images (
    identity TEXT NOT NULL REFERENCES identities(identity), path TEXT NOT NULL,
    {", ".join(f"{c} REAL NOT NULL" for c in PROBA_COLUMNS)},
    predicted TEXT NOT NULL, has_face INTEGER, PRIMARY KEY (identity, path));
"""

#: The dissertation's data table (its Fig. 4.13: id, classname, no_of_imgs, race, path, count) over ours:
#: ``id`` the row number (1, 2, … in build order), ``classname`` the identity, ``no_of_imgs`` all its photos,
#: ``race`` the predicted label as an index into ``CLASSES``, ``path`` its folder, and ``count`` 0 (the figure
#: prints 0 on every row and the dissertation does not say what it counts).
THESIS_COLUMNS_SQL = (
    "SELECT rowid AS id, identity AS classname, image_count AS no_of_imgs, CASE label "
    + " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(CLASSES))
    + " END AS race, path, 0 AS count FROM identities"
)
_SCHEMA += f"CREATE VIEW thesis_identities AS {THESIS_COLUMNS_SQL};\n"


@dataclass(frozen=True)
class LookupTableInfo:
    """What :func:`build_lookup_table` wrote."""

    db_path: Path
    identities: int
    images: int
    images_without_face: int
    meta: Mapping[str, str]


def sample_images(paths: Sequence[Path], identity: str, *, max_images: int, seed: int) -> list[Path]:
    """Up to ``max_images`` of an identity's images, a seeded choice that depends only on (seed, identity, paths)."""
    ordered = sorted(Path(p) for p in paths)
    if len(ordered) <= max_images:
        return ordered
    stream = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "little")
    rng = np.random.default_rng([seed, stream])
    return [ordered[i] for i in sorted(rng.choice(len(ordered), size=max_images, replace=False))]


def read_lookup_meta(db_path: str | os.PathLike) -> dict[str, str]:
    db_path = Path(db_path)
    if not db_path.is_file():
        raise DataNotFoundError(f"lookup table {db_path} does not exist; build it with build_lookup_table()")
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
        return dict(con.execute("SELECT key, value FROM meta").fetchall())


def check_lookup_table(db_path: str | os.PathLike, classifier: EthnicityClassifier | Mapping[str, str]) -> dict[str, str]:
    """Raise :class:`LookupTableMismatchError` unless ``db_path`` was built by ``classifier``; returns its meta."""
    meta = read_lookup_meta(db_path)
    wanted = classifier.fingerprint if isinstance(classifier, EthnicityClassifier) else dict(classifier)
    differs = {k: (meta.get(k), v) for k, v in wanted.items() if meta.get(k) != v}
    if differs:
        detail = "; ".join(f"{k}: table has {have!r}, asked for {want!r}" for k, (have, want) in differs.items())
        raise LookupTableMismatchError(
            f"lookup table {db_path} was built with a different classifier ({detail}). Rebuild it with "
            "build_lookup_table(..., overwrite=True) or ask for the classifier it was built with."
        )
    return meta


def build_lookup_table(db_path: str | os.PathLike, identities: Mapping[str, Sequence[str | os.PathLike]],
                       classifier: EthnicityClassifier, *, max_images: int = 10, seed: int = 0,
                       folders: Mapping[str, str | os.PathLike] | None = None, overwrite: bool = False,
                       progress: bool = True) -> LookupTableInfo:
    """Label every identity with the classifier's mean class probabilities over up to ``max_images`` images.

    Writes an SQLite file with tables ``identities`` (one row per identity: all-image
    count, sampled count, folder, argmax label of the mean probabilities and that
    probability as ``confidence``, the mean ``p_*``), ``images`` (per sampled image:
    ``p_*``, predicted label, ``has_face``; NULL when the classifier runs no detector)
    and ``meta`` (classifier name, version, training checksum, seed, max_images,
    created, crowdkit version). The file is built in a temporary file and moved into
    place, so a rebuild with the same inputs yields the same rows and a crash leaves
    the old table. An existing table made by a different classifier raises
    :class:`LookupTableMismatchError` unless ``overwrite=True``.
    """
    from tqdm.auto import tqdm

    db_path = Path(db_path)
    if max_images < 1:
        raise ConfigError(f"max_images must be at least 1, got {max_images}")
    if db_path.exists() and not overwrite:
        check_lookup_table(db_path, classifier)
    empty = [k for k, v in identities.items() if not v]
    if empty:
        logger.warning("lookup table: %d identit(ies) have no images and are left out: %s", len(empty), empty[:10])
    chosen = {k: sample_images(list(v), str(k), max_images=max_images, seed=seed) for k, v in identities.items() if v}
    if not chosen:
        raise ConfigError("no identity has any image; nothing to put in the lookup table")
    flat = [p for ps in chosen.values() for p in ps]
    prediction = classifier.predict(flat)
    proba, has_face = prediction.proba, prediction.has_face
    meta = {**classifier.fingerprint, "seed": str(seed), "max_images": str(max_images), "crowdkit_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "classes": ",".join(CLASSES)}
    image_rows, identity_rows = [], []
    start = 0
    for identity, paths in tqdm(chosen.items(), desc="lookup table", disable=not show_progress(progress)):
        block = proba[start:start + len(paths)]
        faces = has_face[start:start + len(paths)]
        for p, row, face in zip(paths, block, faces):
            image_rows.append((str(identity), str(p), *map(float, row), CLASSES[int(row.argmax())],
                               int(face) if prediction.detects_faces else None))
        mean = block.mean(axis=0)
        folder = Path(folders[identity]) if folders and identity in folders else Path(os.path.commonpath([str(Path(p).parent) for p in identities[identity]]))
        identity_rows.append((str(identity), len(identities[identity]), len(paths), str(folder), CLASSES[int(mean.argmax())],
                              float(mean.max()), int(faces.sum()) if prediction.detects_faces else None, *map(float, mean)))
        start += len(paths)
    with atomic_path(db_path) as tmp:
        with sqlite3.connect(tmp) as con:
            con.executescript(_SCHEMA)
            con.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
            con.executemany(f"INSERT INTO identities VALUES ({', '.join('?' * (7 + len(CLASSES)))})", identity_rows)
            con.executemany(f"INSERT INTO images VALUES ({', '.join('?' * (4 + len(CLASSES)))})", image_rows)
        con.close()
    no_face = int((~has_face).sum()) if prediction.detects_faces else 0
    if no_face:
        logger.warning("lookup table: no face detected in %d of %d images; the whole image was classified", no_face, len(flat))
    return LookupTableInfo(db_path, len(identity_rows), len(image_rows), no_face, meta)


def read_lookup_table(db_path: str | os.PathLike, *, classifier: EthnicityClassifier | Mapping[str, str] | None = None,
                      table: str = "identities"):
    """The ``identities`` (or ``images``, ``meta``, ``thesis_identities``) table as a DataFrame; with ``classifier``,
    check it made the table first.

    ``thesis_identities`` is the dissertation's layout of the identities
    (:data:`THESIS_COLUMNS_SQL`), read with that query so that tables built
    before the view existed give it too.
    """
    import pandas as pd

    if table not in {"identities", "images", "meta", "thesis_identities"}:
        raise ConfigError(f"table must be 'identities', 'images', 'meta' or 'thesis_identities', got {table!r}")
    if classifier is not None:
        check_lookup_table(db_path, classifier)
    else:
        read_lookup_meta(db_path)
    with sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True) as con:
        if table == "thesis_identities":
            return pd.read_sql_query(f"{THESIS_COLUMNS_SQL} ORDER BY id", con)
        order = "identity" if table == "identities" else ("identity, path" if table == "images" else "key")
        frame = pd.read_sql_query(f"SELECT * FROM {table} ORDER BY {order}", con)
    return frame


def lookup_labels(db_path: str | os.PathLike, *, classifier: EthnicityClassifier | Mapping[str, str] | None = None) -> dict[str, str]:
    """identity → predicted label, from a lookup table (the input of the stratified sampler)."""
    frame = read_lookup_table(db_path, classifier=classifier)
    return dict(zip(frame["identity"], frame["label"]))


def ensure_lookup_table(db_path: str | os.PathLike, identities: Mapping[str, Sequence[str | os.PathLike]],
                        classifier: EthnicityClassifier, *, max_images: int = 10, seed: int = 0,
                        progress: bool = True) -> Path:
    """Build the lookup table unless ``db_path`` already holds one made by ``classifier`` with the same
    ``max_images``, ``seed`` and identities; returns ``db_path``."""
    db_path = Path(db_path)
    if db_path.is_file():
        try:
            meta = check_lookup_table(db_path, classifier)
        except LookupTableMismatchError:
            meta = None
        if meta and meta.get("seed") == str(seed) and meta.get("max_images") == str(max_images):
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
                have = {row[0] for row in con.execute("SELECT identity FROM identities")}
            if have == {str(k) for k, v in identities.items() if v}:
                return db_path
    build_lookup_table(db_path, identities, classifier, max_images=max_images, seed=seed, overwrite=True, progress=progress)
    return db_path


def label_summary(db_path: str | os.PathLike):
    """Per predicted label: identities, mean confidence (3 places), photos classified, share of identities.

    Ordered by the number of identities, largest first.
    """
    import pandas as pd

    with sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True) as con:
        by_label = pd.read_sql_query(
            "SELECT label, COUNT(*) AS identities, ROUND(AVG(confidence), 3) AS mean_confidence, "
            "SUM(sampled_count) AS photos FROM identities GROUP BY label ORDER BY identities DESC", con)
    by_label["share"] = (by_label["identities"] / by_label["identities"].sum()).round(3)
    return by_label


# --------------------------------------------------------------------------- labels with their error


@dataclass(frozen=True, eq=False)
class PredictedLabels:
    """identity → predicted label, and the measured error of the classifier that predicted it.

    ``identities`` are the identities labelled, with their photos; ``table`` is
    the lookup table's ``identities`` rows (a DataFrame); ``built`` says what a
    rebuild wrote (None when an existing table was reused).
    """

    labels: Mapping[str, str]
    measured: MeasuredClassifier
    identities: Mapping[str, Sequence[Path]] = field(repr=False)
    table: Any = field(repr=False)
    db_path: Path
    built: LookupTableInfo | None = None

    def sizes(self) -> dict[str, int]:
        """identity → number of photos (what the batch samplers draw from)."""
        return {k: len(v) for k, v in self.identities.items()}

    def group_sizes(self):
        """Per label: identities, their photos (all, not only the sampled ones) and the share of identities."""
        groups = self.table.groupby("label").agg(identities=("identity", "size"), images=("image_count", "sum"))
        groups["share of identities"] = (groups["identities"] / groups["identities"].sum()).round(3)
        return groups

    def label_summary(self):
        """:func:`label_summary` of this table."""
        return label_summary(self.db_path)

    def error_note(self) -> str:
        """Markdown: these are predictions, and how often the classifier is wrong."""
        return self.measured.error_note()

    def lookup_note(self) -> str:
        """Markdown under the label table: predictions, their measured error, and why it is likely higher here."""
        return (f"These are **predicted** labels: the classifier that made them is wrong on "
                f"{self.measured.error_rate:.1%} of held-out UTKFace faces (more on some classes, see the recall "
                "column above), and CelebA's in-the-wild photos differ from UTKFace's crops, so the error here is "
                "likely higher.")

    def build_note(self, celeba: Any = None) -> str:
        """Markdown: what the build classified (identities, photos, photos without a face) and, given the loaded
        ``celeba``, its size and the byte-identical groups its loader dropped."""
        text = ""
        if celeba is not None:
            text = (f"CelebA: {len(celeba)} identities, {celeba.report.image_count} photos; "
                    f"{len(celeba.report.conflicting_duplicates)} byte-identical groups with different identities "
                    "dropped. ")
        if self.built is not None:
            b = self.built
            text += (f"{b.identities} identities, {b.images} photos classified; no face found in "
                     f"{b.images_without_face} ({b.images_without_face / b.images:.1%}; those photos were "
                     "classified whole).")
        return text

    def provenance(self, packages: Sequence[str] = ("crowdkit", "numpy", "scikit-learn", "dlib-bin", "torch")):
        """Package versions, the classifier, its training checksum and the lookup table's file, as a one-column frame."""
        import pandas as pd

        from crowdkit.common import provenance

        return pd.Series({**provenance.package_versions(list(packages)), "classifier": self.measured.name,
                          "training checksum": self.measured.classifier.checksum,
                          "lookup table": config.display_path(self.db_path)}).to_frame("run")


def profile_identities(profile: BiasProfile, celeba: Any = None) -> dict[str, list[Path]]:
    """The CelebA identities a profile uses (its first ``max_identities``, all when None), with their photos.

    ``celeba``: an already loaded :class:`crowdkit.common.datasets.IdentitySet` (loaded when None).
    """
    from crowdkit.common.datasets import load_celeba

    identities = dict((celeba if celeba is not None else load_celeba()).identities)
    if profile.max_identities:
        identities = dict(list(identities.items())[: profile.max_identities])
    return identities


def predicted_labels(profile: BiasProfile, classifier: str | MeasuredClassifier = "probe", *, seed: int = 0,
                     identities: Mapping[str, Sequence[str | os.PathLike]] | None = None,
                     rebuild: bool = False) -> PredictedLabels:
    """The lookup-table labels of the profile's training identities, with the classifier's measured error.

    ``classifier``: a backend name (trained once and measured here,
    :func:`crowdkit.bias.ethnicity.measure_classifier`) or a classifier already
    measured. The table lives at :func:`default_lookup_path`; it is reused when
    the same classifier built it from the same identities (``rebuild=True``:
    always rebuilt, as the ethnicity chapter does).
    """
    measured = classifier if isinstance(classifier, MeasuredClassifier) else measure_classifier(
        profile, classifier, seed=seed)
    identities = dict(identities) if identities is not None else profile_identities(profile)
    db_path = default_lookup_path("celeba", classifier=measured.name, seed=seed)
    built = None
    if rebuild:
        built = build_lookup_table(db_path, identities, measured.classifier, max_images=profile.max_images, seed=seed,
                                   overwrite=True, progress=False)
    else:
        ensure_lookup_table(db_path, identities, measured.classifier, max_images=profile.max_images, seed=seed,
                            progress=False)
    table = read_lookup_table(db_path, classifier=measured.classifier)
    return PredictedLabels(labels=dict(zip(table["identity"], table["label"])), measured=measured,
                           identities=identities, table=table, db_path=db_path, built=built)
