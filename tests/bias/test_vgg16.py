"""The study's VGG16 classifier: a plumbing smoke run on a CPU (the real training needs a GPU)."""
from __future__ import annotations

import numpy as np
import pytest

from crowdkit.bias.ethnicity import get_classifier, load_classifier
from crowdkit.common.datasets import load_utkface, subsample_per_class


@pytest.mark.slow
def test_vgg16_smoke_one_step_on_cpu(tmp_path):
    """A plumbing check of the study's architecture: 5 images, 1 Adam step at 64 px. Not a result."""
    images = subsample_per_class(load_utkface(), 1, seed=0)
    clf = get_classifier("vgg16", input_size=64, batch_size=5, epochs=1, device="cpu")
    clf.fit(images.paths, images.labels, max_steps=1, progress=False, checkpoint_dir=tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "last.pt").is_file()
    proba = clf.predict_proba(images.paths)
    assert proba.shape == (5, 5) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert clf.predict(images.paths).detects_faces is False
    loaded = load_classifier(clf.save(tmp_path / "vgg16"))
    assert loaded.options() == clf.options()
    assert np.allclose(loaded.predict_proba(images.paths), proba, atol=1e-6)
