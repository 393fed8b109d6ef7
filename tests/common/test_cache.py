"""crowdkit.common.cache: content-addressed .npz entries, corrupt entries are misses, writes are atomic."""
from __future__ import annotations

import numpy as np
import pytest

from crowdkit.common import config
from crowdkit.common.cache import ArrayCache, digest


@pytest.fixture()
def cache(isolated_home) -> ArrayCache:
    return ArrayCache("test-arrays", namespace="dlib@1/dlib")


def test_roundtrip_keeps_dtype_shape_and_values(cache):
    key = cache.key(b"\x00image bytes", "mtcnn", "dlib@1")
    arrays = {"embeddings": np.random.default_rng(0).normal(size=(3, 128)).astype(np.float32),
              "boxes": np.zeros((0, 4)), "names": np.array(["a", "bc"])}
    assert cache.get(key) is None
    cache.put(key, arrays)
    back = cache.get(key)
    assert set(back) == set(arrays)
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)
    assert key in cache


def test_lives_under_crowdkit_home(cache, isolated_home):
    key = cache.key("x")
    cache.put(key, {"a": np.arange(3)})
    assert cache.path(key).is_relative_to(config.cache_dir("test-arrays"))
    assert str(cache.path(key)).startswith(str(isolated_home))


def test_keys_depend_on_every_part_and_on_boundaries():
    assert digest("ab", "c") != digest("a", "bc")
    assert digest(b"ab") == digest("ab")
    assert ArrayCache.key("a", "b") != ArrayCache.key("a", "c")
    assert len(ArrayCache.key("a")) == 64


def test_namespaces_share_a_folder_but_not_entries(isolated_home, tmp_path):
    one = ArrayCache(tmp_path / "shared", namespace="mtcnn")
    two = ArrayCache(tmp_path / "shared", namespace="opencv")
    key = one.key("same image")
    one.put(key, {"a": np.ones(2)})
    assert two.get(key) is None
    two.clear()
    assert one.get(key) is not None
    one.clear()
    assert one.get(key) is None


@pytest.mark.parametrize("content", [b"", b"not a zip file", None])
def test_corrupt_entry_is_a_logged_miss(cache, caplog, content):
    key = cache.key("corrupt")
    path = cache.put(key, {"a": np.arange(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if content is None else content)  # None: truncated
    with caplog.at_level("WARNING", logger="crowdkit.common.cache"):
        assert cache.get(key) is None
    assert "unreadable" in caplog.text
    cache.put(key, {"a": np.arange(3)})  # a put repairs it
    np.testing.assert_array_equal(cache.get(key)["a"], np.arange(3))


def test_pickled_object_arrays_are_refused(cache):
    with pytest.raises(TypeError, match="object"):
        cache.put(cache.key("o"), {"a": np.array([{"x": 1}], dtype=object)})
    # an entry holding a pickle (written by something else) is not unpickled
    key = cache.key("pickle")
    path = cache.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    assert cache.get(key) is None


def test_crash_during_write_leaves_old_entry_and_no_temp_files(cache, monkeypatch):
    key = cache.key("atomic")
    cache.put(key, {"a": np.arange(3)})

    def crash_midway(handle, **arrays):  # a crash after half the bytes are out
        handle.write(b"PK\x03\x04 half an npz")
        raise OSError("disk full")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk full"):
        patch.setattr(np, "savez", crash_midway)
        cache.put(key, {"a": np.arange(5)})
    np.testing.assert_array_equal(cache.get(key)["a"], np.arange(3))
    assert [p.name for p in cache.path(key).parent.iterdir()] == [cache.path(key).name]
