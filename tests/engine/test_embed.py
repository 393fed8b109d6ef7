"""crowdkit.engine.embed: dlib on real LFW photos; arcface and facenet loading paths (plumbing, random weights)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from crowdkit.engine.embed import EMBEDDERS, get_embedder
from crowdkit.engine.embed_nets import load_facenet_state_dict
from crowdkit.engine.embedding import Embedder
from crowdkit.common.exceptions import ConfigError, InvalidImageError, UnknownBackendError, WeightsMissingError
from crowdkit.common.io import read_image

SAME_A, SAME_B, OTHER = ("Colin_Powell", 1), ("Colin_Powell", 2), ("Tony_Blair", 1)


@pytest.fixture(scope="module")
def dlib_embedder():
    embedder = get_embedder("dlib-reference", workers=2, min_parallel=2)
    yield embedder
    embedder.close()


def _lfw(lfw_dir, person: str, number: int) -> np.ndarray:
    return read_image(lfw_dir / person / f"{person}_{number:04d}.jpg")


def _dlib_reference_chip(image: np.ndarray) -> np.ndarray:
    """dlib's own pipeline (HOG, 5-point shape, get_face_chip): the chips the ResNet was trained on."""
    import dlib

    from crowdkit.common.weights import require

    detections = dlib.get_frontal_face_detector()(image, 1)
    assert len(detections) >= 1
    shape = dlib.shape_predictor(str(require("dlib-shape5")))(image, detections[0])
    return dlib.get_face_chip(image, shape, size=150, padding=0.25)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def reference_chips(lfw_dir) -> np.ndarray:
    return np.stack([_dlib_reference_chip(_lfw(lfw_dir, *who)) for who in (SAME_A, SAME_B, OTHER)])


def test_dlib_same_person_is_closer_than_another(dlib_embedder, reference_chips):
    a, b, other = dlib_embedder.embed(reference_chips)
    assert np.linalg.norm(a - b) < dlib_embedder.thresholds["euclidean"] < np.linalg.norm(a - other)
    assert _cosine(a, b) < dlib_embedder.thresholds["cosine"] < _cosine(a, other)


def test_dlib_crowdkit_alignment_gives_the_same_verdicts(dlib_embedder, lfw_dir, reference_chips):
    """crowdkit's detector + "dlib" template give the same verdicts as dlib's own chips.

    Alignment moves a dlib embedding by ~0.1-0.3 (dlib's own 5- and 68-point chips of one photo differ
    that much), so the check is: our chip is closer to dlib's chip of the same photo than two photos of
    the same person are to each other."""
    detect = pytest.importorskip("crowdkit.engine.detect", reason="crowdkit.engine.detect not written yet")
    from crowdkit.engine.align import align_face

    detector = detect.get_detector("dlib-hog")
    chips = []
    for who in (SAME_A, SAME_B, OTHER):
        image = _lfw(lfw_dir, *who)
        chips.append(align_face(image, detector.detect(image)[0].landmarks, dlib_embedder.template))
    ours = dlib_embedder.embed(np.stack(chips))
    reference = dlib_embedder.embed(reference_chips)
    a, b, other = ours
    assert np.linalg.norm(a - b) < 0.6 < np.linalg.norm(a - other)
    assert np.linalg.norm(ours - reference, axis=1).max() < np.linalg.norm(reference[0] - reference[1])


def test_dlib_workers_agree_with_one_process(dlib_embedder, reference_chips):
    chips = np.concatenate([reference_chips] * 3)  # 9 chips: several chunks over 2 workers, order kept
    parallel = dlib_embedder.embed(chips)
    single = get_embedder("dlib-reference", workers=1).embed(chips)
    assert parallel.dtype == np.float32 and parallel.shape == (9, 128)
    np.testing.assert_allclose(parallel, single, atol=1e-6)
    np.testing.assert_allclose(parallel[:3], parallel[3:6], atol=1e-6)


def test_dlib_warm_up_and_two_threads_at_once_give_the_same_vectors(reference_chips):
    from concurrent.futures import ThreadPoolExecutor

    embedder = get_embedder("dlib-reference", workers=2, min_parallel=2)
    try:
        embedder.warm_up()  # returns at once; the workers load their model in the background
        embedder.warm_up()  # a second call does nothing
        batch = np.concatenate([reference_chips] * 3)  # 9 chips: several tasks for the pool
        with ThreadPoolExecutor(2) as threads:
            pooled = list(threads.map(embedder.embed, [batch, batch[::-1]]))
            single = list(threads.map(embedder.embed, [reference_chips[:1], reference_chips[1:2]]))  # in-process
        one = get_embedder("dlib-reference", workers=1).embed(reference_chips)
        np.testing.assert_allclose(pooled[0], np.concatenate([one] * 3), atol=1e-5)
        np.testing.assert_allclose(pooled[1], np.concatenate([one] * 3)[::-1], atol=1e-5)
        np.testing.assert_allclose(np.concatenate(single), one[:2], atol=1e-5)
    finally:
        embedder.close()


def test_empty_and_list_inputs(dlib_embedder, reference_chips):
    empty = dlib_embedder.embed(np.zeros((0, 150, 150, 3), np.uint8))
    assert empty.shape == (0, 128) and empty.dtype == np.float32
    assert dlib_embedder.embed([]).shape == (0, 128)
    np.testing.assert_allclose(dlib_embedder.embed(list(reference_chips[:1])),
                               dlib_embedder.embed(reference_chips[:1]), atol=1e-6)


@pytest.mark.parametrize("chips, match", [
    (np.zeros((150, 150, 3), np.uint8), "one chip"),
    (np.zeros((2, 112, 112, 3), np.uint8), "'dlib' template"),
    (np.zeros((2, 150, 150), np.uint8), r"\(N, 150, 150, 3\)"),
    (np.zeros((2, 150, 150, 3), np.float32), "uint8"),
])
def test_wrong_chips_are_refused_with_the_fix(dlib_embedder, chips, match):
    if match == "one chip":
        with pytest.raises(InvalidImageError, match="one shape"):
            dlib_embedder.embed([np.zeros((150, 150, 3), np.uint8), np.zeros((112, 112, 3), np.uint8)])
    with pytest.raises(InvalidImageError, match=match):
        dlib_embedder.embed(chips)


def test_registry_and_contract_attributes():
    assert EMBEDDERS.names() == ["arcface", "dlib", "dlib-reference", "facenet"]
    with pytest.raises(UnknownBackendError, match="arcface, dlib, dlib-reference, facenet"):
        get_embedder("vgg-face")
    for name, dim, template in (("dlib", 128, "dlib"), ("dlib-reference", 128, "dlib"), ("arcface", 512, "arcface"),
                                ("facenet", 512, "facenet")):
        cls = EMBEDDERS.get(name)
        assert issubclass(cls, Embedder) and cls.dim == dim and cls.template == template
        assert cls.default_metric in cls.thresholds and {"cosine", "euclidean"} <= set(cls.thresholds)


def test_dlib_version_names_package_and_weights(dlib_embedder):
    assert dlib_embedder.version.startswith("dlib-") and "dlib_face_recognition_resnet_model_v1.dat" in dlib_embedder.version
    assert dlib_embedder.cache_id == f"dlib-reference@{dlib_embedder.version}/dlib"
    torch_dlib = get_embedder("dlib")
    assert torch_dlib.version.startswith("torch-dlib-resnet/") and torch_dlib.cache_id.startswith("dlib@torch-")


def test_the_torch_dlib_embedder_reproduces_dlibs_own_forward_pass(dlib_embedder, reference_chips):
    """The ``dlib`` name runs dlib's network in torch; dlib-bin's forward pass is the reference (1e-4 per component)."""
    from crowdkit.engine.match import pairwise_distances

    ours, theirs = get_embedder("dlib").embed(reference_chips), dlib_embedder.embed(reference_chips)
    assert np.abs(ours - theirs).max() <= 1e-4
    for threshold in (0.07, 0.09):
        assert np.array_equal(pairwise_distances(ours, ours, metric="cosine") <= threshold,
                              pairwise_distances(theirs, theirs, metric="cosine") <= threshold)


def test_capabilities_are_declared_on_the_base_class():
    assert Embedder.workers == 1 and Embedder.max_in_flight == 1 and Embedder.warm_up(None) is None
    dlib = EMBEDDERS.get("dlib-reference")
    assert dlib.max_in_flight == 2 and dlib.warm_up is not Embedder.warm_up
    assert EMBEDDERS.get("dlib").workers == 1  # torch spreads one batch over the cores itself
    assert EMBEDDERS.get("facenet").max_in_flight == 1 and EMBEDDERS.get("arcface").warm_up is Embedder.warm_up


def test_workers_option():
    assert get_embedder("dlib-reference").workers == os.cpu_count()
    with pytest.raises(ConfigError, match="workers"):
        get_embedder("dlib-reference", workers=0)
    with pytest.raises(ConfigError, match="threads"):
        get_embedder("dlib", threads=0)


# --------------------------------------------------------------------------- arcface

def test_arcface_offline_without_weights_fails_before_tensorflow(offline_home):
    with pytest.raises(WeightsMissingError, match="arcface_weights.h5"):
        get_embedder("arcface")


@pytest.mark.slow
def test_arcface_plumbing_with_random_weights(offline_home, reference_chips):
    """PLUMBING CHECK, NOT A RESULT: ArcFace's architecture with random weights saved under the expected
    name loads through deepface's real loading path and returns (N, 512) float32."""
    from crowdkit.common.weights import SPECS, prepare_tensorflow

    prepare_tensorflow()
    from deepface.models.facial_recognition.tf import ArcFace
    from tensorflow.keras.layers import BatchNormalization, Dense, Dropout, Flatten
    from tensorflow.keras.models import Model

    base = ArcFace.ResNet34()  # as ArcFace.load_model builds it, minus the download
    x = BatchNormalization(momentum=0.9, epsilon=2e-5)(base.outputs[0])
    x = Flatten()(Dropout(0.4)(x))
    x = Dense(512, activation=None, use_bias=True, kernel_initializer="glorot_normal")(x)
    model = Model(base.inputs[0], BatchNormalization(momentum=0.9, epsilon=2e-5, name="embedding", scale=True)(x))
    target = SPECS["arcface"].path()
    target.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(target))

    embedder = get_embedder("arcface", batch_size=2)
    import cv2

    chips = np.stack([cv2.resize(chip, (112, 112)) for chip in reference_chips])
    vectors = embedder.embed(chips)
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32 and np.isfinite(vectors).all()
    assert embedder.embed(chips[:0]).shape == (0, 512)
    assert "arcface_weights.h5" in embedder.version


# --------------------------------------------------------------------------- facenet

def test_facenet_offline_without_weights_names_the_file(offline_home):
    with pytest.raises(WeightsMissingError, match="20180402-114759-vggface2.pt"):
        get_embedder("facenet")


@pytest.fixture(scope="module")
def random_facenet_state():
    import torch
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    return InceptionResnetV1(pretrained=None, classify=True, num_classes=7).eval().state_dict()


def test_facenet_plumbing_with_a_random_checkpoint(tmp_path, random_facenet_state):
    """PLUMBING CHECK, NOT A RESULT: a trainer-style checkpoint (wrapped, DataParallel names, classifier
    head) of a randomly initialised InceptionResnetV1 loads and embeds unit vectors."""
    import torch

    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in random_facenet_state.items()}}
    torch.save(wrapped, tmp_path / "trained.pt")
    torch.save(random_facenet_state, tmp_path / "bare.pt")
    chips = np.random.default_rng(0).integers(0, 256, (3, 160, 160, 3), dtype=np.uint8)
    one = get_embedder("facenet", checkpoint=tmp_path / "trained.pt", batch_size=2)
    vectors = one.embed(chips)
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(get_embedder("facenet", checkpoint=tmp_path / "bare.pt").embed(chips), vectors, atol=1e-5)
    assert one.embed(chips[:0]).shape == (0, 512)
    assert "trained.pt@" in one.version


def test_facenet_rejects_a_checkpoint_of_something_else(tmp_path):
    import torch

    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not an InceptionResnetV1"):
        get_embedder("facenet", checkpoint=tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable torch checkpoint"):
        load_facenet_state_dict(tmp_path / "garbage.pt")
    with pytest.raises(WeightsMissingError, match="does not exist"):
        get_embedder("facenet", checkpoint=tmp_path / "missing.pt")


def test_dlib_workers_exit_when_their_parent_crashes(tmp_path):
    """A parent killed without shutting the pool down must not leave workers behind."""
    import subprocess
    import sys
    import time

    code = ("import os, signal, numpy as np; from crowdkit.engine.embed import get_embedder; "
            "e = get_embedder('dlib-reference', workers=2, min_parallel=2); e.embed(np.zeros((4, 150, 150, 3), np.uint8)); "
            "print(*[p.pid for p in e._pool._processes.values()], flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    for _ in range(100):  # the watchdog checks every second
        if not any(alive(pid) for pid in pids):
            break
        time.sleep(0.2)
    assert not any(alive(pid) for pid in pids)


@pytest.mark.slow
def test_dlib_matches_deepface_dlib_on_identical_chips(offline_home, reference_chips, dlib_embedder):
    """The baseline comparison rests on this: same aligned chip in, same vector out as DeepFace's Dlib."""
    from crowdkit.common import weights

    weights.install_dlib_for_deepface()
    weights.prepare_tensorflow()
    from deepface import DeepFace

    theirs = np.array([
        DeepFace.represent(img_path=chip[:, :, ::-1].copy(), model_name="Dlib", detector_backend="skip",
                           align=False, enforce_detection=False)[0]["embedding"]  # deepface reads BGR
        for chip in reference_chips
    ], dtype=np.float32)
    np.testing.assert_allclose(dlib_embedder.embed(reference_chips), theirs, atol=1e-6)
