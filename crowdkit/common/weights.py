"""Where each model's weights live, whether they are there, and how to get them.

Every backend that needs a weights file asks :func:`require` for it before it
builds its model. Offline (the default, see :func:`crowdkit.common.config.downloads_allowed`)
a missing file fails at once with a :class:`~crowdkit.common.exceptions.WeightsMissingError`
that names the file, the folder it must be put in, the URL it comes from and an
offline backend to use instead — never a network time-out from inside deepface.
With ``CROWDKIT_ALLOW_DOWNLOAD=1`` the package that owns the file downloads it
through its own code path (deepface's ``download_weights_if_necessary``,
facenet-pytorch's ``load_weights``).

Example::

    >>> from crowdkit.common.weights import require, status
    >>> require("dlib-resnet").name
    'dlib_face_recognition_resnet_model_v1.dat'
    >>> [(s.name, s.present) for s in status()]  # doctest: +SKIP

Nothing here imports a heavy package at import time; folders are resolved when
asked for.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from crowdkit.common import config
from crowdkit.common.io import atomic_path
from crowdkit.common.exceptions import WeightsMissingError

logger = logging.getLogger(__name__)

DEEPFACE_RELEASES = "https://github.com/serengil/deepface_models/releases/download/v1.0"
FACENET_RELEASES = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9"
OFFLINE_DETECTORS = "detector 'mtcnn', 'dlib-hog' or 'opencv'"
OFFLINE_EMBEDDER = "embedder 'dlib'"


# --------------------------------------------------------------------------- folders

def face_recognition_models_dir() -> Path:
    """The ``models/`` folder of the face_recognition_models package, found without importing it.

    Importing the package imports ``pkg_resources``, which setuptools ≥ 81 no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        # Where it would be: the folder pip installs packages into.
        import sysconfig

        return Path(sysconfig.get_paths()["purelib"]) / "face_recognition_models" / "models"
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def deepface_weights_dir() -> Path:
    """``$DEEPFACE_HOME/.deepface/weights``: where deepface and retina-face look for weights."""
    return config.deepface_home() / ".deepface" / "weights"


def crowdkit_weights_dir() -> Path:
    """``$CROWDKIT_HOME/weights``: weights crowdkit converts or downloads itself (e.g. dlib's ResNet for torch)."""
    return config.home() / "weights"


def crowdkit_facenet_dir() -> Path:
    return crowdkit_weights_dir() / "facenet"


def torch_checkpoints_dir() -> Path:
    """Where facenet-pytorch's ``load_weights`` caches downloads: ``get_torch_home()/checkpoints``.

    Mirrors ``torch.hub._get_torch_home`` without importing torch.
    """
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(torch_home).expanduser() / "checkpoints"


# --------------------------------------------------------------------------- downloaders
# Each one runs the owning package's own download code (online users get the
# real path); they are only called when downloads are allowed.

def _download_arcface(spec: "WeightSpec") -> None:
    _set_deepface_env()
    from deepface.commons import weight_utils
    from deepface.models.facial_recognition.tf.ArcFace import WEIGHTS_URL

    weight_utils.download_weights_if_necessary(file_name=spec.filename, source_url=WEIGHTS_URL)


def _download_retinaface(spec: "WeightSpec") -> None:
    _set_deepface_env()
    from retinaface.commons import weight_utils
    from retinaface.model.retinaface_model import WEIGHTS_URLS

    weight_utils.download_weights_if_necessary(file_name=spec.filename, source_urls=WEIGHTS_URLS)


def _download_facenet(spec: "WeightSpec") -> None:
    from facenet_pytorch import InceptionResnetV1

    # load_weights downloads into torch_checkpoints_dir() when the file is not there.
    InceptionResnetV1(pretrained="vggface2", classify=False)


def _download_dlib(spec: "WeightSpec") -> None:
    raise WeightsMissingError(
        f"{spec.filename} is shipped by the face_recognition_models package, which is missing or incomplete "
        f"(looked in {spec.path()}). Fix: pip install face_recognition_models==0.3.0"
    )


def _set_deepface_env() -> None:
    prepare_tensorflow()


def prepare_tensorflow() -> None:
    """Call before importing tensorflow, deepface or retinaface (cheap; idempotent).

    - sets ``TF_USE_LEGACY_KERAS=1`` (retinaface breaks under Keras 3) and
      points ``DEEPFACE_HOME`` at :func:`crowdkit.common.config.deepface_home` unless
      either is already set;
    - imports ``triton`` first when it is installed: importing it *after*
      TensorFlow kills the process with a segmentation fault (TensorFlow
      2.19 with torch 2.14 here), and torchvision, so facenet-pytorch's MTCNN,
      imports it through ``torch._dynamo``. Imported first, both work.
    """
    import sys

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("DEEPFACE_HOME", str(config.deepface_home()))
    if "triton" in sys.modules:
        return
    if "tensorflow" in sys.modules:
        if importlib.util.find_spec("triton") is not None:
            logger.warning("TensorFlow was imported before triton; importing torchvision (facenet-pytorch, "
                           "MTCNN) in this process may now crash. Call crowdkit.common.weights.prepare_tensorflow() "
                           "before importing TensorFlow.")
        return
    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401  (order matters, see above)


# --------------------------------------------------------------------------- specs

@dataclass(frozen=True)
class WeightSpec:
    """One weights file a backend needs.

    ``folder`` is a callable so that environment variables (``CROWDKIT_HOME``,
    ``DEEPFACE_HOME``, ``TORCH_HOME``) are read when the file is looked for, not
    at import time. ``also_in`` lists other folders where an existing copy is
    accepted (facenet-pytorch's own download cache).
    """

    name: str
    filename: str
    folder: Callable[[], Path]
    source_url: str
    how_to_get: str
    offline_alternative: str
    used_by: tuple[str, ...]
    also_in: tuple[Callable[[], Path], ...] = ()
    downloader: Callable[["WeightSpec"], None] | None = field(default=None, repr=False, compare=False)

    def path(self) -> Path:
        """Where the file must be put (it may not exist)."""
        return Path(self.folder()) / self.filename

    def candidates(self) -> list[Path]:
        return [self.path()] + [Path(folder()) / self.filename for folder in self.also_in]

    def find(self) -> Path | None:
        """The first existing, non-empty copy, or None."""
        for candidate in self.candidates():
            if candidate.is_file() and candidate.stat().st_size > 0:
                return candidate
        return None


def _dlib(name: str, filename: str, used_by: tuple[str, ...], alternative: str) -> WeightSpec:
    return WeightSpec(
        name=name,
        filename=filename,
        folder=face_recognition_models_dir,
        source_url=f"https://dlib.net/files/{filename}.bz2",
        how_to_get="shipped with the face_recognition_models package: pip install face_recognition_models==0.3.0",
        offline_alternative=alternative,
        used_by=used_by,
        downloader=_download_dlib,
    )


SPECS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        _dlib("dlib-resnet", "dlib_face_recognition_resnet_model_v1.dat", ("embedder dlib", "deepface Dlib"),
              OFFLINE_EMBEDDER + " (it is shipped; reinstall face_recognition_models)"),
        _dlib("dlib-shape5", "shape_predictor_5_face_landmarks.dat",
              ("detector dlib-hog", "detector dlib-mmod", "deepface detector dlib"),
              OFFLINE_DETECTORS.replace("'dlib-hog' or ", "")),
        _dlib("dlib-shape68", "shape_predictor_68_face_landmarks.dat", ("landmarks (68 points)",),
              "the 5-point landmarks every detector returns"),
        _dlib("dlib-mmod", "mmod_human_face_detector.dat", ("detector dlib-mmod",), OFFLINE_DETECTORS),
        WeightSpec(
            name="retinaface",
            filename="retinaface.h5",
            folder=deepface_weights_dir,
            source_url=f"{DEEPFACE_RELEASES}/retinaface.h5",
            how_to_get="downloaded by the retina-face package on first use (mirror: huggingface.co/serengil/deepface)",
            offline_alternative=OFFLINE_DETECTORS,
            used_by=("detector retinaface", "deepface detector retinaface"),
            downloader=_download_retinaface,
        ),
        WeightSpec(
            name="arcface",
            filename="arcface_weights.h5",
            folder=deepface_weights_dir,
            source_url=f"{DEEPFACE_RELEASES}/arcface_weights.h5",
            how_to_get="downloaded by deepface on first use",
            offline_alternative=OFFLINE_EMBEDDER,
            used_by=("embedder arcface", "deepface ArcFace"),
            downloader=_download_arcface,
        ),
        WeightSpec(
            name="facenet-vggface2",
            filename="20180402-114759-vggface2.pt",
            folder=crowdkit_facenet_dir,
            source_url=f"{FACENET_RELEASES}/20180402-114759-vggface2.pt",
            how_to_get="downloaded by facenet-pytorch (InceptionResnetV1(pretrained='vggface2')) on first use, "
                       "or pass checkpoint=PATH to the facenet embedder",
            offline_alternative=OFFLINE_EMBEDDER + " (or embedder 'facenet' with checkpoint=PATH)",
            used_by=("embedder facenet",),
            also_in=(torch_checkpoints_dir,),
            downloader=_download_facenet,
        ),
    )
}


def get_spec(name: str) -> WeightSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise WeightsMissingError(f"unknown weights {name!r}; known: {', '.join(sorted(SPECS))}") from None


def missing_message(spec: WeightSpec) -> str:
    """The text of the error raised when ``spec``'s file is missing offline."""
    where = spec.path()
    others = [str(path) for path in spec.candidates()[1:]]
    also = f" (or {', '.join(others)})" if others else ""
    return (
        f"weights file {spec.filename} for {spec.name} ({', '.join(spec.used_by)}) is missing and downloads are off. "
        f"Put it in {where.parent}/{also} — get it from {spec.source_url} ({spec.how_to_get}), "
        f"or allow the download: CROWDKIT_ALLOW_DOWNLOAD=1, or `crowdkit weights download {spec.name}`. "
        f"Offline, use {spec.offline_alternative} instead."
    )


def require(name: str) -> Path:
    """The path of weights file ``name`` (a key of :data:`SPECS`), downloading it only if allowed.

    Raises
    ------
    WeightsMissingError
        The file is missing and downloads are off (immediately, no network), or
        the download did not leave the file where expected.
    """
    spec = get_spec(name)
    found = spec.find()
    if found is not None:
        return found
    if not config.downloads_allowed() or spec.downloader is None:
        raise WeightsMissingError(missing_message(spec))
    logger.info("downloading %s from %s", spec.filename, spec.source_url)
    try:
        spec.downloader(spec)
    except WeightsMissingError:
        raise
    except Exception as error:  # network, HTTP or file errors from the owning package
        raise WeightsMissingError(
            f"downloading {spec.filename} from {spec.source_url} failed ({type(error).__name__}: {error}). "
            f"Download it by hand and put it in {spec.path().parent}/, or use {spec.offline_alternative}."
        ) from error
    found = spec.find()
    if found is None:
        raise WeightsMissingError(
            f"downloading {spec.filename} did not leave it in {spec.path().parent}; "
            f"download {spec.source_url} by hand and put it there"
        )
    return found


@dataclass(frozen=True)
class WeightStatus:
    name: str
    present: bool
    path: Path  # the existing copy, or where it must be put
    size: int  # bytes, 0 when missing
    how_to_get: str
    used_by: tuple[str, ...]
    source_url: str


def status() -> list[WeightStatus]:
    """One entry per :data:`SPECS` entry: present or not, where, and how to get it."""
    rows = []
    for spec in SPECS.values():
        found = spec.find()
        rows.append(WeightStatus(
            name=spec.name,
            present=found is not None,
            path=found or spec.path(),
            size=found.stat().st_size if found else 0,
            how_to_get=spec.how_to_get,
            used_by=spec.used_by,
            source_url=spec.source_url,
        ))
    return rows


#: The dlib files deepface's ``Dlib`` recognizer and ``dlib`` detector load from its weights folder.
DEEPFACE_DLIB_FILES = ("dlib-resnet", "dlib-shape5")


def install_dlib_for_deepface() -> list[Path]:
    """Copy dlib's ResNet and 5-point files into ``$DEEPFACE_HOME/.deepface/weights/``.

    After this, ``DeepFace.find(..., model_name="Dlib")`` and
    ``detector_backend="dlib"`` run offline. The files are copied, not linked:
    ``DEEPFACE_HOME`` outlives any one virtual environment, and a link into a
    removed ``.venv`` would break deepface for every other checkout.
    Idempotent: an identical-size copy is left alone; a link is replaced by a copy.

    Returns
    -------
    list of Path
        The files in deepface's folder.
    """
    target_dir = deepface_weights_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    installed = []
    for name in DEEPFACE_DLIB_FILES:
        source = require(name).resolve()
        target = target_dir / source.name
        if target.is_file() and not target.is_symlink() and target.stat().st_size == source.stat().st_size:
            installed.append(target)
            continue
        if target.is_symlink():
            target.unlink()
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        logger.info("installed %s for deepface", target)
        installed.append(target)
    return installed
