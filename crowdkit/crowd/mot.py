"""MOT ground truth (``gt.txt``: frame,id,x,y,w,h,conf,class,visibility), read as :class:`Annotations`."""
from __future__ import annotations

import configparser
import csv
import os
from pathlib import Path

from crowdkit.common.exceptions import AnnotationError
from crowdkit.crowd.annotations import Annotations, Box, Track


def read_mot(path: str | os.PathLike, *, occluded_below: float = 0.5) -> Annotations:
    """Read MOT ground truth (``gt.txt``: frame,id,x,y,w,h,conf,class,visibility).

    ``path`` is a ``gt.txt`` file or a sequence folder holding ``gt/gt.txt``.
    ``seqinfo.ini`` (sequence folder) gives size and length when present;
    ``labels.txt`` beside ``gt.txt`` names classes (class ``c`` → line ``c``,
    1-based, as Datumaro writes it). MOT frames count from 1; they are
    shifted to start at 0. Rows with id -1 become one-box tracks. A box whose
    visibility is below ``occluded_below`` is marked occluded; ``conf`` and
    ``visibility`` are kept as attributes.
    """
    path = Path(path)
    gt = path / "gt" / "gt.txt" if path.is_dir() else path
    if not gt.is_file():
        raise AnnotationError(f"{gt}: no such MOT ground-truth file (expected gt.txt or a folder with gt/gt.txt)")
    labels_file = gt.parent / "labels.txt"
    names = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()] if labels_file.is_file() else []
    info = configparser.ConfigParser()
    seqinfo = gt.parent.parent / "seqinfo.ini"
    if seqinfo.is_file():
        info.read(seqinfo)
    seq = info["Sequence"] if info.has_section("Sequence") else {}
    rows, labels_of = _read_rows(gt, names, occluded_below)
    offset = max((t for t in rows if t >= 0), default=-1) + 1
    tracks = tuple(
        Track(track_id if track_id >= 0 else offset - track_id - 1, labels_of[track_id],
              tuple(sorted(boxes, key=lambda b: b.frame)))
        for track_id, boxes in sorted(rows.items(), key=lambda item: (item[0] < 0, abs(item[0]))))
    last = max((b.frame for t in tracks for b in t.boxes), default=-1)
    frame_count = int(seq.get("seqLength", last + 1))
    if last >= frame_count:
        raise AnnotationError(f"{gt}: a box names frame {last + 1} but seqinfo.ini says seqLength={frame_count}")
    ext = seq.get("imExt", ".jpg")
    return Annotations(
        tracks=tracks, frame_count=frame_count, width=int(seq.get("imWidth", 0)), height=int(seq.get("imHeight", 0)),
        labels=tuple(names) or tuple(sorted({t.label for t in tracks})), source=str(gt),
        frame_names={f: f"{f + 1:06d}{ext}" for f in range(frame_count)} if seq else {},
        mode="annotation", format="mot")


def _read_rows(gt: Path, names: list[str], occluded_below: float) -> tuple[dict[int, list[Box]], dict[int, str]]:
    """Boxes per track id (rows with id -1 get ids -1, -2, … in file order) and each track's label."""
    rows: dict[int, list[Box]] = {}
    labels_of: dict[int, str] = {}
    next_free = -1
    with open(gt, newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            frame, track_id, x, y, w, h, conf, cls, visibility = _parse_row(gt, line_number, row)
            if track_id < 0:
                track_id = next_free
                next_free -= 1
            label = names[cls - 1] if 0 < cls <= len(names) else (str(cls) if cls > 0 else "object")
            labels_of.setdefault(track_id, label)
            box = Box(int(frame) - 1, x, y, x + w, y + h, occluded=visibility < occluded_below,
                      attributes={"conf": f"{conf:g}", "visibility": f"{visibility:g}"})
            rows.setdefault(track_id, []).append(box)
    return rows, labels_of


def _parse_row(gt: Path, line_number: int, row: list[str]) -> tuple:
    """(frame, id, x, y, w, h, conf, class, visibility) of one line; conf, class and visibility may be absent."""
    if len(row) < 6:
        raise AnnotationError(f"{gt}: line {line_number} has {len(row)} fields; MOT needs at least "
                              "frame,id,x,y,w,h")
    try:
        values = [float(v) for v in row[:9]]
    except ValueError:
        raise AnnotationError(f"{gt}: line {line_number} has a non-numeric field: {','.join(row)}") from None
    frame, track_id, x, y, w, h = values[:6]
    if w < 0 or h < 0:
        raise AnnotationError(f"{gt}: line {line_number} has a negative width or height")
    conf = values[6] if len(values) > 6 else 1.0
    cls = int(values[7]) if len(values) > 7 else -1
    visibility = values[8] if len(values) > 8 else 1.0
    return frame, int(track_id), x, y, w, h, conf, cls, visibility
