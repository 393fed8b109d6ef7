"""``crowdkit find`` / ``crowdkit verify`` as a user runs them (subprocesses)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CROWDKIT = str(Path(sys.executable).with_name("crowdkit"))


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CROWDKIT_HOME=str(home), TF_USE_LEGACY_KERAS="1", OMP_NUM_THREADS="1")
    return subprocess.run([CROWDKIT, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def small(examples_dir: Path, tmp_path_factory) -> Path:
    """A few real photos, shrunk so the detector runs in a fraction of a second."""
    import cv2

    root = tmp_path_factory.mktemp("cli_photos")
    sources = {
        "gallery/obama/obama2.jpg": examples_dir / "knn_examples" / "train" / "obama" / "obama2.jpg",
        "gallery/biden/biden.jpg": examples_dir / "knn_examples" / "train" / "biden" / "biden.jpg",
        "obama1.jpg": examples_dir / "knn_examples" / "test" / "obama1.jpg",
    }
    for name, src in sources.items():
        image = cv2.imread(str(src))
        scale = 400 / max(image.shape[:2])
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return root


@pytest.mark.slow  # two subprocesses that load torch, MTCNN and dlib (~10 s each on an idle 2-core machine)
def test_verify_json_prints_exactly_three_fields(isolated_home, small):
    done = _run(["verify", str(small / "obama1.jpg"), str(small / "gallery/obama/obama2.jpg"),
                 "--model", "dlib", "--json"], isolated_home)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    assert set(result) == {"distance", "threshold", "verified"}
    assert result["verified"] is True and result["distance"] < result["threshold"] == 0.07

    other = _run(["verify", str(small / "obama1.jpg"), str(small / "gallery/biden/biden.jpg"), "--json"],
                 isolated_home)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["verified"] is False


@pytest.mark.slow
def test_find_writes_parquet_and_a_one_line_summary(isolated_home, small, tmp_path):
    import pandas as pd

    out = tmp_path / "results.parquet"
    done = _run(["find", "--query", str(small / "obama1.jpg"), "--gallery", str(small / "gallery"),
                 "--out", str(out)], isolated_home)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1
    assert "2 face(s) in 2 image(s); 1 match(es) at cosine threshold 0.07 (default for dlib/cosine)" in done.stdout
    table = pd.read_parquet(out)
    assert list(table.columns) == ["source", "frame", "x1", "y1", "x2", "y2", "score", "distance",
                                   "closest_query", "threshold", "decision"]
    assert table.set_index(table["source"].map(lambda s: Path(s).parent.name))["decision"].to_dict() == {
        "obama": True, "biden": False}


def test_find_help_lists_default_thresholds(isolated_home):
    done = _run(["find", "--help"], isolated_home)
    assert done.returncode == 0
    assert "dlib: cosine 0.07, euclidean 0.6, euclidean_l2 0.4" in done.stdout
    assert "arcface:" in done.stdout and "facenet:" in done.stdout


@pytest.mark.parametrize("case", ["empty gallery", "no face in query", "corrupt video"])
def test_failures_exit_2_with_one_line_and_leave_no_output(isolated_home, small, tmp_path, fixtures_dir, case):
    out = tmp_path / "results.parquet"
    query, gallery = str(small / "obama1.jpg"), str(small / "gallery")
    if case == "empty gallery":
        gallery = str(tmp_path / "nothing")
        os.mkdir(gallery)
    elif case == "no face in query":
        query = str(fixtures_dir / "faceapi_js" / "test" / "images" / "white.png")
    else:
        gallery = str(tmp_path / "clip.mp4")
        Path(gallery).write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    done = _run(["find", "--query", query, "--gallery", gallery, "--out", str(out)], isolated_home)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("crowdkit find: error: ") and "Traceback" not in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".results.parquet*"))


@pytest.mark.parametrize("verb, metric, value, wanted", [
    ("find", "cosine", "-1", "a cosine threshold must be between 0 and 2"),
    ("verify", "euclidean", "-0.5", "a euclidean threshold must be 0 or more"),
    ("verify", "euclidean_l2", "2.5", "a euclidean_l2 threshold must be between 0 and 2"),
])
def test_a_threshold_outside_the_metric_range_exits_2_naming_metric_value_and_range(
        isolated_home, small, tmp_path, verb, metric, value, wanted):
    out = tmp_path / "results.parquet"
    query, other = str(small / "obama1.jpg"), str(small / "gallery")
    args = (["find", "--query", query, "--gallery", other, "--out", str(out)] if verb == "find"
            else ["verify", query, str(small / "gallery/biden/biden.jpg")])
    done = _run([*args, "--metric", metric, "--threshold", value], isolated_home)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"crowdkit {verb}: error: {wanted}") and f"got {float(value)}" in last
    assert "Traceback" not in done.stderr and not out.exists()


def test_find_and_verify_help_name_the_default_detector(isolated_home):
    from crowdkit.engine.detect import DEFAULT_DETECTOR

    for verb in ("find", "verify"):
        done = _run([verb, "--help"], isolated_home)
        assert done.returncode == 0
        assert f"(default {DEFAULT_DETECTOR})" in " ".join(done.stdout.split())
