"""``crowdkit data check`` and ``crowdkit data link``."""
from __future__ import annotations

import json
from pathlib import Path

from crowdkit.common import config
from crowdkit.common.datacheck import check_data
from crowdkit.common.exceptions import DataNotFoundError


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="check or link the datasets")
    verbs = parser.add_subparsers(dest="verb", required=True)
    check = verbs.add_parser("check", help="verify SHA256SUMS and list what is present")
    check.add_argument("--root", type=Path, help="data folder (default: CROWDKIT_DATA or ../shared/data)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=_check)
    link = verbs.add_parser("link", help="make data/external point at a data folder")
    link.add_argument("target", type=Path)
    link.set_defaults(handler=_link)


def _check(args) -> int:
    report = check_data(args.root)
    if args.json:
        print(json.dumps({"root": str(report.root), "checked": report.checked, "missing": list(report.missing),
                          "mismatched": list(report.mismatched), "files": report.files_per_dataset, "ok": report.ok}))
    else:
        print(f"data folder: {report.root}")
        for dataset, count in sorted(report.files_per_dataset.items()):
            print(f"  {dataset:<12} {count:>6} files present")
        print(f"{report.checked} files listed, {len(report.missing)} missing, {len(report.mismatched)} altered")
        for name in report.missing[:20]:
            print(f"  missing: {name}")
        for name in report.mismatched[:20]:
            print(f"  altered: {name}")
    return 0 if report.ok else 1


def _link(args) -> int:
    target = args.target.expanduser().resolve()
    if not (target / "SHA256SUMS").is_file() and not (target / "lfw").is_dir():
        raise DataNotFoundError(f"{target} does not look like a crowdkit data folder (no SHA256SUMS, no lfw/)")
    link = config.PROJECT_ROOT / "data" / "external"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target, target_is_directory=True)
    print(f"{link} -> {target}")
    return 0
