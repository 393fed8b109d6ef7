"""``crowdkit eval lfw``: LFW View 2 verification of dlib or a trained checkpoint."""
from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a face model on a benchmark")
    verbs = parser.add_subparsers(dest="verb", required=True)
    lfw = verbs.add_parser("lfw", help="LFW View 2: 10-fold accuracy, VAL@FAR, AUC, EER (embeddings cached)")
    lfw.add_argument("--model", default="dlib", help="'dlib' or the path of a checkpoint written by crowdkit.bias.train")
    lfw.add_argument("--pairs", type=Path, help="pairs file (default: lfw/pairs.txt in the data folder)")
    lfw.add_argument("--n-pairs", type=int, help="a balanced subset of this many pairs (quick check)")
    lfw.add_argument("--far", type=float, default=1e-3, help="FAR target for VAL (default 1e-3)")
    lfw.add_argument("--json", action="store_true", help="print one JSON line")
    lfw.set_defaults(handler=_lfw)


def _lfw(args) -> int:
    from crowdkit.bias.evaluate import evaluate_lfw

    result, pairs = evaluate_lfw(args.model, pairs_path=args.pairs, n_pairs=args.n_pairs, far_target=args.far,
                                 progress=not args.json)
    summary = {"model": str(args.model), **result.summary(), "metric": pairs.metric,
               "n_images": pairs.n_images, "n_fallbacks": pairs.n_fallbacks,
               "n_second_detector": pairs.n_second_detector}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"LFW View 2 ({result.n_pairs} pairs, {result.n_folds} folds), model {args.model}, metric {pairs.metric}")
        print(f"  accuracy {result.accuracy:.4f} ± {result.std:.4f}")
        print(f"  VAL {result.val:.4f} ± {result.val_std:.4f} @ FAR {result.far:.5f} (target {result.far_target:g})")
        print(f"  AUC {result.auc:.4f}   EER {result.eer:.4f}")
        print(f"  {pairs.n_second_detector} of {pairs.n_images} images: face found only by MTCNN; "
              f"{pairs.n_fallbacks}: no face found (central box used)")
    return 0
