"""Training inputs: MTCNN alignment with its cache, images without a face skipped and counted."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from crowdkit.bias.training_data import align_dataset, load_training_data  # noqa: E402


def test_alignment_skips_and_counts_images_without_a_face(tmp_path, isolated_home, lfw_dir):
    """MTCNN margin crops (160 px) of real LFW photos; a blank image is reported, skipped and remembered."""
    from PIL import Image

    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (120, 120), (128, 128, 128)).save(blank)
    people = {name: sorted((lfw_dir / name).glob("*.jpg"))[:2] for name in ("Aaron_Peirsol", "Abdullah_Gul")}
    people["Abdullah_Gul"].append(blank)
    report = align_dataset(people, dataset="test", progress=False)
    assert report.n_aligned == 4 and report.skipped == (blank,)
    chip = np.asarray(Image.open(report.aligned["Aaron_Peirsol"][0]))
    assert chip.shape == (160, 160, 3)
    again = align_dataset(people, dataset="test", progress=False)  # all from the cache
    assert (again.n_cached, again.n_new, again.skipped) == (4, 0, (blank,))

    data = load_training_data("small_cnn", people, dataset="test", progress=False)
    assert data.inputs["Abdullah_Gul"].shape == (2, 64, 64, 3) and data.skipped == (blank,)
