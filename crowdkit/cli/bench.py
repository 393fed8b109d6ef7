"""``crowdkit bench find``: time crowdkit's find against DeepFace.find (a benchmark, not a test)."""
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


def _find(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before deepface imports TensorFlow
    from crowdkit.engine.bench import run_find_benchmark

    result = run_find_benchmark(faces=args.faces, detector=args.detector, workdir=args.workdir)
    print(result.report())
    return 0
