"""The shared dlib photo pipeline: worker processes agree with this process, the cache is by content."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from crowdkit.bias import descriptors
from crowdkit.bias.descriptors import CENTRE_FALLBACK, FACE_FOUND, NO_FACE, DlibPhotoEmbedder, describe_photos
from crowdkit.common.exceptions import ConfigError, ImageReadError


@pytest.fixture(scope="module")
def lfw_photos(lfw_dir):
    people = sorted(p for p in lfw_dir.iterdir() if p.is_dir())[:40]
    return [next(iter(sorted(p.glob("*.jpg")))) for p in people][:40]


def test_workers_give_what_this_process_gives(lfw_photos, isolated_home):
    one = describe_photos(lfw_photos, workers=1, progress=False)
    descriptors.cache_file().unlink()
    two = describe_photos(lfw_photos, workers=2, chunk_size=4, progress=False)
    assert one.embeddings.shape == (40, 128) and not np.isnan(one.embeddings).any()
    np.testing.assert_allclose(one.embeddings, two.embeddings, atol=1e-5)
    assert np.array_equal(one.status, two.status)
    assert one.has_face.mean() > 0.9  # LFW deep-funneled: a centred face in nearly every photo


def test_cache_is_by_content_and_resumes(lfw_photos, tmp_path, isolated_home):
    first = describe_photos(lfw_photos[:5], workers=1, progress=False)
    copies = []
    for i, path in enumerate(lfw_photos[:5]):  # same bytes under other names: read from the cache
        copies.append(tmp_path / f"copy{i}.jpg")
        shutil.copy(path, copies[-1])
    stamp = descriptors.cache_file().stat().st_mtime_ns
    again = describe_photos(copies, workers=1, progress=False)
    assert descriptors.cache_file().stat().st_mtime_ns == stamp  # nothing new was computed or written
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    more = describe_photos(lfw_photos[:8], workers=1, progress=False)  # only the 3 new photos are embedded
    np.testing.assert_array_equal(more.embeddings[:5], first.embeddings)
    with np.load(descriptors.cache_file()) as data:
        assert len(data["keys"]) == 8


def test_no_face_is_flagged_centre_or_skip(tmp_path, isolated_home):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120, 3), 128, np.uint8)).save(blank)
    centre = describe_photos([blank], workers=1, progress=False)
    assert centre.status.tolist() == [CENTRE_FALLBACK] and not centre.has_face[0]
    assert np.isfinite(centre.embeddings).all()
    skipped = describe_photos([blank], workers=1, fallback="skip", progress=False)
    assert skipped.status.tolist() == [NO_FACE] and np.isnan(skipped.embeddings).all()


def test_bad_input_is_named(tmp_path, isolated_home):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        describe_photos([broken], workers=1, progress=False)
    with pytest.raises(ConfigError):
        describe_photos([broken], workers=0)
    with pytest.raises(ConfigError):
        DlibPhotoEmbedder(fallback="whole")
    assert len(describe_photos([], progress=False)) == 0


def test_a_face_found_by_hog_is_status_found(examples_dir, isolated_home):
    found = describe_photos([examples_dir / "obama.jpg"], workers=1, progress=False)
    assert found.status.tolist() == [FACE_FOUND] and found.has_face.all()
