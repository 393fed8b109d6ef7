"""Gallery folder listings: remembered while no folder changes, read again when one does or was just written."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from crowdkit.engine import listing
from crowdkit.engine.listing import forget_listings, list_folder

LONG_AGO = time.time() - 3600


@pytest.fixture()
def scans(monkeypatch):
    """How many folders ``os.scandir`` has read (the listing's only way to see a folder's entries)."""
    calls = []
    real = os.scandir

    def counting(path="."):
        if not isinstance(path, int):  # shutil.rmtree reads folders by descriptor
            calls.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(listing.os, "scandir", counting)
    forget_listings()
    yield calls
    forget_listings()


def _settle(root):
    """Date every folder under ``root`` an hour back, as a gallery copied long ago looks."""
    for folder, _, _ in os.walk(root):
        os.utime(folder, (LONG_AGO, LONG_AGO))


@pytest.fixture()
def gallery(tmp_path, monkeypatch):
    root = tmp_path / "gallery"
    for name in ("a/x.jpg", "a/y.PNG", "b/z.jpeg", "top.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not decoded here")
    (root / "b" / "notes.txt").write_text("not an image")
    _settle(root)
    # the folders' ctimes are now (utime sets them), so trust folders changed before the scan itself
    monkeypatch.setattr(listing, "RACY_SECONDS", 0.0)
    return root


def _names(paths, root):
    return [os.path.relpath(p, root) for p in paths]


def test_lists_images_recursively_in_path_order_without_other_files(gallery, scans):
    assert _names(list_folder(gallery), gallery) == ["a/x.jpg", "a/y.PNG", "b/z.jpeg", "top.jpg"]
    assert len(scans) == 3  # gallery, a, b


def test_an_unchanged_gallery_is_not_read_again(gallery, scans):
    first = list_folder(gallery)
    read = len(scans)
    assert list_folder(gallery) == first
    assert len(scans) == read


@pytest.mark.parametrize("change", ["add", "remove", "rename", "new_subfolder", "remove_subfolder"])
def test_a_change_in_any_folder_is_seen(gallery, scans, change):
    list_folder(gallery)
    if change == "add":
        (gallery / "b" / "new.jpg").write_bytes(b"x")
    elif change == "remove":
        (gallery / "a" / "x.jpg").unlink()
    elif change == "rename":
        (gallery / "a" / "y.PNG").rename(gallery / "a" / "y.txt")
    elif change == "new_subfolder":
        (gallery / "b" / "deeper").mkdir()
        (gallery / "b" / "deeper" / "w.jpg").write_bytes(b"x")
    else:
        shutil.rmtree(gallery / "a")
    expected = {
        "add": ["a/x.jpg", "a/y.PNG", "b/new.jpg", "b/z.jpeg", "top.jpg"],
        "remove": ["a/y.PNG", "b/z.jpeg", "top.jpg"],
        "rename": ["a/x.jpg", "b/z.jpeg", "top.jpg"],
        "new_subfolder": ["a/x.jpg", "a/y.PNG", "b/deeper/w.jpg", "b/z.jpeg", "top.jpg"],
        "remove_subfolder": ["b/z.jpeg", "top.jpg"],
    }[change]
    assert _names(list_folder(gallery), gallery) == expected


def test_a_file_added_with_the_folder_time_put_back_is_seen(gallery, scans):
    # rsync -a and tar restore a folder's mtime after writing into it; its ctime still moves
    list_folder(gallery)
    (gallery / "a" / "late.jpg").write_bytes(b"x")
    os.utime(gallery / "a", (LONG_AGO, LONG_AGO))
    assert "a/late.jpg" in _names(list_folder(gallery), gallery)


def test_a_folder_written_just_before_the_scan_is_read_again_next_time(tmp_path, scans):
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "one.jpg").write_bytes(b"x")  # its folder changed a moment ago: the clock may not have moved since
    list_folder(root)
    list_folder(root)
    assert scans == [str(root), str(root)]


def test_a_gallery_folder_that_is_gone_raises(gallery, scans):
    list_folder(gallery)
    shutil.rmtree(gallery)
    with pytest.raises(FileNotFoundError):
        list_folder(gallery)
