"""The ``crowdkit`` command: a thin argparse layer over the library.

Each sub-module adds its verbs with ``register(subparsers)``; a verb's handler
parses nothing itself and calls one library function. Errors derived from
:class:`crowdkit.common.exceptions.CrowdkitError` are printed as one line (exit 2),
never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from crowdkit.common.exceptions import CrowdkitError, RunInterruptedError

#: Sub-modules of crowdkit.cli, one per group of verbs.
COMMAND_MODULES = ("data", "weights", "faces", "bench", "annotations", "runs", "evaluate", "simulate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crowdkit", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except RunInterruptedError as error:
        print(f"crowdkit {args.command}: {error}", file=sys.stderr)
        return 130
    except CrowdkitError as error:
        print(f"crowdkit {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
