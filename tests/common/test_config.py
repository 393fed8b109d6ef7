
import pytest

from crowdkit.common import config
from crowdkit.common.datacheck import check_data, read_checksums
from crowdkit.common.exceptions import DataNotFoundError, UnknownBackendError
from crowdkit.common.io import atomic_path, write_bytes_atomic
from crowdkit.common.registry import Registry


def test_data_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CROWDKIT_DATA", str(tmp_path))
    assert config.data_root() == tmp_path.resolve()


def test_missing_data_root_names_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("CROWDKIT_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="nowhere"):
        config.data_root()


def test_data_check_detects_missing_and_altered_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("hello")
    (tmp_path / "a" / "y.txt").write_text("changed")
    hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    (tmp_path / "SHA256SUMS").write_text(f"{hello}  a/x.txt\n{hello}  a/y.txt\n{hello}  a/z.txt\n")
    report = check_data(tmp_path, progress=False)
    assert report.missing == ("a/z.txt",)
    assert report.mismatched == ("a/y.txt",)
    assert not report.ok


def test_shared_data_sums_parse(data_root):
    sums = read_checksums(data_root / "SHA256SUMS")
    assert any(name.startswith("lfw/") for name in sums)


def test_registry_lists_known_names():
    registry = Registry("widget")
    registry.register("b")(object)
    registry.register("a")(object)
    with pytest.raises(UnknownBackendError, match="known widgets: a, b"):
        registry.get("c")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_gives_normal_permissions(tmp_path):
    import os

    with atomic_path(tmp_path / "shared.txt") as tmp:
        tmp.write_text("readable by others")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "shared.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_bytes_atomic_creates_folders_replaces_and_gives_normal_permissions(tmp_path):
    import os

    target = tmp_path / "ab" / "cd" / "entry.npz"
    write_bytes_atomic(target, b"first")
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["entry.npz"]


def test_write_bytes_atomic_leaves_the_old_file_and_no_part_file_on_failure(tmp_path):
    target = tmp_path / "entry.npz"
    write_bytes_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_bytes_atomic(target, "text, not bytes")  # fails inside the write, after the .part file exists
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["entry.npz"]
