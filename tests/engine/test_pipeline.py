"""The detect → align → embed pipeline on real photos and a real clip: chips, caching per image and per gallery, bad galleries."""
from __future__ import annotations

import shutil
import numpy as np
import pytest

from crowdkit.common.exceptions import EmptyGalleryError, VideoReadError
from crowdkit.engine.faces import forget
from crowdkit.engine.pipeline import detect_and_embed


def test_detect_and_embed_returns_aligned_chips(isolated_home, detector, embedder, train_dir):
    result = detect_and_embed(train_dir / "biden", detector=detector, embedder=embedder,
                              return_chips=True, progress=False)
    assert len(result) == 2 and result.images == 2
    assert result.embeddings.shape == (2, embedder.dim) and result.embeddings.dtype == np.float32
    assert result.chips.dtype == np.uint8 and result.chips.shape[0] == 2 and result.chips.shape[3] == 3


def test_gallery_of_only_unreadable_files_is_an_error(isolated_home, detector, embedder, tmp_path):
    gallery = tmp_path / "bad"
    gallery.mkdir()
    (gallery / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(EmptyGalleryError, match="a.png"):
        detect_and_embed(gallery, detector=detector, embedder=embedder, progress=False)


def test_empty_gallery_folder_is_an_error_naming_it(isolated_home, detector, embedder, tmp_path):
    gallery = tmp_path / "empty"
    (gallery / "sub").mkdir(parents=True)
    (gallery / "notes.txt").write_text("no images here")
    with pytest.raises(EmptyGalleryError, match=str(gallery)):
        detect_and_embed(gallery, detector=detector, embedder=embedder, progress=False)


def test_corrupt_video_gallery_is_an_error(isolated_home, detector, embedder, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError):
        detect_and_embed(video, detector=detector, embedder=embedder, progress=False)


def test_video_gallery_uses_every_nth_frame_and_caches_per_frame(isolated_home, detector, embedder, examples_dir,
                                                                     cache_files):
    clip = examples_dir / "short_hamilton_clip.mp4"  # 275 frames, 640×360
    forget()
    result = detect_and_embed(clip, detector=detector, embedder=embedder, stride=100, progress=False)
    assert result.images == 3  # frames 0, 100, 200
    assert len(result) >= 2
    assert {f.frame for f in result.faces} <= {0, 100, 200}
    assert all(f.source == str(clip) for f in result.faces)
    assert len(cache_files(isolated_home)) == 2 * 3  # detections + embeddings per frame


def test_a_second_search_in_the_same_process_still_skips_the_unreadable_file(isolated_home, detector, embedder,
                                                                              train_dir, tmp_path):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    shutil.copy(train_dir / "biden" / "biden.jpg", gallery / "biden.jpg")
    (gallery / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    for _ in range(2):
        result = detect_and_embed(gallery, detector=detector, embedder=embedder, progress=False)
        assert result.images == 1 and len(result.skipped) == 1


def test_batches_overlap_on_helper_threads_and_the_last_is_embedded_on_the_calling_thread(
        isolated_home, detector, embedder, train_dir, monkeypatch):
    import threading

    together = detect_and_embed(train_dir, detector=detector, embedder=embedder, progress=False)
    forget()
    threads = []
    real_embed = embedder.embed

    def recording(chips):
        threads.append(threading.current_thread())
        return real_embed(chips)

    monkeypatch.setattr(embedder, "embed", recording)
    shutil.rmtree(isolated_home / "cache")
    one_by_one = detect_and_embed(train_dir, detector=detector, embedder=embedder, batch_size=1, progress=False)
    assert len(threads) == together.images  # one photo a batch, each with a face
    assert threads[-1] is threading.main_thread()
    assert all(thread is not threading.main_thread() for thread in threads[:-1])
    np.testing.assert_allclose(one_by_one.embeddings, together.embeddings, atol=1e-5)
