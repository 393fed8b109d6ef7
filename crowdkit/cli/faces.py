"""``crowdkit find`` and ``crowdkit verify``: search a gallery for a person, compare two photos."""
from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger(__name__)


def _detector_names() -> list[str]:
    """The registered detectors (``--detector`` choices)."""
    from crowdkit.engine.detect import DETECTORS

    return DETECTORS.names()


def _check_threshold(args: argparse.Namespace) -> None:
    """Refuse a ``--threshold`` that no ``--metric`` distance can take, before anything loads."""
    from crowdkit.engine.match import check_threshold

    if args.threshold is not None:
        check_threshold(args.metric, args.threshold)


def _model_names() -> list[str]:
    try:
        from crowdkit.engine.embed import EMBEDDERS

        return EMBEDDERS.names()
    except Exception:  # noqa: BLE001 - the help text must never fail
        return ["dlib", "arcface", "facenet"]


def _thresholds_help() -> str:
    """Each model's default thresholds, read from the backend classes (no weights loaded)."""
    lines = ["default thresholds (distance <= threshold means same person):"]
    try:
        from crowdkit.engine.embed import EMBEDDERS

        for name in EMBEDDERS.names():
            cls = EMBEDDERS.get(name)
            thresholds = cls.thresholds
            shown = ", ".join(f"{metric} {value:g}" for metric, value in sorted(thresholds.items()))
            lines.append(f"  {name}: {shown or '(none)'}")
    except Exception as error:  # noqa: BLE001
        lines.append(f"  (could not read the models' thresholds: {error})")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    detectors = _detector_names()
    _register_find(subparsers, detectors)
    _register_extract(subparsers, detectors)
    _register_verify(subparsers, detectors)


def _register_find(subparsers: argparse._SubParsersAction, detectors: list[str]) -> None:
    from crowdkit.engine.detect import DEFAULT_DETECTOR
    from crowdkit.engine.match import METRICS

    find = subparsers.add_parser(
        "find",
        help="search a folder of photos or a video for the person in the query photo(s)",
        description="Detect, align and embed every face in the gallery (cached per image) and compare it "
        "with the closest query photo. Writes one row per detected face.",
        epilog=_thresholds_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    find.add_argument("--query", action="append", required=True, metavar="PHOTO",
                      help="photo of the person searched for (repeat for several photos of the same person)")
    find.add_argument("--gallery", required=True, metavar="DIR_OR_VIDEO",
                      help="folder of images (searched recursively) or a video file")
    find.add_argument("--detector", default=DEFAULT_DETECTOR, choices=detectors,
                      help=f"face detector (default {DEFAULT_DETECTOR})")
    find.add_argument("--model", default="dlib", choices=_model_names(), help="embedding model (default dlib)")
    find.add_argument("--metric", default="cosine", choices=METRICS, help="distance (default cosine)")
    find.add_argument("--threshold", type=float, default=None,
                      help="decision threshold, a possible distance: 0–2 for cosine and euclidean_l2, ≥ 0 for "
                      "euclidean (default: the model's value for the metric, listed below)")
    find.add_argument("--stride", type=int, default=1, help="for a video gallery: every N-th frame (default 1)")
    find.add_argument("--on-many", default="largest", choices=("largest", "refuse"),
                      help="a query photo with several faces: use the largest (default) or refuse")
    find.add_argument("--out", required=True, metavar="RESULTS.parquet", help="where to write the table (parquet)")
    find.set_defaults(handler=_find)


def _register_extract(subparsers: argparse._SubParsersAction, detectors: list[str]) -> None:
    extract = subparsers.add_parser(
        "extract",
        help="cut every face out of photos or video frames into JPEG crops, with a manifest of the detections",
        description="Writes one JPEG per detected face (box plus a margin) into --out, keeping the gallery's "
        "sub-folders, and crowdkit-faces.json beside them: per crop its sha256, source, frame, detector, score, "
        "box and 5 landmarks in crop coordinates. `crowdkit find --gallery OUT` with the same detector reuses "
        "those detections instead of detecting again.",
    )
    extract.add_argument("--gallery", required=True, metavar="DIR_OR_VIDEO",
                         help="folder of images (searched recursively), an image or a video file")
    extract.add_argument("--out", required=True, metavar="DIR", help="folder for the crops and the manifest")
    extract.add_argument("--detector", default="opencv", choices=detectors, help="face detector (default opencv)")
    extract.add_argument("--margin", type=float, default=0.2,
                         help="grow each box by this fraction of its size on every side (default 0.2)")
    extract.add_argument("--stride", type=int, default=1, help="for a video: every N-th frame (default 1)")
    extract.set_defaults(handler=_extract)


def _register_verify(subparsers: argparse._SubParsersAction, detectors: list[str]) -> None:
    from crowdkit.engine.detect import DEFAULT_DETECTOR
    from crowdkit.engine.match import METRICS

    verify = subparsers.add_parser(
        "verify",
        help="do two photos show the same person?",
        epilog=_thresholds_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("a", metavar="A.jpg")
    verify.add_argument("b", metavar="B.jpg")
    verify.add_argument("--model", default="dlib", choices=_model_names(), help="embedding model (default dlib)")
    verify.add_argument("--detector", default=DEFAULT_DETECTOR, choices=detectors,
                        help=f"face detector (default {DEFAULT_DETECTOR})")
    verify.add_argument("--metric", default="cosine", choices=METRICS, help="distance (default cosine)")
    verify.add_argument("--threshold", type=float, default=None,
                        help="decision threshold: 0–2 for cosine and euclidean_l2, ≥ 0 for euclidean "
                        "(default: the model's)")
    verify.add_argument("--json", action="store_true", help='print {"distance": ..., "threshold": ..., "verified": ...}')
    verify.set_defaults(handler=_verify)


def _find(args: argparse.Namespace) -> int:
    from crowdkit.common.exceptions import ConfigError
    from crowdkit.common.io import atomic_path
    from crowdkit.engine.faces import find

    _check_threshold(args)
    if not args.out.endswith(".parquet"):
        raise ConfigError(f"--out must name a .parquet file, got {args.out}")
    result = find(
        args.query, args.gallery, detector=args.detector, model=args.model, metric=args.metric,
        threshold=args.threshold, stride=args.stride, on_many=args.on_many,
    )
    with atomic_path(args.out) as tmp:
        result.to_frame().to_parquet(tmp, index=False)
    source = (f"default for {result.model}/{result.metric}" if result.threshold_source == "default"
              else "given with --threshold")
    skipped = f", {len(result.skipped)} unreadable file(s) skipped" if result.skipped else ""
    print(
        f"{len(result)} face(s) in {result.images} image(s){skipped}; {result.match_count} match(es) "
        f"at {result.metric} threshold {result.threshold:g} ({source}); wrote {args.out}"
    )
    return 0


def _extract(args: argparse.Namespace) -> int:
    from crowdkit.engine.extract import extract_faces

    result = extract_faces(args.gallery, args.out, detector=args.detector, margin=args.margin, stride=args.stride)
    skipped = f", {len(result.skipped)} unreadable file(s) skipped" if result.skipped else ""
    print(f"{len(result.faces)} face crop(s) from {result.images} image(s){skipped}; wrote {result.manifest}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from crowdkit.engine.faces import verify

    _check_threshold(args)
    result = verify(args.a, args.b, model=args.model, detector=args.detector, metric=args.metric,
                    threshold=args.threshold)
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    else:
        verdict = "same person" if result.verified else "different people"
        print(f"{verdict}: {result.metric} distance {result.distance:.4f} vs threshold {result.threshold:g} "
              f"(model {result.model})")
    return 0
