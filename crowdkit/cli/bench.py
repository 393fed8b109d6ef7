"""``crowdkit bench find`` and ``bench video``: crowdkit against deepface and the study's pipeline (benchmarks, not tests)."""
from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks (minutes; print seconds and ratios)")
    verbs = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    find = verbs.add_parser(
        "find",
        help="crowdkit find vs DeepFace.find (Dlib, same detector, cosine) on the faces extracted from >= 1,000 LFW "
        "photos: cold, warm (and its floor), bare inference, agreement",
        description="Ends with one line: speedup_cold=... speedup_warm=... agreement=...",
    )
    find.add_argument("--faces", type=int, default=1000,
                      help="LFW photos whose faces are extracted into the gallery (default 1000)")
    find.add_argument("--detector", default="opencv",
                      help="detector in both (default opencv: Haar in deepface and in crowdkit)")
    find.add_argument("--workdir", default=None,
                      help="where the gallery crops and caches go (default: $CROWDKIT_HOME/cache/bench)")
    find.set_defaults(handler=_find)
    video = verbs.add_parser(
        "video",
        help="the study's pipeline (frames as JPEGs, a detector per frame, crops, DeepFace.find re-detecting each "
        "crop) vs crowdkit find --gallery VIDEO on one simulated scene",
        description="Ends with one line: speedup=... agreement=... faces_both=...",
    )
    video.add_argument("--challenge", default="normal", help="the scene's challenge (default normal)")
    video.add_argument("--member", default="Peter", help="whose query photo is searched for (default Peter)")
    video.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    video.add_argument("--frames", type=int, default=60, help="frames rendered and searched (default 60)")
    video.add_argument("--stride", type=int, default=1, help="every n-th frame is searched (default 1)")
    video.add_argument("--detector", default="yunet", help="detector in both (default yunet, offline in both)")
    video.add_argument("--workdir", default=None,
                       help="where frames, crops and caches go (default: $CROWDKIT_HOME/cache/bench/video)")
    video.set_defaults(handler=_video)


def _find(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before deepface imports TensorFlow
    from crowdkit.engine.bench import run_find_benchmark

    result = run_find_benchmark(faces=args.faces, detector=args.detector, workdir=args.workdir)
    print(result.report())
    return 0


def _video(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before deepface imports TensorFlow
    from crowdkit.crowd.bench_video import run_video_benchmark

    result = run_video_benchmark(challenge=args.challenge, member=args.member, seed=args.seed,
                                 max_frames=args.frames, stride=args.stride, detector=args.detector,
                                 workdir=args.workdir)
    print(result.report())
    return 0
