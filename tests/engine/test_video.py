"""crowdkit.engine.video on the real clips in the fixtures, and on broken files made from them."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from crowdkit.common.exceptions import ConfigError, VideoReadError
from crowdkit.engine.video import Frame, VideoInfo, iter_frames, video_info


@pytest.fixture(scope="module")
def hamilton(examples_dir: Path) -> Path:
    return examples_dir / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def faceapi_video(fixtures_dir: Path) -> Path:
    return fixtures_dir / "faceapi_js" / "test" / "media" / "video.mp4"


def _atoms(data: bytes) -> list[tuple[bytes, bytes]]:
    atoms, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        atoms.append((kind, data[offset:offset + size]))
        offset += size
    return atoms


def _faststart(data: bytes) -> bytes:
    """Move the moov atom before mdat (shifting the chunk offsets), as `ffmpeg -movflags faststart` does.

    A truncated faststart file still opens (its index is intact) but its frames stop part-way.
    """
    atoms = _atoms(data)
    moov = bytearray(dict(atoms)[b"moov"])
    shift = len(moov)
    at = moov.find(b"stco")
    while at != -1:
        count = struct.unpack(">I", moov[at + 8:at + 12])[0]
        for k in range(count):
            o = at + 12 + 4 * k
            moov[o:o + 4] = struct.pack(">I", struct.unpack(">I", moov[o:o + 4])[0] + shift)
        at = moov.find(b"stco", at + 4)
    return b"".join(bytes(moov) + body if kind == b"mdat" else body for kind, body in atoms if kind != b"moov")


def test_video_info_of_real_clips(hamilton: Path, faceapi_video: Path) -> None:
    info = video_info(hamilton)
    assert info == VideoInfo(frame_count=275, fps=pytest.approx(29.97, abs=0.01), width=640, height=360)
    assert info.duration == pytest.approx(275 / 29.97)
    small = video_info(faceapi_video)
    assert (small.frame_count, small.width, small.height) == (5, 820, 460)
    assert small.fps == pytest.approx(23.976, abs=0.01)


def test_iter_frames_yields_every_frame_as_rgb(faceapi_video: Path) -> None:
    frames = list(iter_frames(faceapi_video))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert all(isinstance(f, Frame) for f in frames)
    first = frames[0]
    assert first.image.shape == (460, 820, 3) and first.image.dtype == np.uint8
    assert first.timestamp == 0.0
    assert frames[4].timestamp == pytest.approx(4 / 23.976, abs=1e-3)


def test_iter_frames_matches_opencv_decoding_order_and_colour(faceapi_video: Path) -> None:
    import cv2

    capture = cv2.VideoCapture(str(faceapi_video))
    for _ in range(3):
        ok, bgr = capture.read()
    capture.release()
    assert ok
    (frame,) = iter_frames(faceapi_video, start=2, stop=3)
    assert frame.index == 2
    np.testing.assert_array_equal(frame.image, bgr[:, :, ::-1])


def test_stride_start_stop(hamilton: Path) -> None:
    assert [f.index for f in iter_frames(hamilton, stride=10, start=3, stop=50)] == [3, 13, 23, 33, 43]
    every_25th = [f.index for f in iter_frames(hamilton, stride=25)]
    assert every_25th == list(range(0, 275, 25))
    assert [f.index for f in iter_frames(hamilton, start=270)] == [270, 271, 272, 273, 274]
    assert list(iter_frames(hamilton, start=10, stop=10)) == []
    frame = next(iter_frames(hamilton, start=60, stride=2))
    assert frame.index == 60 and frame.timestamp == pytest.approx(60 / 29.97)


@pytest.mark.parametrize("options", [{"stride": 0}, {"start": -1}, {"stop": -5}, {"stride": 1.5}])
def test_bad_options_are_config_errors(hamilton: Path, options: dict) -> None:
    with pytest.raises(ConfigError):
        list(iter_frames(hamilton, **options))


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError, match="does not exist"):
        video_info(tmp_path / "nothere.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty"):
        list(iter_frames(empty))


def test_random_bytes_named_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "random.mp4"
    fake.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="random.mp4") as caught:
        video_info(fake)
    assert "check that the file" in str(caught.value)
    with pytest.raises(VideoReadError):
        next(iter_frames(fake))


def test_truncated_mp4_without_its_index(hamilton: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(hamilton.read_bytes()[:200_000])  # the moov atom sits at the end: gone
    with pytest.raises(VideoReadError, match="cut.mp4"):
        video_info(cut)


def test_truncated_faststart_mp4_raises_after_the_readable_frames(hamilton: Path, tmp_path: Path) -> None:
    whole = _faststart(hamilton.read_bytes())
    intact = tmp_path / "faststart.mp4"
    intact.write_bytes(whole)
    assert sum(1 for _ in iter_frames(intact, stride=50)) == 6  # the rewrite itself is sound

    cut = tmp_path / "faststart_cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])
    assert video_info(cut).frame_count == 275  # the header is intact ...
    seen = []
    with pytest.raises(VideoReadError, match="truncated"):
        for frame in iter_frames(cut):
            seen.append(frame.index)
    assert 0 < len(seen) < 275  # ... but the frames stop part-way, and that is an error


def test_undecodable_first_frame(hamilton: Path, tmp_path: Path) -> None:
    atoms = _atoms(_faststart(hamilton.read_bytes()))
    broken = b"".join(body[:8] + bytes(len(body) - 8) if kind == b"mdat" else body for kind, body in atoms)
    path = tmp_path / "zeros.mp4"
    path.write_bytes(broken)
    with pytest.raises(VideoReadError, match="zeros.mp4"):
        list(iter_frames(path))
