"""CVAT for video 1.1 and CVAT for images 1.1: reading (auto-detected, hostile XML refused) and writing.

Example::

    ann = read_cvat("annotations.xml")       # or a CVAT export .zip
    write_cvat_video("copy.xml", ann)         # all or nothing
"""
from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from pathlib import Path

from crowdkit.common.exceptions import AnnotationError
from crowdkit.common.io import atomic_path
from crowdkit.crowd.annotations import Annotations, Box, Track

log = logging.getLogger(__name__)

#: Shapes CVAT can store that carry no box; they are counted, not read.
_OTHER_SHAPES = ("polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton", "tag")
_COORDS = ("xtl", "ytl", "xbr", "ybr")


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
    _write_task(ET.SubElement(meta, "task"), ann, last)
    ET.SubElement(meta, "source").text = Path(ann.source).name if ann.source else ""
    for track in ann.tracks:
        _write_track(root, track, ann, last)
    ET.indent(root, space="  ")
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)


def _write_task(task: ET.Element, ann: Annotations, last: int) -> None:
    """The ``<task>`` meta: size, frame range and step, labels with their attributes, original size."""
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


def _write_track(root: ET.Element, track: Track, ann: Annotations, last: int) -> None:
    """One ``<track>`` with a ``<box>`` per keyframe (an ``outside`` box after each one-frame box)."""
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
