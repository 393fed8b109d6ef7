"""crowdkit.engine.dlib_resnet: the .dat reader, dlib's add_prev, the weights cache, and
reproduction of dlib's own descriptors on real LFW chips (dlib's HOG detector, 5-point
shape and get_face_chip), compared with dlib.face_recognition_model_v1."""
from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from crowdkit.engine import dlib_resnet
from crowdkit.engine.dlib_resnet import (DlibModelFormatError, DlibModelNotFoundError, add_prev,
                                         default_dat_path, load_dlib_resnet, read_dlib_dat)

MIN_CHIPS = 1000


@pytest.fixture(scope="module")
def dat() -> Path:
    return default_dat_path()


@pytest.fixture(scope="module")
def network(dat: Path) -> dlib_resnet.DlibNetwork:
    return read_dlib_dat(dat)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dlib_resnet.DlibResNet:
    return load_dlib_resnet(cache_dir=tmp_path_factory.mktemp("weights"))


# --------------------------------------------------------------------------- the reader

def test_parser_reads_every_layer_of_the_face_resnet(network) -> None:
    first = network.layers[0]
    assert first.name == "con_4" and first.config["num_params"] == 4736  # 32×3×7×7 filters + 32 biases
    assert first.arrays["weight"].shape == (32, 3, 7, 7) and first.arrays["bias"].shape == (32,)
    assert (first.config["stride_y"], first.config["padding_y"]) == (2, 0)
    assert Counter(layer.name for layer in network.layers) == {
        "con_4": 29, "affine_": 29, "relu_": 29, "add_prev_": 14, "tag": 18, "skip": 4,
        "avg_pool_2": 5, "max_pool_2": 1, "fc_2": 1}
    names = [layer.name for layer in network.layers]
    assert names[:8] == ["con_4", "affine_", "relu_", "max_pool_2", "tag", "con_4", "affine_", "relu_"]
    assert names[-2:] == ["avg_pool_2", "fc_2"] and network.layers[-2].config["nr"] == 0  # avg_pool_everything
    fc = network.layers[-1]
    assert fc.arrays["weight"].shape == (128, 256) and "bias" not in fc.arrays
    assert network.input_size == (150, 150)
    assert np.allclose(network.mean_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    assert network.loss["name"] == "loss_metric_2" and network.loss["distance_threshold"] == pytest.approx(0.6)
    assert sum(a.size for layer in network.layers for a in layer.arrays.values()) == 5_614_592


def test_every_downsampling_block_skips_back_to_its_input(network) -> None:
    layers = network.layers
    for i, layer in enumerate(layers):
        if layer.name == "skip":
            assert layers[i - 1].name == "tag" and layers[i + 1].name == "avg_pool_2"
            assert layers[i + 2].name == "add_prev_" and layers[i + 2].config["slot"] == layers[i - 1].config["slot"]
            assert layer.config["slot"] == layers[i - 1].config["slot"] - 1


@pytest.mark.parametrize("cut", [1, 20, 300, 4_000_000, -1])
def test_a_truncated_file_raises_a_format_error_naming_it(dat: Path, tmp_path: Path, cut: int) -> None:
    data = dat.read_bytes()
    bad = tmp_path / "truncated.dat"
    bad.write_bytes(data[:cut])
    with pytest.raises(DlibModelFormatError, match=re.escape(str(bad)) + ".*(ends early|truncated)"):
        read_dlib_dat(bad)
    with pytest.raises(DlibModelFormatError, match="reinstall"):
        load_dlib_resnet(bad, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_corrupt_or_missing_file_is_reported(dat: Path, tmp_path: Path) -> None:
    data = bytearray(dat.read_bytes())
    start = data.index(b"relu_")
    data[start:start + 5] = b"xelu_"
    bad = tmp_path / "corrupt.dat"
    bad.write_bytes(bytes(data))
    with pytest.raises(DlibModelFormatError, match="unsupported layer 'xelu_'"):
        read_dlib_dat(bad)
    with pytest.raises(DlibModelNotFoundError, match="nothing.dat"):
        load_dlib_resnet(tmp_path / "nothing.dat", cache_dir=tmp_path)
    assert issubclass(DlibModelFormatError, ValueError) and issubclass(DlibModelNotFoundError, FileNotFoundError)


# --------------------------------------------------------------------------- the network

def test_add_prev_keeps_the_larger_size_with_zeros() -> None:
    conv = torch.arange(1, 10, dtype=torch.float32).reshape(1, 1, 3, 3).repeat(1, 2, 1, 1)  # 2 × 3×3
    shortcut = torch.full((1, 1, 4, 4), 100.0)  # 1 × 4×4
    out = add_prev(conv, shortcut)
    assert out.shape == (1, 2, 4, 4)
    assert torch.equal(out[0, 0, :3, :3], conv[0, 0] + 100) and torch.all(out[0, 0, 3, :] == 100)
    assert torch.equal(out[0, 1, :3, :3], conv[0, 1]) and torch.all(out[0, 1, 3, :] == 0)
    assert torch.all(out[0, 1, :, 3] == 0)
    assert torch.equal(add_prev(shortcut, conv), out)


def test_the_256_filter_stage_adds_a_3x3_conv_to_a_4x4_shortcut(model, monkeypatch) -> None:
    seen = []

    def recording(a, b):
        seen.append((tuple(a.shape[1:]), tuple(b.shape[1:])))
        return add_prev(a, b)

    monkeypatch.setattr(dlib_resnet, "add_prev", recording)
    model(torch.zeros(1, 3, 150, 150))
    assert len(seen) == 14
    # (average-pooled shortcut, strided block output): the shortcut is the larger one
    assert seen[10] == ((128, 4, 4), (256, 3, 3)) and seen[13] == ((256, 2, 2), (256, 1, 1))
    assert seen[3] == ((32, 17, 17), (64, 17, 17)) and seen[7] == ((64, 8, 8), (128, 8, 8))


def test_weights_are_converted_once_and_loaded_without_the_parser(dat: Path, tmp_path: Path, monkeypatch) -> None:
    first = load_dlib_resnet(dat, cache_dir=tmp_path)
    cached = list(tmp_path.iterdir())
    assert [p.name for p in cached] == [f"dlib_resnet-{hashlib.sha256(dat.read_bytes()).hexdigest()}.npz"]

    def no_parsing(path):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(dlib_resnet, "read_dlib_dat", no_parsing)
    again = load_dlib_resnet(dat, cache_dir=tmp_path)
    chips = np.random.default_rng(0).integers(0, 256, (3, 150, 150, 3), dtype=np.uint8)
    assert np.array_equal(first.describe(chips), again.describe(chips))
    assert not again.training and first.describe(chips).dtype == np.float32


def test_describe_checks_its_input(model) -> None:
    assert model.describe(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    assert model.describe(np.zeros((150, 150, 3), np.uint8)).shape == (1, 128)
    with pytest.raises(ValueError, match="uint8"):
        model.describe(np.zeros((1, 150, 150, 3), np.float32))
    with pytest.raises(ValueError, match="150"):
        model.describe(np.zeros((1, 112, 112, 3), np.uint8))


def test_folding_the_affine_layers_changes_nothing_that_matters(tmp_path: Path) -> None:
    chips = np.random.default_rng(1).integers(0, 256, (4, 150, 150, 3), dtype=np.uint8)
    folded = load_dlib_resnet(cache_dir=tmp_path).describe(chips)
    unfolded = load_dlib_resnet(cache_dir=tmp_path, fold_affine=False).describe(chips)
    assert np.abs(folded - unfolded).max() <= 1e-6


# --------------------------------------------------------------------------- against dlib itself

def _lfw_images(lfw_dir: Path, count: int) -> tuple:
    """The first pairs of pairs.txt (View 2) that hold ``count`` distinct images: (images, pairs)."""
    images, pairs = {}, []
    for line in (lfw_dir.parent / "pairs.txt").read_text().splitlines()[1:]:
        if len(images) >= count:
            break
        f = line.split()
        (a, ka), (b, kb) = ((f[0], f[1]), (f[0], f[2])) if len(f) == 3 else ((f[0], f[1]), (f[2], f[3]))
        ends = [f"{name}/{name}_{int(number):04d}.jpg" for name, number in ((a, ka), (b, kb))]
        pairs.append((images.setdefault(ends[0], len(images)), images.setdefault(ends[1], len(images)), a == b))
    return [lfw_dir / name for name in images], pairs


# dlib holds the GIL, so the reference runs in worker processes (one per core), each loading the
# models into _DLIB once. They are spawned, not forked: a child forked from the test process, whose
# torch and helper threads run, can inherit a lock held mid-operation (one pool hung that way in a full run).
_DLIB: dict = {}


def _dlib_worker(dat: str) -> None:
    import dlib

    _DLIB.update(dlib=dlib, detector=dlib.get_frontal_face_detector(),
                 predictor=dlib.shape_predictor(str(Path(dat).parent / "shape_predictor_5_face_landmarks.dat")),
                 recogniser=dlib.face_recognition_model_v1(dat))


def _chip(path: Path, rect: tuple | None = None) -> tuple:
    """(HOG box, 150 px chip) of the largest face dlib finds, or (None, None) when it finds none."""
    from PIL import Image

    dlib, img = _DLIB["dlib"], np.asarray(Image.open(path).convert("RGB"))
    if rect is None:
        found = sorted(_DLIB["detector"](img, 0), key=lambda r: r.area(), reverse=True)
        if not found:
            return None, None
        rect = (found[0].left(), found[0].top(), found[0].right(), found[0].bottom())
    shape = _DLIB["predictor"](img, dlib.rectangle(*rect))
    return rect, dlib.get_face_chip(img, shape, size=150, padding=0.25)


def _reference(chips: np.ndarray) -> np.ndarray:
    """dlib's own descriptors, one ``compute_face_descriptor(chip)`` call per aligned chip."""
    return np.array([_DLIB["recogniser"].compute_face_descriptor(chip) for chip in chips])


@pytest.fixture(scope="module")
def lfw_reference(lfw_dir: Path, dat: Path, request, tmp_path_factory):
    """≥ 1,000 aligned LFW chips, dlib's descriptors of them, and pairs.txt's pairs among them.

    Images where dlib's HOG detector finds no face are skipped (with their pairs). The
    boxes and dlib's descriptors are cached as an npz (in pytest's cache when it is on).
    """
    pytest.importorskip("dlib")
    import multiprocessing

    pytest_cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    folder = pytest_cache.mkdir("crowdkit_dlib_resnet") if pytest_cache else tmp_path_factory.mktemp("dlib")
    _dlib_worker(str(dat))  # this process needs the models too (the cached path)
    key = hashlib.sha256(dat.read_bytes() + _DLIB["dlib"].__version__.encode()).hexdigest()[:16]
    cache = Path(folder) / f"lfw_reference-{key}-{MIN_CHIPS}.npz"
    paths, pairs = _lfw_images(lfw_dir, MIN_CHIPS + 20)  # a few images have no face HOG finds
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            kept, rects, reference = z["kept"], z["rects"], z["reference"]
        chips = np.stack([_chip(paths[k], tuple(r))[1] for k, r in zip(kept, rects)])
    else:
        with multiprocessing.get_context("spawn").Pool(min(2, os.cpu_count() or 1), initializer=_dlib_worker,
                                                       initargs=(str(dat),)) as pool:
            found = pool.map(_chip, paths, chunksize=16)
            kept = np.array([k for k, (rect, _) in enumerate(found) if rect is not None])
            rects = np.array([found[k][0] for k in kept])
            chips = np.stack([found[k][1] for k in kept])
            reference = np.concatenate(pool.map(_reference, np.array_split(chips, 16)))
        np.savez(cache, kept=kept, rects=rects, reference=reference)
    index = {k: n for n, k in enumerate(kept)}
    pairs = np.array([(index[a], index[b], same) for a, b, same in pairs if a in index and b in index])
    return chips, reference, pairs


def _distances(x: np.ndarray) -> tuple:
    """Cosine distance and euclidean distance between every two rows, as matrices."""
    x = x.astype(np.float64)
    gram, sq = x @ x.T, np.sum(x * x, axis=1)
    cosine = 1 - gram / np.sqrt(np.outer(sq, sq))
    return cosine, np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0))


@pytest.mark.slow
def test_descriptors_reproduce_dlib_on_lfw_chips(model, lfw_reference) -> None:
    chips, reference, pairs = lfw_reference
    assert len(chips) >= MIN_CHIPS and len(pairs) >= 500
    ours = model.describe(chips, batch_size=32)
    assert ours.shape == reference.shape == (len(chips), 128)
    assert np.abs(ours - reference).max() <= 1e-4
    (cos_ref, euc_ref), (cos_ours, euc_ours) = _distances(reference), _distances(ours)
    i, j = pairs[:, 0], pairs[:, 1]  # pairs.txt's pairs among the chips: identical decisions
    for ref, new, threshold in ((cos_ref, cos_ours, 0.07), (cos_ref, cos_ours, 0.09), (euc_ref, euc_ours, 0.6)):
        assert np.array_equal(ref[i, j] <= threshold, new[i, j] <= threshold)
    # Every two chips (~500,000 pairs): a decision may differ only where dlib's own
    # distance is within float noise of the threshold.
    upper = np.triu(np.ones(cos_ref.shape, bool), 1)
    for ref, new, threshold in ((cos_ref, cos_ours, 0.07), (cos_ref, cos_ours, 0.09), (euc_ref, euc_ours, 0.6)):
        flipped = upper & ((ref <= threshold) != (new <= threshold))
        assert np.all(np.abs(ref[flipped] - threshold) < 1e-5)
