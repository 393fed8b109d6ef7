"""crowdkit.common.weights: where weights are, the offline error text, and dlib for deepface."""
from __future__ import annotations

import json

import pytest

from crowdkit.common import weights
from crowdkit.cli import weights as weights_cli
from crowdkit.common.exceptions import WeightsMissingError


def test_status_lists_every_spec_and_the_shipped_dlib_files(offline_home):
    rows = {row.name: row for row in weights.status()}
    assert set(rows) == set(weights.SPECS) >= {
        "dlib-resnet", "dlib-shape5", "dlib-shape68", "dlib-mmod", "retinaface", "arcface", "facenet-vggface2"}
    for name in ("dlib-resnet", "dlib-shape5", "dlib-shape68", "dlib-mmod"):
        assert rows[name].present and rows[name].size > 100_000 and rows[name].path.is_file()
    for name in ("retinaface", "arcface", "facenet-vggface2"):
        assert not rows[name].present and rows[name].size == 0
        assert str(rows[name].path).startswith(str(offline_home))  # where it must go, under the homes
    assert rows["arcface"].path == offline_home / "deepface_home" / ".deepface" / "weights" / "arcface_weights.h5"


def test_dlib_files_are_found_without_importing_face_recognition_models():
    import sys

    sys.modules.pop("face_recognition_models", None)
    assert weights.require("dlib-resnet").name == "dlib_face_recognition_resnet_model_v1.dat"
    assert "face_recognition_models" not in sys.modules  # its import needs pkg_resources


@pytest.mark.parametrize("name, filename, alternative", [
    ("arcface", "arcface_weights.h5", "embedder 'dlib'"),
    ("retinaface", "retinaface.h5", "'mtcnn'"),
    ("facenet-vggface2", "20180402-114759-vggface2.pt", "embedder 'dlib'"),
])
def test_missing_weights_offline_fail_at_once_saying_what_where_and_how(offline_home, name, filename, alternative):
    with pytest.raises(WeightsMissingError) as info:
        weights.require(name)
    message = str(info.value)
    spec = weights.SPECS[name]
    assert filename in message
    assert str(spec.path().parent) in message
    assert spec.source_url in message and spec.source_url.startswith("https://")
    assert "CROWDKIT_ALLOW_DOWNLOAD=1" in message and f"crowdkit weights download {name}" in message
    assert alternative in message


def test_facenet_weights_in_torch_hub_checkpoints_are_used(offline_home):
    checkpoints = offline_home / "torch_home" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "20180402-114759-vggface2.pt").write_bytes(b"not empty")
    assert weights.require("facenet-vggface2") == checkpoints / "20180402-114759-vggface2.pt"


def test_empty_file_counts_as_missing(offline_home):
    target = weights.SPECS["arcface"].path()
    target.parent.mkdir(parents=True)
    target.touch()  # what an interrupted download leaves
    with pytest.raises(WeightsMissingError):
        weights.require("arcface")


def test_unknown_name_lists_known_ones():
    with pytest.raises(WeightsMissingError, match="dlib-resnet"):
        weights.require("vgg-face")


def test_install_dlib_for_deepface_copies_is_idempotent_and_replaces_dangling_links(offline_home):
    first = weights.install_dlib_for_deepface()
    folder = offline_home / "deepface_home" / ".deepface" / "weights"
    assert sorted(p.name for p in first) == ["dlib_face_recognition_resnet_model_v1.dat",
                                             "shape_predictor_5_face_landmarks.dat"]
    assert all(p.parent == folder and p.is_file() and not p.is_symlink() for p in first)
    mtimes = [p.stat().st_mtime_ns for p in first]
    assert weights.install_dlib_for_deepface() == first
    assert [p.stat().st_mtime_ns for p in first] == mtimes  # left alone the second time
    link = folder / "dlib_face_recognition_resnet_model_v1.dat"
    link.unlink()
    link.symlink_to(offline_home / "gone.dat")  # e.g. a link into a removed .venv
    weights.install_dlib_for_deepface()
    assert not link.is_symlink()
    assert link.stat().st_size == weights.require("dlib-resnet").stat().st_size


@pytest.mark.slow
def test_deepface_builds_dlib_models_offline_after_install(offline_home):
    """The baseline DeepFace.find(model_name="Dlib", detector_backend="dlib") needs exactly these files."""
    weights.install_dlib_for_deepface()
    weights.prepare_tensorflow()
    from deepface import DeepFace

    model = DeepFace.build_model("Dlib")
    assert model.output_shape == 128
    DeepFace.build_model("dlib", task="face_detector")
    assert not (offline_home / "deepface_home" / ".deepface" / "weights" / "arcface_weights.h5").exists()


@pytest.mark.slow
def test_prepare_tensorflow_lets_torchvision_load_after_tensorflow():
    """Without it, `import tensorflow; import torchvision` segfaults here (triton after TensorFlow)."""
    import subprocess
    import sys

    code = ("from crowdkit.common.weights import prepare_tensorflow; prepare_tensorflow(); "
            "import tensorflow; import torchvision; print('both loaded')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "both loaded" in done.stdout


def test_cli_status_json_and_install(offline_home, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    weights_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["weights", "status", "--json"])
    assert args.handler(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} == set(weights.SPECS)
    args = parser.parse_args(["weights", "status"])
    args.handler(args)
    table = capsys.readouterr().out
    assert "arcface" in table and "NO" in table and weights.SPECS["arcface"].source_url in table
    args = parser.parse_args(["weights", "install-dlib"])
    assert args.handler(args) == 0
    assert "shape_predictor_5_face_landmarks.dat" in capsys.readouterr().out


def _toy_spec(tmp_path, downloader):
    return weights.WeightSpec(name="toy", filename="toy.bin", folder=lambda: tmp_path / "toy",
                              source_url="https://example.org/toy.bin", how_to_get="made by the test",
                              offline_alternative="embedder 'dlib'", used_by=("tests",), downloader=downloader)


def test_downloads_when_allowed_go_through_the_owning_package_and_are_checked(tmp_path, monkeypatch):
    calls = []

    def writes_file(spec):
        calls.append(spec.name)
        spec.path().parent.mkdir(parents=True, exist_ok=True)
        spec.path().write_bytes(b"weights")

    monkeypatch.setitem(weights.SPECS, "toy", _toy_spec(tmp_path, writes_file))
    monkeypatch.setenv("CROWDKIT_ALLOW_DOWNLOAD", "0")
    with pytest.raises(WeightsMissingError):
        weights.require("toy")
    assert calls == []  # offline: the downloader is never called
    monkeypatch.setenv("CROWDKIT_ALLOW_DOWNLOAD", "1")
    assert weights.require("toy") == tmp_path / "toy" / "toy.bin"
    assert weights.require("toy") == tmp_path / "toy" / "toy.bin" and calls == ["toy"]  # once


@pytest.mark.parametrize("downloader, match", [
    (lambda spec: None, "did not leave it"),
    (lambda spec: (_ for _ in ()).throw(OSError("Name or service not known")), "Name or service not known"),
])
def test_failed_downloads_become_weights_missing_errors(tmp_path, monkeypatch, downloader, match):
    monkeypatch.setitem(weights.SPECS, "toy", _toy_spec(tmp_path, downloader))
    monkeypatch.setenv("CROWDKIT_ALLOW_DOWNLOAD", "1")
    with pytest.raises(WeightsMissingError, match=match) as info:
        weights.require("toy")
    assert str(tmp_path / "toy") in str(info.value)
