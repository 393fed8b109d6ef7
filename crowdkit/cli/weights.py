"""``crowdkit weights status``, ``crowdkit weights install-dlib`` and ``crowdkit weights download NAME``."""
from __future__ import annotations

import json
import os

from crowdkit.common import weights


def register(subparsers) -> None:
    parser = subparsers.add_parser("weights", help="list, place or download model weights")
    verbs = parser.add_subparsers(dest="verb", required=True)
    status = verbs.add_parser("status", help="per backend: are its weights present, where, how to get them")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)
    install = verbs.add_parser("install-dlib", help="link dlib's model files where deepface looks (offline Dlib)")
    install.set_defaults(handler=_install_dlib)
    download = verbs.add_parser("download", help="download one weights file through its package (needs internet)")
    download.add_argument("name", choices=sorted(weights.SPECS))
    download.set_defaults(handler=_download)


def _status(args) -> int:
    rows = weights.status()
    if args.json:
        print(json.dumps([{"name": r.name, "present": r.present, "path": str(r.path), "size": r.size,
                           "used_by": list(r.used_by), "how_to_get": r.how_to_get, "source_url": r.source_url}
                          for r in rows], indent=2))
        return 0
    width = max(len(r.name) for r in rows)
    print(f"{'weights':<{width}}  present  {'size':>8}  path / how to get it")
    for r in rows:
        size = f"{r.size / 1e6:.1f} MB" if r.present else "-"
        print(f"{r.name:<{width}}  {'yes' if r.present else 'NO':<7}  {size:>8}  {r.path}")
        if not r.present:
            print(f"{'':<{width}}  {'':<7}  {'':>8}  {r.how_to_get}; URL {r.source_url}")
    return 0


def _install_dlib(args) -> int:
    for path in weights.install_dlib_for_deepface():
        target = f" -> {path.resolve()}" if path.is_symlink() else " (copy)"
        print(f"{path}{target}")
    return 0


def _download(args) -> int:
    os.environ["CROWDKIT_ALLOW_DOWNLOAD"] = "1"
    path = weights.require(args.name)
    print(path)
    return 0
