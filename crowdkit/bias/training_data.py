"""Training inputs: per-identity dlib descriptors or aligned face crops, ready for identity batches.

:func:`load_training_data` prepares what a backbone eats (see
:mod:`crowdkit.bias.backbones`): ``"dlib"`` descriptors from the shared photo
pipeline (:func:`crowdkit.bias.descriptors.describe_photos`, cached by file
content) or MTCNN margin crops from :func:`align_dataset` (davidsandberg/facenet's
``align_dataset_mtcnn``, cached as JPEGs). Images in which no face is found are
skipped and counted.

Example
-------
>>> from crowdkit.common.datasets import load_celeba
>>> data = load_training_data("projection", load_celeba().identities)   # doctest: +SKIP
>>> data.n_images, len(data.skipped)                                     # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from crowdkit.bias.backbones import BACKBONES, resize_square
from crowdkit.bias.descriptors import describe_photos
from crowdkit.common import config as ck_config
from crowdkit.common.exceptions import EmptyGalleryError, NoFaceError
from crowdkit.common.io import atomic_path, read_image, show_progress

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- inputs

@dataclass(frozen=True, eq=False)
class TrainingData:
    """Per-identity model inputs ready for batching.

    ``inputs[identity]``: float32 (n, 128) dlib descriptors or uint8 (n, S, S, 3)
    crops. ``paths[identity]``: the image each row came from. ``skipped``:
    images left out because no face was detected.
    """

    input: str
    image_size: int
    inputs: Mapping[str, np.ndarray] = field(repr=False)
    paths: Mapping[str, tuple[Path, ...]] = field(repr=False)
    skipped: tuple[Path, ...] = ()

    @property
    def n_images(self) -> int:
        return int(sum(len(v) for v in self.inputs.values()))

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.inputs.items()}

    def fingerprint(self) -> str:
        """sha256 of the identities and their inputs' bytes: which data a checkpoint was trained on."""
        import hashlib

        hasher = hashlib.sha256(f"{self.input}:{self.image_size}".encode())
        for key in sorted(self.inputs):
            hasher.update(key.encode())
            hasher.update(np.ascontiguousarray(self.inputs[key]).tobytes())
        return hasher.hexdigest()

    def subset(self, identities: Sequence[str]) -> "TrainingData":
        return TrainingData(self.input, self.image_size, {k: self.inputs[k] for k in identities},
                            {k: self.paths[k] for k in identities}, self.skipped)


def load_training_data(backbone: str, identities: Mapping[str, Sequence[str | os.PathLike]], *,
                       dataset: str = "celeba", progress: bool = True) -> TrainingData:
    """Prepare the inputs ``backbone`` needs for every image of ``identities`` (identity → paths).

    ``"dlib"`` input: descriptors from :func:`crowdkit.bias.descriptors.describe_photos`
    (cached by file content, shared with the lookup table and the evaluation);
    images where no detector found a face are skipped and counted. ``"image"`` input: MTCNN margin
    crops from :func:`align_dataset` (cached as JPEGs), resized to the
    backbone's size. Identities left with no usable image are dropped (logged);
    none at all raises :class:`EmptyGalleryError`.
    """
    spec = BACKBONES.create(backbone)
    identities = {str(k): [Path(p) for p in v] for k, v in identities.items()}
    empty = [k for k, v in identities.items() if not v]
    if empty:
        log.warning("%d identities have no images and are skipped: %s", len(empty), ", ".join(empty[:5]))
    identities = {k: v for k, v in identities.items() if v}
    if not identities:
        raise EmptyGalleryError("no identity has any image; expected identity → list of image paths")
    inputs, kept_paths, skipped = {}, {}, []
    if spec.input == "dlib":
        flat = [p for v in identities.values() for p in v]
        feats = describe_photos(flat, progress=progress)
        row = 0
        for k, v in identities.items():
            emb, ok = feats.embeddings[row:row + len(v)], feats.has_face[row:row + len(v)]
            row += len(v)
            skipped += [p for p, good in zip(v, ok) if not good]
            inputs[k], kept_paths[k] = emb[ok], tuple(p for p, good in zip(v, ok) if good)
    else:
        report = align_dataset(identities, dataset=dataset, progress=progress)
        skipped = list(report.skipped)
        for k, chips in report.aligned.items():
            arr = np.stack([resize_square(read_image(p), spec.image_size) for p in chips]) if chips else None
            if arr is not None:
                inputs[k], kept_paths[k] = arr, tuple(chips)
    if skipped:
        log.warning("%d of %d images had no detectable face and were skipped",
                    len(skipped), sum(len(v) for v in identities.values()))
    inputs = {k: v for k, v in inputs.items() if len(v)}
    if not inputs:
        raise NoFaceError(f"no face was detected in any of the {len(skipped)} images; check the image folder")
    return TrainingData(spec.input, spec.image_size, inputs, {k: kept_paths[k] for k in inputs}, tuple(skipped))


# --------------------------------------------------------------------------- alignment

@dataclass(frozen=True)
class AlignmentReport:
    """Result of :func:`align_dataset`: identity → aligned JPEG paths, and the images with no face."""

    folder: Path
    aligned: Mapping[str, tuple[Path, ...]]
    skipped: tuple[Path, ...]
    n_cached: int
    n_new: int

    @property
    def n_aligned(self) -> int:
        return sum(len(v) for v in self.aligned.values())


def align_dataset(identities: Mapping[str, Sequence[str | os.PathLike]], *, dataset: str,
                  detector: str = "mtcnn", margin: int = 44, crop_size: int = 182, output_size: int = 160,
                  progress: bool = True) -> AlignmentReport:
    """davidsandberg/facenet's ``align_dataset_mtcnn``: largest face, margin 44 → 182 px → centre 160 px.

    Crops are cached as JPEGs under ``config.cache_dir("aligned", dataset, <detector>-m<margin>-<output_size>)/
    <identity>/<file>.jpg``; a list of images with no detectable face sits
    beside them (``no_face.json``) so a rerun skips them too. Images with no
    face are reported (log + ``skipped``) and left out.
    """
    from tqdm.auto import tqdm

    from crowdkit.engine.align import margin_crop
    from crowdkit.engine.detect import get_detector

    folder = ck_config.cache_dir("aligned", dataset, f"{detector}-m{margin}-{crop_size}-{output_size}")
    no_face_file = folder / "no_face.json"
    no_face = set(json.loads(no_face_file.read_text())) if no_face_file.is_file() else set()
    det = None
    aligned: dict[str, list[Path]] = {}
    skipped: list[Path] = []
    n_cached = n_new = 0
    todo = [(str(k), Path(p)) for k, v in identities.items() for p in v]
    for identity, path in tqdm(todo, desc=f"aligning {dataset}", unit="img", disable=not show_progress(progress)):
        target = folder / identity / (path.stem + ".jpg")
        key = f"{identity}/{path.name}"
        if target.is_file():
            aligned.setdefault(identity, []).append(target)
            n_cached += 1
            continue
        if key in no_face:
            skipped.append(path)
            continue
        det = det or get_detector(detector)
        image = read_image(path)
        faces = det.detect(image)
        if not faces:
            skipped.append(path)
            no_face.add(key)
            continue
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        chip = margin_crop(image, largest.box, margin=margin, crop_size=crop_size, output_size=output_size)
        target.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        with atomic_path(target) as tmp:
            Image.fromarray(chip).save(tmp, format="JPEG", quality=95)
        aligned.setdefault(identity, []).append(target)
        n_new += 1
    if no_face:
        with atomic_path(no_face_file) as tmp:
            tmp.write_text(json.dumps(sorted(no_face)))
    if skipped:
        log.warning("alignment: no face in %d of %d images (skipped; listed in %s)", len(skipped), len(todo), no_face_file)
    return AlignmentReport(folder, {k: tuple(v) for k, v in aligned.items()}, tuple(skipped), n_cached, n_new)
