"""crowdkit: face detection, alignment, embedding and evaluation for two face-recognition studies.

The package's folders are its architecture; imports point one way only::

    common  ←  engine  ←  crowd, bias  ←  book  ←  cli

The few entry points a notebook or a user needs are exported here, lazily (so
``import crowdkit`` stays fast and loads no model)::

    import crowdkit
    result = crowdkit.find("query.jpg", "gallery/", model="dlib")
    crowdkit.verify("a.jpg", "b.jpg")

Everything else lives in the stage modules, e.g. ``crowdkit.engine.detect`` or
``crowdkit.crowd.validate``.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS = {
    "find": "crowdkit.engine.faces",
    "verify": "crowdkit.engine.faces",
    "extract_faces": "crowdkit.engine.extract",
    "get_detector": "crowdkit.engine.detect",
    "get_embedder": "crowdkit.engine.embed",
    "CrowdRunParams": "crowdkit.crowd.params",
    "run_crowd": "crowdkit.crowd.run",
    "generate_scene": "crowdkit.crowd.simulate",
    "read_annotations": "crowdkit.crowd.annotation_files",
    "evaluate_lfw": "crowdkit.bias.evaluate",
    "build_book": "crowdkit.book.build",
    "load_plan": "crowdkit.book.plans",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'crowdkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
