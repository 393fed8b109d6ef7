"""The face-engine chapter: every detector on one group photo, aligned chips, a query found in an LFW gallery.

``notebooks/engine/face_engine.ipynb`` only calls these and shows what they return::

    from crowdkit.engine.chapter import EngineChapterParams, compare_on_group_photo, search_lfw_gallery
    params = EngineChapterParams.from_namespace(globals())
    detectors = compare_on_group_photo(params)
    detectors.to_frame()                    # faces and seconds per detector
    search = search_lfw_gallery(params)
    display(Markdown(search.summary_markdown()))

The figures (``plot_*``) return the matplotlib Figure they drew.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from crowdkit.common import config
from crowdkit.common.datasets import lfw_people
from crowdkit.common.geometry import crop_box
from crowdkit.common.io import read_image
from crowdkit.engine.align import align_face
from crowdkit.engine.backends import DetectorRun, compare_detectors, resolve_embedder
from crowdkit.engine.detect import DEFAULT_DETECTOR
from crowdkit.engine.faces import FindResult, find
from crowdkit.engine.plots import distance_strip, draw_detections, thumbnail_grid

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

#: The group photo and the LFW folder the chapter uses by default (relative to the data root).
DEFAULT_GROUP_PHOTO = "fixtures/faceapi_js/test/images/faces.jpg"
DEFAULT_LFW_FOLDER = "lfw/images_deepfunneled"
#: The real photos every detector counts faces on (relative to the data root).
PHOTO_FOLDERS = ("fixtures/faceapi_js/test/images", "fixtures/face_recognition/examples")
#: Faces a person counts in each photo (checked by eye). ``obama2.jpg`` is left out: beside Obama it shows
#: a blurred face cut by the border, which a detector may rightly find or not.
KNOWN_FACE_COUNTS = {
    "faces.jpg": 6, "two_people.jpg": 2, "angry.jpg": 1, "angry_cropped.jpg": 1, "surprised.jpg": 1,
    "surprised_cropped.jpg": 1, "biden.jpg": 1, "obama.jpg": 1, "obama_small.jpg": 1, "obama-240p.jpg": 1,
    "obama-480p.jpg": 1, "obama-720p.jpg": 1, "obama-1080p.jpg": 1,
}


@dataclass(frozen=True)
class EngineChapterParams:
    """The chapter's parameters (its notebook's ``parameters`` cell). Paths are relative to the data root."""

    detectors: tuple[str, ...] = ("yunet", "mtcnn", "opencv", "dlib-hog", "dlib-mmod", "retinaface")
    model: str = "dlib"
    metric: str = "cosine"
    group_photo: str | None = None
    lfw_folder: str | None = None
    gallery_people: int = 12
    photos_per_person: int = 5
    find_detector: str = DEFAULT_DETECTOR
    photo_detectors: tuple[str, ...] = ("yunet", "mtcnn", "opencv")

    def __post_init__(self) -> None:
        object.__setattr__(self, "detectors", tuple(self.detectors))
        object.__setattr__(self, "photo_detectors", tuple(self.photo_detectors))

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> "EngineChapterParams":
        """From a notebook's ``globals()``: the names it knows, the rest ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in namespace.items() if k in known})

    @property
    def group_photo_path(self) -> Path:
        return config.data_path(self.group_photo or DEFAULT_GROUP_PHOTO)

    @property
    def lfw_path(self) -> Path:
        return config.data_path(self.lfw_folder or DEFAULT_LFW_FOLDER)


# --------------------------------------------------------------------------- detectors on one photo

@dataclass(frozen=True, eq=False)
class DetectorComparison:
    """Every detector on one photo: the photo and one :class:`~crowdkit.engine.backends.DetectorRun` each."""

    photo: Path
    image: np.ndarray
    runs: tuple[DetectorRun, ...]

    @property
    def ran(self) -> tuple[DetectorRun, ...]:
        """The detectors that could run."""
        return tuple(run for run in self.runs if run.error is None)

    def to_frame(self) -> "pd.DataFrame":
        """One row per detector: faces found (empty where it could not run), seconds, status."""
        import pandas as pd

        return pd.DataFrame({
            "detector": [r.name for r in self.runs],
            "faces": pd.array([len(r.detections) if r.error is None else None for r in self.runs], dtype="Int64"),
            "seconds": [round(r.seconds, 3) for r in self.runs],
            "status": ["ok" if r.error is None else r.error for r in self.runs],
        })

    def failures_markdown(self) -> str:
        """Markdown: one paragraph per detector that did not run, saying why (empty when all ran)."""
        return "\n\n".join(f"**{r.name} did not run.** {r.error}" for r in self.runs if r.error is not None)


def compare_on_group_photo(params: EngineChapterParams) -> DetectorComparison:
    """Run each of ``params.detectors`` on the group photo (a backend that cannot run says why)."""
    image = read_image(params.group_photo_path)
    return DetectorComparison(params.group_photo_path, image, tuple(compare_detectors(image, params.detectors)))


def plot_detections(comparison: DetectorComparison) -> "Figure":
    """One panel per detector that ran: its boxes and five landmarks on the photo, faces and seconds in the title."""
    import matplotlib.pyplot as plt

    ran = comparison.ran
    fig, axes = plt.subplots(1, max(1, len(ran)), figsize=(4.2 * max(1, len(ran)), 3.4), squeeze=False)
    for ax, run in zip(axes.flat, ran):
        draw_detections(comparison.image, run.detections, ax=ax,
                        title=f"{run.name}: {len(run.detections)} faces, {run.seconds:.2f} s")
    fig.tight_layout()
    return fig


def plot_aligned_chips(comparison: DetectorComparison, model: str) -> "Figure":
    """The chips the embedder ``model`` sees: the first detector's faces aligned to its template."""
    embedder = resolve_embedder(model)
    first = next(r for r in comparison.ran if r.detections)
    chips = [align_face(comparison.image, d.landmarks, embedder.template) for d in first.detections]
    return thumbnail_grid(chips, [f"{first.name} #{i}" for i in range(len(chips))], ncols=len(chips),
                          title=f"chips aligned to the '{embedder.template}' template ({chips[0].shape[0]} px)")


# --------------------------------------------------------------------------- faces counted on real photos

@dataclass(frozen=True, eq=False)
class PhotoFaceCounts:
    """Each detector on each real photo: one :class:`~crowdkit.engine.backends.DetectorRun` per (photo, detector).

    ``known`` holds the face count a person sees, for the photos where it is unambiguous.
    """

    photos: tuple[Path, ...]
    detectors: tuple[str, ...]
    runs: tuple[tuple[DetectorRun, ...], ...]  # runs[i][j]: detector j on photo i
    known: Mapping[str, int]

    def to_frame(self) -> "pd.DataFrame":
        """One row per photo: its size, the known count, then per detector faces found and milliseconds."""
        import pandas as pd

        table = pd.DataFrame({"photo": [p.name for p in self.photos],
                              "known": pd.array([self.known.get(p.name) for p in self.photos], dtype="Int64")})
        for j, name in enumerate(self.detectors):
            table[f"{name} faces"] = pd.array([len(r[j].detections) if r[j].error is None else None
                                               for r in self.runs], dtype="Int64")
            table[f"{name} ms"] = [round(1000 * r[j].seconds, 1) for r in self.runs]
        return table

    def misses(self) -> "pd.DataFrame":
        """Per detector, over the photos with a known count: faces missed, extra faces, median ms per photo."""
        import pandas as pd

        table = self.to_frame()
        known = table[table["known"].notna()]
        rows = []
        for name in self.detectors:
            found = known[f"{name} faces"].astype(float)
            short = (known["known"].astype(float) - found)
            rows.append({"detector": name, "photos": len(known), "faces": int(known["known"].sum()),
                         "missed": int(short.clip(lower=0).sum()), "extra": int((-short).clip(lower=0).sum()),
                         "median ms": round(float(table[f"{name} ms"].median()), 1)})
        return pd.DataFrame(rows).set_index("detector")


def count_faces_on_photos(params: EngineChapterParams) -> PhotoFaceCounts:
    """Each of ``params.photo_detectors`` on every photo of :data:`PHOTO_FOLDERS` (timed as
    :func:`~crowdkit.engine.backends.compare_detectors` times)."""
    photos = tuple(sorted((p for folder in PHOTO_FOLDERS for p in config.data_path(folder).glob("*.jpg")),
                          key=lambda p: p.name))
    runs = tuple(tuple(compare_detectors(read_image(photo), params.photo_detectors)) for photo in photos)
    return PhotoFaceCounts(photos, params.photo_detectors, runs, dict(KNOWN_FACE_COUNTS))


# --------------------------------------------------------------------------- a query in an LFW gallery

@dataclass(frozen=True, eq=False)
class GallerySearch:
    """A query person searched for in a gallery of LFW people: who, which photos, and what :func:`find` said."""

    query_name: str
    query_photo: Path
    people: tuple[str, ...]
    gallery: tuple[Path, ...]
    result: FindResult

    def to_frame(self) -> "pd.DataFrame":
        """The matches table plus ``person`` (the photo's LFW identity) and ``same_person``."""
        table = self.result.to_frame()
        table["person"] = [Path(s).parent.name for s in table["source"]]
        table["same_person"] = table["person"] == self.query_name
        return table

    def closest(self, n: int = 12) -> "pd.DataFrame":
        """The ``n`` gallery faces closest to the query: person, file name, distance, decision, same person."""
        table = self.to_frame().sort_values("distance")[["person", "source", "distance", "decision", "same_person"]]
        return table.assign(source=[Path(s).name for s in table["source"]]).head(n)

    def confusion(self) -> "pd.DataFrame":
        """Same person (rows) against the decision (columns), counted over the gallery faces."""
        import pandas as pd

        table = self.to_frame()
        return pd.crosstab(table["same_person"], table["decision"]).rename_axis(index="same person", columns="match")

    def summary_markdown(self) -> str:
        """Markdown: who was searched for, in what gallery, and at which threshold."""
        result = self.result
        return (
            f"Query: **{self.query_name}** (`{self.query_photo.name}`); gallery: {len(self.gallery)} photos of "
            f"{len(self.people)} people, {len(result)} faces; threshold {result.threshold:g} "
            f"({result.threshold_source} for {result.model}/{result.metric}); {result.match_count} match(es)."
        )


def search_lfw_gallery(params: EngineChapterParams) -> GallerySearch:
    """The first of ``gallery_people`` LFW people is searched for with one photo, among ``photos_per_person`` others each."""
    people = lfw_people(params.lfw_path, min_images=params.photos_per_person + 1)
    names = tuple(list(people)[:params.gallery_people])
    query_name = names[0]
    query_photo = people[query_name][0]
    gallery = tuple(p for name in names for p in people[name][1:params.photos_per_person + 1])
    result = find([query_photo], list(gallery), detector=params.find_detector, model=params.model,
                  metric=params.metric, progress=False)
    return GallerySearch(query_name, query_photo, names, gallery, result)


def plot_query(search: GallerySearch) -> "Figure":
    """The query photo."""
    return thumbnail_grid([read_image(search.query_photo)], [f"query: {search.query_name}"], ncols=1, size=2.2)


def plot_closest_faces(search: GallerySearch, n: int = 16) -> "Figure":
    """The ``n`` closest gallery faces with person and distance, framed green where they match."""
    ranked = search.to_frame().sort_values("distance").head(n)
    thumbs = [crop_box(read_image(row.source), (row.x1, row.y1, row.x2, row.y2)) for row in ranked.itertuples()]
    captions = [f"{row.person[:14]}\nd={row.distance:.3f}" for row in ranked.itertuples()]
    return thumbnail_grid(thumbs, captions, ncols=8, highlight=list(ranked["decision"]),
                          title="closest gallery faces (green frame: distance below the threshold)")


def plot_distances(search: GallerySearch) -> "Figure":
    """Every gallery face's distance to the query, the query person's apart, with the threshold line."""
    table = search.to_frame()
    labels: Sequence[str] = np.where(table["same_person"], search.query_name, "someone else")
    ax = distance_strip(table["distance"], labels, threshold=search.result.threshold, metric=search.result.metric,
                        title="every gallery face's distance to the query")
    return ax.figure
