"""Where crowdkit finds data, keeps caches and weights, and whether it may download.

Nothing here runs at import time; every location is resolved when asked for.

Environment variables (all optional):

``CROWDKIT_DATA``
    Folder holding the datasets (``lfw/``, ``utkface/``, ``celeba/``,
    ``att_faces/``, ``fixtures/``, ``SHA256SUMS``). Default: ``data/external``
    inside the project if it exists (``crowdkit data link`` makes it), else
    ``../shared/data`` beside the project.
``CROWDKIT_HOME``
    Root for caches and model weights. Default: ``~/.crowdkit``.
``CROWDKIT_ALLOW_DOWNLOAD``
    ``1`` lets backends download missing weights (RetinaFace, ArcFace,
    FaceNet). Default ``0``: a missing file fails at once with instructions,
    never with a network time-out.
"""
from __future__ import annotations

import os
from pathlib import Path

from crowdkit.common.exceptions import DataNotFoundError

#: The project checkout (the folder holding pyproject.toml) when crowdkit runs
#: from a clone; plans, notebooks and the book are found relative to it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _candidate_data_roots() -> list[Path]:
    env = os.environ.get("CROWDKIT_DATA")
    if env:
        return [Path(env).expanduser()]
    return [PROJECT_ROOT / "data" / "external", PROJECT_ROOT.parent / "shared" / "data"]


def data_root() -> Path:
    """The dataset folder; raises :class:`DataNotFoundError` naming every place tried."""
    candidates = _candidate_data_roots()
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    tried = ", ".join(str(p) for p in candidates)
    raise DataNotFoundError(
        f"no data folder found (tried {tried}). Set CROWDKIT_DATA to the folder "
        "holding lfw/, utkface/, celeba/ and fixtures/, or run `crowdkit data link PATH`."
    )


def data_path(*parts: str) -> Path:
    """A path inside the data folder that must exist, e.g. ``data_path("lfw", "pairs.txt")``."""
    path = data_root().joinpath(*parts)
    if not path.exists():
        raise DataNotFoundError(
            f"{path} does not exist. Check that {data_root()} is a complete copy "
            "(`crowdkit data check` lists what is present)."
        )
    return path


def home() -> Path:
    return Path(os.environ.get("CROWDKIT_HOME", "~/.crowdkit")).expanduser()


def cache_dir(*parts: str) -> Path:
    """A cache folder under ``$CROWDKIT_HOME/cache``, created on demand; safe to delete."""
    path = home().joinpath("cache", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def weights_dir() -> Path:
    path = home() / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path


def deepface_home() -> Path:
    """The folder deepface is told to use (it appends ``.deepface/weights`` itself)."""
    return Path(os.environ.get("DEEPFACE_HOME", str(home() / "deepface"))).expanduser()


def downloads_allowed() -> bool:
    return os.environ.get("CROWDKIT_ALLOW_DOWNLOAD", "0").strip().lower() in {"1", "true", "yes"}


#: Set by the book runner in every kernel it starts: the project the build runs in
#: (``crowdkit book build --root``, which may be a copy of this checkout).
BOOK_ROOT_ENV = "CROWDKIT_BOOK_ROOT"


def project_root() -> Path:
    """The project a notebook works in: the build's root inside a runner's kernel, else this checkout.

    Relative paths a plan passes (``run_dir``, ``runs_dir``) are relative to it.
    """
    return Path(os.environ.get(BOOK_ROOT_ENV) or PROJECT_ROOT)


def display_path(path: str | os.PathLike) -> str:
    """A path as a page may show it: ``$CROWDKIT_HOME/…`` under the home, project-relative inside the project."""
    path = Path(path).expanduser()
    for root, label in ((home(), "$CROWDKIT_HOME"), (project_root(), ""), (PROJECT_ROOT, "")):
        try:
            rest = path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            continue
        return f"{label}/{rest}" if label else rest
    return path.name
