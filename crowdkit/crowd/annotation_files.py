"""Read an annotation file in any supported format: CVAT XML (or a CVAT export .zip) or MOT."""
from __future__ import annotations

import os
from pathlib import Path

from crowdkit.crowd.annotations import Annotations
from crowdkit.crowd.cvat import read_cvat
from crowdkit.crowd.mot import read_mot


def read_annotations(path: str | os.PathLike) -> Annotations:
    """Read any supported file: CVAT XML (``.xml``), MOT ``gt.txt`` or a MOT sequence folder."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".txt":
        return read_mot(path)
    return read_cvat(path)
