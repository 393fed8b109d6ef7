"""Face embedders: aligned chips in, one vector per face out.

Every backend takes chips aligned with its own template (see
:mod:`crowdkit.engine.align`) and returns float32 ``(N, dim)``; ``N = 0`` gives
``(0, dim)``::

    >>> from crowdkit.engine.align import align_face
    >>> from crowdkit.engine.embed import get_embedder
    >>> embedder = get_embedder("dlib")                                   # doctest: +SKIP
    >>> chips = [align_face(image, d.landmarks, embedder.template) for d in detections]  # doctest: +SKIP
    >>> embedder.embed(chips).shape                                       # doctest: +SKIP
    (2, 128)

Backends (:data:`EMBEDDERS`):

``dlib``
    dlib's ResNet (``dlib_face_recognition_resnet_model_v1.dat``, shipped by
    face_recognition_models, so it runs offline), run in torch from that file's
    weights (:mod:`crowdkit.engine.dlib_resnet`). 150 px ``"dlib"`` chips, 128-d.
``dlib-reference``
    the same network through dlib's own forward pass (dlib-bin), spread over
    worker processes: the reference the torch one is tested and benchmarked against.
``arcface``
    deepface's ArcFace (ResNet34, TensorFlow), fed exactly as ``DeepFace.represent``
    feeds it by default (BGR, scaled to [0, 1]) so deepface's thresholds
    apply. 112 px ``"arcface"`` chips, 512-d. Needs ``arcface_weights.h5``.
``facenet``
    facenet-pytorch's ``InceptionResnetV1`` with the VGGFace2 weights or a
    local ``checkpoint=PATH``. 160 px ``"facenet"`` chips, fixed image
    standardisation ``(x - 127.5) / 128``, 512-d, unit length.

Thresholds (``Embedder.thresholds``; distances as in :mod:`crowdkit.engine.match`):

========  ================================  ==============================  ==================
model     cosine                            euclidean                       euclidean_l2
========  ================================  ==============================  ==================
dlib      0.07 (deepface; LFW best ≈ 0.09)  0.6 (dlib's published value)    0.4 (deepface)
arcface   0.68 (deepface)                   4.15 (deepface)                 1.13 (deepface)
facenet   0.54 (= 1.04² / 2, unit vectors)  1.04 (unit vectors: = l2)       1.04 (deepface Facenet512)
========  ================================  ==============================  ==================

dlib's cosine default stays deepface's 0.07, the value the crowd study and the
``DeepFace.find`` baseline use; measured here it is strict. On LFW
``pairs.txt`` folds 1-2 (1,184 of 1,200 pairs; 9 images without a HOG face
skipped; chips from dlib's HOG detector, 5-point shape and ``get_face_chip``),
cosine 0.07 classifies 94.4 % of pairs correctly; the best threshold is
0.0855-0.0943 depending on the fold (98.5-98.8 % on the other fold), and
:data:`DLIB_COSINE_LFW` = 0.09 gives 98.7 %. Euclidean 0.6 gives 98.6 % (best
0.59-0.63). Pass ``threshold=DLIB_COSINE_LFW`` where LFW-like accuracy matters
more than agreeing with the study. facenet's values are not measured here (no
pretrained weights offline). The bias study used 0.65 for ArcFace cosine; deepface's 0.68 is the default here.
"""
from __future__ import annotations

from typing import Any

from crowdkit.common.registry import Registry
from crowdkit.engine.embed_dlib import (
    DLIB_THRESHOLDS,
    DlibEmbedder,
    DlibReferenceEmbedder,
)
from crowdkit.engine.embed_nets import ArcFaceEmbedder, FaceNetEmbedder
from crowdkit.engine.embedding import Embedder

#: dlib cosine threshold measured on LFW pairs.txt folds 1-2 (98.7 % of 1,184 pairs; deepface's 0.07: 94.4 %).
DLIB_COSINE_LFW = 0.09

#: Name → embedder class, one entry per backend (``EMBEDDERS.names()``).
EMBEDDERS: Registry[Embedder] = Registry("embedder")
for backend in (DlibEmbedder, DlibReferenceEmbedder, ArcFaceEmbedder, FaceNetEmbedder):
    EMBEDDERS.register(backend.name)(backend)
del backend

__all__ = ["DLIB_COSINE_LFW", "DLIB_THRESHOLDS", "EMBEDDERS", "get_embedder"]


def get_embedder(name: str, **options: Any) -> Embedder:
    """Build the embedder registered as ``name`` (``EMBEDDERS.names()``) with ``options``."""
    return EMBEDDERS.create(name, **options)


# --------------------------------------------------------------------------- dlib

_WORKER_MODEL: Any = None
