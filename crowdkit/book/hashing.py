"""Content hashes of runs: a run is skipped when the hash of everything it reads is unchanged."""
from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

from crowdkit import __version__
from crowdkit.book.plans import RunSpec
from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError, CrowdkitError
from crowdkit.common.io import sha256_bytes, sha256_file

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- hashing

@functools.lru_cache(maxsize=None)
def crowdkit_source_hash() -> str:
    """sha256 over every ``crowdkit/**/*.py`` (path and bytes): a code change re-runs the book."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for file in sorted(package.rglob("*.py")):
        digest.update(file.relative_to(package).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _data_root() -> Path | None:
    try:
        return config.data_root()
    except CrowdkitError:
        return None


def _folder_fingerprint(folder: Path) -> str:
    """A dataset folder is identified by its data root's SHA256SUMS; other folders by names, sizes, mtimes."""
    data = _data_root()
    if data is not None and (data / "SHA256SUMS").is_file() and folder.resolve().is_relative_to(data):
        return "SHA256SUMS:" + sha256_file(data / "SHA256SUMS")
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "listing:" + digest.hexdigest()


def input_checksums(parameters: Mapping[str, Any], root: Path) -> dict[str, str]:
    """Checksums of the files and folders that parameter values name (strings or lists of strings).

    A relative value is resolved against ``root`` (the kernel's working
    directory). Files get their sha256; folders the fingerprint of
    :func:`_folder_fingerprint`. Values that name nothing on disk are ignored,
    and so is anything under ``book/runs``: runs' outputs are covered by the
    hashes of the runs that made them (a summary page depends on those runs).
    """
    found: dict[str, str] = {}
    outputs = (root / "book" / "runs").resolve()

    def visit(value: Any) -> None:
        if isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, str) and value.strip() and len(value) < 4096:
            candidate = Path(value).expanduser()
            candidate = candidate if candidate.is_absolute() else root / candidate
            try:
                if candidate.resolve().is_relative_to(outputs):
                    return
                if candidate.is_file():
                    found[value] = sha256_file(candidate)
                elif candidate.is_dir():
                    found[value] = _folder_fingerprint(candidate)
            except OSError:  # a name too long for the file system, a permission problem: not an input
                pass

    for value in parameters.values():
        visit(value)
    return found


def content_hash(spec: RunSpec, dependency_hashes: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """The hash that decides whether ``spec`` must run, and what went into it."""
    if not spec.notebook.is_file():
        raise ConfigError(f"{spec.key}: notebook {spec.notebook} does not exist")
    parts = {
        "notebook": sha256_file(spec.notebook),
        "parameters": json.loads(json.dumps(spec.parameters, sort_keys=True, default=str)),
        "inputs": input_checksums(spec.parameters, spec.root),
        "crowdkit_version": __version__,
        "crowdkit_source": crowdkit_source_hash(),
        "dependencies": dict(sorted((dependency_hashes or {}).items())),
        "title": spec.title,
    }
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode()), parts


def read_sidecar(spec: RunSpec) -> dict[str, Any]:
    try:
        return json.loads(spec.sidecar_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}

