"""Box annotations: CVAT for video 1.1 (tracks), CVAT for images 1.1, MOT text.

The dataclasses below are the seam between the simulator, real CVAT exports
and validation. Readers and writers for each format live in this module too.

Frame numbers are kept as the file states them: CVAT counts video frames from
0 (a task that starts at frame 10 with ``step=3`` names frames 10, 13, 16, …);
MOT counts from 1 and is shifted to 0 on reading so both line up with
:func:`crowdkit.engine.video.iter_frames`.

CVAT for video stores *keyframes*. Between two keyframes CVAT interpolates a
box linearly (coordinates only; ``occluded`` and attributes come from the
earlier keyframe); a box persists after its last keyframe to the end of the
task unless that keyframe says ``outside="1"``; nothing is drawn between an
``outside`` keyframe and the next one. :func:`boxes_in_frame` and
:func:`visible_boxes` apply exactly these rules.

Example::

    ann = read_cvat("annotations.xml")
    for track, box in boxes_in_frame(ann, 120):
        print(track.attributes.get("identity"), box.x1, box.y1, box.x2, box.y2)
"""
from __future__ import annotations

import bisect
import csv
import configparser
import logging
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

from crowdkit.common.exceptions import AnnotationError
from crowdkit.common.io import atomic_path

log = logging.getLogger(__name__)

#: Shapes CVAT can store that carry no box; they are counted, not read.
_OTHER_SHAPES = ("polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton", "tag")
_COORDS = ("xtl", "ytl", "xbr", "ybr")


@dataclass(frozen=True)
class Box:
    """One annotated box in one frame, in pixels (x1, y1 top-left; x2, y2 bottom-right).

    ``attributes`` holds only what differs from the track's own attributes;
    the effective attributes of a box are ``{**track.attributes, **box.attributes}``.
    Readers put an attribute on the track when every box of it has the same value.
    """

    frame: int
    x1: float
    y1: float
    x2: float
    y2: float
    outside: bool = False
    occluded: bool = False
    keyframe: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


@dataclass(frozen=True)
class Track:
    """One object followed across frames (CVAT ``<track>``); ``attributes`` holds e.g. ``identity``.

    ``boxes`` are sorted by frame (readers guarantee it).
    """

    id: int
    label: str
    boxes: tuple[Box, ...]
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> str | None:
        return self.attributes.get("identity")


@dataclass(frozen=True)
class Annotations:
    """A whole annotation file. For CVAT for images, each image is a frame and boxes form one-box tracks.

    ``frame_count`` is the number of frames the task declares (CVAT ``<size>``),
    counted on the grid ``start_frame, start_frame + frame_step, …``.
    ``mode`` is ``"interpolation"`` for tracks (boxes persist and are
    interpolated between keyframes) or ``"annotation"`` (a box exists only in
    the frame that lists it: CVAT for images, MOT).
    """

    tracks: tuple[Track, ...]
    frame_count: int
    width: int
    height: int
    labels: tuple[str, ...] = ("face",)
    source: str = ""
    frame_names: Mapping[int, str] = field(default_factory=dict)
    start_frame: int = 0
    frame_step: int = 1
    mode: str = "interpolation"
    format: str = "cvat-video-1.1"
    ignored_shapes: Mapping[str, int] = field(default_factory=dict)
    frame_sizes: Mapping[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def stop_frame(self) -> int:
        """Last frame of the task (inclusive); ``start_frame - 1`` for an empty task."""
        return self.start_frame + (self.frame_count - 1) * self.frame_step

    @property
    def frames(self) -> range:
        """The frames the task covers."""
        return range(self.start_frame, self.stop_frame + 1, self.frame_step)

    def identities(self) -> list[str]:
        return sorted({t.identity for t in self.tracks if t.identity is not None})

    def tracks_of(self, identity: str) -> list[Track]:
        """Tracks whose ``identity`` attribute equals ``identity``."""
        return [t for t in self.tracks if t.identity == identity]


# --------------------------------------------------------------------------- reading CVAT


def _parse_xml(path: Path) -> ET.Element:
    """Parse ``path`` (an XML file, or a CVAT export .zip holding one) with defusedxml."""
    import zipfile

    import defusedxml
    import defusedxml.ElementTree as DET

    if not path.is_file():
        raise AnnotationError(f"{path}: no such annotation file")
    where = str(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.lower().endswith(".xml")]
                if not names:
                    raise AnnotationError(f"{path}: a zip archive without an .xml file; is it a CVAT export?")
                name = min(names, key=lambda n: (n.count("/"), n != "annotations.xml", n))
                where = f"{path}!{name}"
                return DET.fromstring(archive.read(name), forbid_dtd=False, forbid_entities=True,
                                      forbid_external=True)
        return DET.parse(str(path), forbid_dtd=False, forbid_entities=True, forbid_external=True).getroot()
    except defusedxml.DefusedXmlException as error:
        raise AnnotationError(
            f"{where}: refused: the file declares XML entities or external references ({type(error).__name__}), "
            "which CVAT never writes; export the annotations again from CVAT") from error
    except ET.ParseError as error:
        line, column = getattr(error, "position", (0, 0))
        raise AnnotationError(f"{where}: malformed XML at line {line}, column {column}: {error}") from error
    except zipfile.BadZipFile as error:
        raise AnnotationError(f"{path}: a damaged zip archive ({error})") from error


def _text(element: ET.Element | None, tag: str, default: str | None = None) -> str | None:
    if element is None:
        return default
    child = element.find(tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _int(value: str | None, default: int, *, what: str, path: Path) -> int:
    if value is None or value == "":
        return default
    try:
        return int(float(value))
    except ValueError:
        raise AnnotationError(f"{path}: {what} is {value!r}, not a number") from None


def _read_meta(root: ET.Element, path: Path) -> dict:
    meta = root.find("meta")
    # a task export has <meta><task>, a job export <meta><job>, a project export <meta><project><tasks><task>…
    tasks = [] if meta is None else list(meta.iter("task")) or list(meta.iter("job"))
    task = tasks[0] if tasks else None
    if len(tasks) > 1:
        log.info("%s: a project export with %d tasks; frame range read from the first", path, len(tasks))
    step = 1
    frame_filter = _text(task, "frame_filter", "") or ""
    for part in frame_filter.split(","):
        if part.strip().startswith("step="):
            step = _int(part.strip()[5:], 1, what="frame_filter step", path=path)
    labels: list[str] = []
    labels_element = None if meta is None else next(meta.iter("labels"), None)
    if labels_element is not None:
        for label in labels_element.findall("label"):
            name = _text(label, "name")
            if name is not None:
                labels.append(name)
    size = task.find("original_size") if task is not None else None
    return {
        "size": _int(_text(task, "size"), -1, what="<size>", path=path),
        "start": _int(_text(task, "start_frame"), 0, what="<start_frame>", path=path),
        "stop": _int(_text(task, "stop_frame"), -1, what="<stop_frame>", path=path),
        "step": max(step, 1),
        "width": _int(_text(size, "width"), 0, what="original_size width", path=path),
        "height": _int(_text(size, "height"), 0, what="original_size height", path=path),
        "labels": tuple(labels),
        "source": _text(meta, "source", "") or "",
        "mode": _text(task, "mode", "") or "",
    }


def _attributes(element: ET.Element) -> dict[str, str]:
    return {a.get("name", ""): (a.text or "").strip() for a in element.findall("attribute")}


def _flag(element: ET.Element, name: str) -> bool:
    return element.get(name, "0").strip().lower() in ("1", "true")


def _coordinates(element: ET.Element, where: str, path: Path) -> tuple[float, float, float, float]:
    missing = [name for name in _COORDS if element.get(name) is None]
    if missing:
        raise AnnotationError(f"{path}: {where} lacks {', '.join(missing)}; a box needs xtl, ytl, xbr, ybr")
    try:
        x1, y1, x2, y2 = (float(element.get(name)) for name in _COORDS)
    except ValueError:
        values = {name: element.get(name) for name in _COORDS}
        raise AnnotationError(f"{path}: {where} has a non-numeric coordinate {values}") from None
    if x2 < x1 or y2 < y1:
        raise AnnotationError(f"{path}: {where} has xbr < xtl or ybr < ytl ({x1}, {y1}, {x2}, {y2}); "
                              "corners must be top-left then bottom-right")
    return x1, y1, x2, y2


def read_cvat(path: str | os.PathLike) -> Annotations:
    """Read a CVAT for video 1.1 or CVAT for images 1.1 XML file (auto-detected), or a CVAT export .zip.

    Boxes are read; other shapes (polygons, points, …) are counted in
    ``ignored_shapes``. Hostile XML (entity declarations, external references)
    is refused by ``defusedxml``.

    Raises
    ------
    AnnotationError
        malformed or hostile XML, an unknown root element, a box without
        coordinates or with its corners swapped, a box in a frame outside the
        task's declared range.
    """
    path = Path(path)
    root = _parse_xml(path)
    if root.tag != "annotations":
        raise AnnotationError(f"{path}: root element is <{root.tag}>, not <annotations>; "
                              "export as 'CVAT for video 1.1' or 'CVAT for images 1.1'")
    meta = _read_meta(root, path)
    has_tracks = root.find("track") is not None
    has_images = root.find("image") is not None
    if has_tracks and has_images:
        raise AnnotationError(f"{path}: holds both <track> and <image> elements; a CVAT file is one or the other")
    if has_images or (not has_tracks and meta["mode"] == "annotation"):
        return _read_images(root, meta, path)
    return _read_video(root, meta, path)


def _read_video(root: ET.Element, meta: dict, path: Path) -> Annotations:
    start, step, size = meta["start"], meta["step"], meta["size"]
    if size < 0 and meta["stop"] >= start:
        size = (meta["stop"] - start) // step + 1
    stop = start + (size - 1) * step if size >= 0 else None
    ignored: Counter[str] = Counter()
    tracks: list[Track] = []
    for position, element in enumerate(root.findall("track")):
        track_id = _int(element.get("id"), position, what=f"track #{position} id", path=path)
        label = element.get("label", "")
        boxes_elements = element.findall("box")
        others = [child.tag for child in element if child.tag != "box"]
        if not boxes_elements:
            ignored.update(others)
            continue
        raw: list[tuple[int, tuple, bool, bool, bool, dict]] = []
        inherited: dict[str, str] = {}
        for index, box in enumerate(sorted(boxes_elements, key=lambda b: _int(b.get("frame"), -1, what="frame", path=path))):
            where = f"track {track_id} box #{index}"
            if box.get("frame") is None:
                raise AnnotationError(f"{path}: {where} has no frame attribute")
            frame = _int(box.get("frame"), 0, what=f"{where} frame", path=path)
            where = f"track {track_id} box at frame {frame}"
            if frame < start or (stop is not None and frame > stop):
                raise AnnotationError(
                    f"{path}: {where} lies outside the task's frames {start}..{stop} "
                    f"(<size>{size}</size>, start_frame {start}, step {step})")
            inherited = {**inherited, **_attributes(box)}  # CVAT carries attributes forward
            raw.append((frame, _coordinates(box, where, path), _flag(box, "outside"),
                        _flag(box, "occluded"), box.get("keyframe", "1") != "0", dict(inherited)))
        # attributes equal on every box belong to the track (identity); the rest stay per box
        track_attributes = {k: v for k, v in raw[0][5].items() if all(r[5].get(k) == v for r in raw)}
        boxes = tuple(
            Box(frame, *xyxy, outside=outside, occluded=occluded, keyframe=keyframe,
                attributes={k: v for k, v in attrs.items() if track_attributes.get(k) != v})
            for frame, xyxy, outside, occluded, keyframe, attrs in raw)
        tracks.append(Track(track_id, label, boxes, track_attributes))
    ignored.update(child.tag for child in root if child.tag in _OTHER_SHAPES)
    rotated = sum(float(b.get("rotation", "0") or 0) != 0 for t in root.findall("track") for b in t.findall("box"))
    if rotated:
        log.warning("%s: %d rotated box(es); rotation is ignored (the axis-aligned box before rotation is used)",
                    path, rotated)
    off_grid = sorted({b.frame for t in tracks for b in t.boxes if (b.frame - start) % step})
    if off_grid:
        log.warning("%s: box(es) at frame(s) %s are not on the task's frame grid (start %d, step %d)",
                    path, off_grid[:5], start, step)
    if size < 0:  # no meta: the task spans what the file names
        frames = [b.frame for t in tracks for b in t.boxes]
        size = (max(frames) - start) // step + 1 if frames else 0
    return Annotations(
        tracks=tuple(tracks), frame_count=size, width=meta["width"], height=meta["height"],
        labels=meta["labels"] or tuple(sorted({t.label for t in tracks})), source=str(path),
        start_frame=start, frame_step=step, mode="interpolation", format="cvat-video-1.1",
        ignored_shapes=dict(ignored))


def _read_images(root: ET.Element, meta: dict, path: Path) -> Annotations:
    images = root.findall("image")
    ids = [element.get("id") for element in images]
    use_ids = len(set(ids)) == len(ids) and all(i is not None for i in ids)
    if not use_ids and images:
        log.info("%s: image ids repeat (a project export with subsets); frames numbered in file order", path)
    ignored: Counter[str] = Counter()
    tracks: list[Track] = []
    names: dict[int, str] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for position, element in enumerate(images):
        frame = _int(element.get("id"), position, what=f"image #{position} id", path=path) if use_ids else position
        name = element.get("name", "")
        subset = element.get("subset")
        names[frame] = f"{subset}/{name}" if subset else name
        sizes[frame] = (_int(element.get("width"), 0, what=f"image {name} width", path=path),
                        _int(element.get("height"), 0, what=f"image {name} height", path=path))
        for index, box in enumerate(element.findall("box")):
            xyxy = _coordinates(box, f"image {names[frame]!r} box #{index}", path)
            attributes = _attributes(box)
            tracks.append(Track(len(tracks), box.get("label", ""),
                                (Box(frame, *xyxy, occluded=_flag(box, "occluded")),), attributes))
        ignored.update(child.tag for child in element if child.tag != "box")
    widths = {w for w, _ in sizes.values()}
    heights = {h for _, h in sizes.values()}
    frame_count = max(sizes) + 1 if sizes else 0
    return Annotations(
        tracks=tuple(tracks), frame_count=frame_count,
        width=widths.pop() if len(widths) == 1 else 0, height=heights.pop() if len(heights) == 1 else 0,
        labels=meta["labels"] or tuple(sorted({t.label for t in tracks})), source=str(path),
        frame_names=names, mode="annotation", format="cvat-images-1.1", ignored_shapes=dict(ignored),
        frame_sizes=sizes)


# --------------------------------------------------------------------------- visible boxes per frame


def _interpolate(a: Box, b: Box, frame: int) -> Box:
    t = (frame - a.frame) / (b.frame - a.frame)
    coords = [pa + (pb - pa) * t for pa, pb in zip(a.xyxy, b.xyxy)]
    return replace(a, frame=frame, x1=coords[0], y1=coords[1], x2=coords[2], y2=coords[3], keyframe=False)


def box_at(track: Track, frame: int, *, last_frame: int, mode: str = "interpolation") -> Box | None:
    """The track's visible box in ``frame`` (interpolated between keyframes), or ``None``.

    ``last_frame`` is the task's last frame: a box persists after its last
    keyframe up to it (unless that keyframe is ``outside``). With
    ``mode="annotation"`` only a box listed for exactly ``frame`` counts.
    """
    frames = [b.frame for b in track.boxes]
    i = bisect.bisect_right(frames, frame) - 1
    if i < 0:
        return None
    box = track.boxes[i]
    if box.frame == frame:
        return None if box.outside else box
    if mode != "interpolation" or box.outside:
        return None
    if i + 1 < len(track.boxes):
        return _interpolate(box, track.boxes[i + 1], frame)
    if frame <= last_frame:
        return replace(box, frame=frame, keyframe=False)
    return None


def _last_frame(ann: Annotations) -> int:
    if ann.frame_count > 0:
        return ann.stop_frame
    return max((b.frame for t in ann.tracks for b in t.boxes), default=-1)


def boxes_in_frame(ann: Annotations, frame: int) -> list[tuple[Track, Box]]:
    """The visible (not ``outside``) boxes in ``frame``, one per track, interpolated as CVAT does."""
    last = _last_frame(ann)
    found = []
    for track in ann.tracks:
        box = box_at(track, frame, last_frame=last, mode=ann.mode)
        if box is not None:
            found.append((track, box))
    return found


def visible_boxes(ann: Annotations, frames: Iterable[int] | None = None) -> dict[int, list[tuple[Track, Box]]]:
    """``boxes_in_frame`` for many frames at once: frame → visible (track, box) pairs.

    ``frames`` defaults to every frame of the task (``ann.frames``, or the
    frames boxes name if the task declares none). Frames without boxes are
    left out of the result.
    """
    if frames is None:
        frames = ann.frames if ann.frame_count > 0 else sorted({b.frame for t in ann.tracks for b in t.boxes})
    frames = sorted(set(frames))
    last = _last_frame(ann)
    result: dict[int, list[tuple[Track, Box]]] = {}
    for track in ann.tracks:
        keys = [b.frame for b in track.boxes]
        if not keys:
            continue
        lo = bisect.bisect_left(frames, keys[0])
        for frame in frames[lo:]:
            if frame > keys[-1] and (ann.mode != "interpolation" or track.boxes[-1].outside or frame > last):
                break
            box = box_at(track, frame, last_frame=last, mode=ann.mode)
            if box is not None:
                result.setdefault(frame, []).append((track, box))
    return dict(sorted(result.items()))


# --------------------------------------------------------------------------- writing CVAT for video


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def write_cvat_video(path: str | os.PathLike, annotations: Annotations) -> None:
    """Write ``annotations`` as CVAT for video 1.1 XML, atomically (all or nothing).

    Labels are declared with a text ``identity`` attribute (and any other
    attribute the tracks carry). Track attributes are written on every box,
    as CVAT does for immutable attributes. Coordinates keep two decimals.
    Annotations in ``"annotation"`` mode (one box per listed frame) get an
    ``outside`` box in the following frame so the file means the same thing.
    """
    ann = annotations
    last = ann.stop_frame if ann.frame_count > 0 else max((b.frame for t in ann.tracks for b in t.boxes), default=0)
    for track in ann.tracks:
        for box in track.boxes:
            if box.frame < ann.start_frame or box.frame > last:
                raise AnnotationError(f"{path}: not written: track {track.id} has a box at frame {box.frame}, "
                                      f"outside the task's frames {ann.start_frame}..{last}")
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    size = ann.frame_count if ann.frame_count > 0 else (last - ann.start_frame) // ann.frame_step + 1
    for tag, text in (("name", Path(ann.source).stem if ann.source else "crowdkit"), ("size", str(size)),
                      ("mode", "interpolation"), ("overlap", "0"), ("start_frame", str(ann.start_frame)),
                      ("stop_frame", str(ann.start_frame + (size - 1) * ann.frame_step)),
                      ("frame_filter", f"step={ann.frame_step}" if ann.frame_step > 1 else "")):
        ET.SubElement(task, tag).text = text
    labels_element = ET.SubElement(task, "labels")
    labels = list(ann.labels) + sorted({t.label for t in ann.tracks} - set(ann.labels))
    for label in labels:
        names = {"identity"} | {k for t in ann.tracks if t.label == label for k in t.attributes} | {
            k for t in ann.tracks if t.label == label for b in t.boxes for k in b.attributes}
        label_element = ET.SubElement(labels_element, "label")
        ET.SubElement(label_element, "name").text = label
        attributes_element = ET.SubElement(label_element, "attributes")
        for name in ["identity"] + sorted(names - {"identity"}):
            attribute = ET.SubElement(attributes_element, "attribute")
            ET.SubElement(attribute, "name").text = name
            ET.SubElement(attribute, "mutable").text = "False" if name == "identity" else "True"
            ET.SubElement(attribute, "input_type").text = "text"
            ET.SubElement(attribute, "default_value").text = ""
            ET.SubElement(attribute, "values").text = ""
    original = ET.SubElement(task, "original_size")
    ET.SubElement(original, "width").text = str(ann.width)
    ET.SubElement(original, "height").text = str(ann.height)
    ET.SubElement(meta, "source").text = Path(ann.source).name if ann.source else ""
    for track in ann.tracks:
        element = ET.SubElement(root, "track", id=str(track.id), label=track.label, source="manual")
        boxes = list(track.boxes)
        if ann.mode != "interpolation":
            listed = {b.frame for b in boxes}
            boxes += [replace(b, frame=b.frame + ann.frame_step, outside=True) for b in track.boxes
                      if b.frame + ann.frame_step <= last and b.frame + ann.frame_step not in listed]
            boxes.sort(key=lambda b: b.frame)
        for box in boxes:
            box_element = ET.SubElement(
                element, "box", frame=str(box.frame), keyframe="1" if box.keyframe else "0",
                outside="1" if box.outside else "0", occluded="1" if box.occluded else "0",
                xtl=_fmt(box.x1), ytl=_fmt(box.y1), xbr=_fmt(box.x2), ybr=_fmt(box.y2), z_order="0")
            for name, value in {**track.attributes, **box.attributes}.items():
                ET.SubElement(box_element, "attribute", name=name).text = str(value)
    ET.indent(root, space="  ")
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)


# --------------------------------------------------------------------------- MOT


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
    rows: dict[int, list[Box]] = {}
    labels_of: dict[int, str] = {}
    next_free = -1
    with open(gt, newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
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
            track_id = int(track_id)
            if track_id < 0:
                track_id = next_free
                next_free -= 1
            label = names[cls - 1] if 0 < cls <= len(names) else (str(cls) if cls > 0 else "object")
            labels_of.setdefault(track_id, label)
            box = Box(int(frame) - 1, x, y, x + w, y + h, occluded=visibility < occluded_below,
                      attributes={"conf": f"{conf:g}", "visibility": f"{visibility:g}"})
            rows.setdefault(track_id, []).append(box)
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


def read_annotations(path: str | os.PathLike) -> Annotations:
    """Read any supported file: CVAT XML (``.xml``), MOT ``gt.txt`` or a MOT sequence folder."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".txt":
        return read_mot(path)
    return read_cvat(path)


# --------------------------------------------------------------------------- checks and summaries


def validate_against_video(ann: Annotations, frame_count: int) -> None:
    """Raise :class:`AnnotationError` if ``ann`` names a frame the video (``frame_count`` frames) lacks."""
    last_box = max((b.frame for t in ann.tracks for b in t.boxes), default=-1)
    if last_box >= frame_count:
        raise AnnotationError(
            f"{ann.source or 'annotations'}: boxes name frame {last_box} but the video has {frame_count} frames "
            f"(0..{frame_count - 1}); are these the annotations of another video, or a trimmed copy?")
    if ann.frame_count > 0 and ann.stop_frame >= frame_count:
        raise AnnotationError(
            f"{ann.source or 'annotations'}: the task declares frames {ann.start_frame}..{ann.stop_frame} but the "
            f"video has {frame_count} frames; are these the annotations of another video?")


def summarize(ann: Annotations) -> dict:
    """Counts for a person to check a file: tracks, frames, boxes, labels, identities."""
    visible = visible_boxes(ann)
    per_label_boxes = Counter(t.label for t in ann.tracks for _ in t.boxes)
    per_label_tracks = Counter(t.label for t in ann.tracks)
    return {
        "source": ann.source,
        "format": ann.format,
        "width": ann.width,
        "height": ann.height,
        "frames": ann.frame_count,
        "start_frame": ann.start_frame,
        "frame_step": ann.frame_step,
        "annotated_frames": len(visible),
        "tracks": len(ann.tracks),
        "boxes": sum(len(t.boxes) for t in ann.tracks),
        "keyframes": sum(b.keyframe for t in ann.tracks for b in t.boxes),
        "visible_boxes": sum(len(v) for v in visible.values()),
        "occluded_boxes": sum(b.occluded for v in visible.values() for _, b in v),
        "labels": list(ann.labels),
        "tracks_per_label": dict(sorted(per_label_tracks.items())),
        "boxes_per_label": dict(sorted(per_label_boxes.items())),
        "identities": ann.identities(),
        "ignored_shapes": dict(sorted(ann.ignored_shapes.items())),
    }
