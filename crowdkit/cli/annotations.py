"""``crowdkit annotations summary FILE [--json]``."""
from __future__ import annotations

import json
from pathlib import Path

from crowdkit.crowd.annotation_files import read_annotations
from crowdkit.crowd.annotations import summarize


def register(subparsers) -> None:
    parser = subparsers.add_parser("annotations", help="inspect CVAT (video/images 1.1) or MOT annotation files")
    verbs = parser.add_subparsers(dest="verb", required=True)
    summary = verbs.add_parser("summary", help="tracks, frames, boxes, labels and identities of one file")
    summary.add_argument("file", type=Path, help="CVAT XML, MOT gt.txt or a MOT sequence folder")
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.set_defaults(handler=_summary)


def _summary(args) -> int:
    summary = summarize(read_annotations(args.file))
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    print(f"{summary['source']} ({summary['format']}, {summary['width']}x{summary['height']})")
    print(f"  frames      {summary['frames']} (from {summary['start_frame']}, step {summary['frame_step']}), "
          f"{summary['annotated_frames']} with a visible box")
    print(f"  tracks      {summary['tracks']}")
    print(f"  boxes       {summary['boxes']} stored ({summary['keyframes']} keyframes), "
          f"{summary['visible_boxes']} visible after interpolation, {summary['occluded_boxes']} occluded")
    print(f"  labels      {', '.join(summary['labels']) or '-'}")
    for label, count in summary["boxes_per_label"].items():
        print(f"    {label:<12} {summary['tracks_per_label'].get(label, 0)} tracks, {count} boxes")
    if summary["identities"]:
        print(f"  identities  {', '.join(summary['identities'])}")
    if summary["ignored_shapes"]:
        print("  not boxes   " + ", ".join(f"{k}: {v}" for k, v in summary["ignored_shapes"].items()))
    return 0
