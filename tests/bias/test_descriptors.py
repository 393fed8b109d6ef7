"""The shared photo pipeline (YuNet → dlib chip → dlib ResNet in torch): dlib's descriptors, cached by content."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from crowdkit.bias import descriptors
from crowdkit.bias.descriptors import CENTRE_FALLBACK, FACE_FOUND, NO_FACE, PhotoEmbedder, describe_photos
from crowdkit.common.exceptions import ConfigError, ImageReadError


@pytest.fixture(scope="module")
def lfw_photos(lfw_dir):
    people = sorted(p for p in lfw_dir.iterdir() if p.is_dir())[:40]
    return [next(iter(sorted(p.glob("*.jpg")))) for p in people][:40]


def test_descriptors_are_dlibs_own_on_the_same_chips(lfw_photos, isolated_home):
    """The torch ResNet inside the pipeline gives what dlib-bin's forward pass gives on the chips it placed."""
    import dlib

    from crowdkit.common import weights
    from crowdkit.common.io import read_image

    found = describe_photos(lfw_photos, batch_size=7, progress=False)
    assert found.embeddings.shape == (40, 128) and not np.isnan(found.embeddings).any()
    assert found.has_face.all()  # LFW deep-funneled: a centred face in every photo
    pipeline = PhotoEmbedder()
    chips = [pipeline.chip(read_image(path))[0] for path in lfw_photos]
    reference = dlib.face_recognition_model_v1(str(weights.require("dlib-resnet")))
    expected = np.array([reference.compute_face_descriptor(chip) for chip in chips], dtype=np.float32)
    assert np.abs(found.embeddings - expected).max() < 1e-4
    descriptors.cache_file().unlink()
    np.testing.assert_allclose(describe_photos(lfw_photos, batch_size=64, progress=False).embeddings,
                               found.embeddings, atol=1e-5)  # the batch size does not change a descriptor


def test_cache_is_by_content_and_resumes(lfw_photos, tmp_path, isolated_home):
    first = describe_photos(lfw_photos[:5], progress=False)
    copies = []
    for i, path in enumerate(lfw_photos[:5]):  # same bytes under other names: read from the cache
        copies.append(tmp_path / f"copy{i}.jpg")
        shutil.copy(path, copies[-1])
    stamp = descriptors.cache_file().stat().st_mtime_ns
    again = describe_photos(copies, progress=False)
    assert descriptors.cache_file().stat().st_mtime_ns == stamp  # nothing new was computed or written
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    more = describe_photos(lfw_photos[:8], progress=False)  # only the 3 new photos are embedded
    np.testing.assert_array_equal(more.embeddings[:5], first.embeddings)
    with np.load(descriptors.cache_file()) as data:
        assert len(data["keys"]) == 8


def test_no_face_is_flagged_centre_or_skip(tmp_path, isolated_home):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120, 3), 128, np.uint8)).save(blank)
    centre = describe_photos([blank], progress=False)
    assert centre.status.tolist() == [CENTRE_FALLBACK] and not centre.has_face[0]
    assert np.isfinite(centre.embeddings).all()
    skipped = describe_photos([blank], fallback="skip", progress=False)
    assert skipped.status.tolist() == [NO_FACE] and np.isnan(skipped.embeddings).all()


def test_bad_input_is_named(tmp_path, isolated_home):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        describe_photos([broken], progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        describe_photos([broken], batch_size=0)
    with pytest.raises(ConfigError, match="fallback"):
        PhotoEmbedder(fallback="whole")
    assert len(describe_photos([], progress=False)) == 0


def test_a_face_found_on_the_first_pass_is_status_found(examples_dir, isolated_home):
    found = describe_photos([examples_dir / "obama.jpg"], progress=False)
    assert found.status.tolist() == [FACE_FOUND] and found.has_face.all()


def test_a_small_face_is_found_on_the_second_pass(lfw_photos, tmp_path, isolated_home):
    from PIL import Image

    from crowdkit.bias.descriptors import SECOND_DETECTOR

    small = tmp_path / "small.png"
    Image.open(lfw_photos[0]).resize((30, 30)).save(small)  # a ~12-px face: YuNet at 1× misses it
    found = describe_photos([small], progress=False)
    assert found.status.tolist() == [SECOND_DETECTOR] and found.has_face.all()
