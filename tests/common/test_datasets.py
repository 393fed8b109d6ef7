"""Loaders on the real data folder, plus tiny synthetic folders for the edge cases."""
from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from crowdkit.common.datasets import (
    RACE_NAMES,
    load_att,
    load_celeba,
    load_identity_folders,
    load_utkface,
    lfw_people,
    parse_utkface_name,
    read_lfw_pairs,
    split_stratified,
)
from crowdkit.common.exceptions import DataNotFoundError, DatasetFormatError, EmptyGalleryError


@pytest.fixture(scope="module")
def utk():
    return load_utkface()


# --------------------------------------------------------------------------- UTKFace, real folder


def test_utkface_names_without_race_are_skipped_and_listed(utk):
    assert utk.report.skipped_no_race == (
        "39_1_20170116174525125.jpg.chip.jpg",
        "61_1_20170109142408075.jpg.chip.jpg",
        "61_1_20170109150557335.jpg.chip.jpg",
    )
    names = {r.path.name for r in utk.records}
    assert not names & set(utk.report.skipped_no_race)


def test_utkface_malformed_extension_is_parsed(utk):
    assert utk.report.malformed_parsed == ("55_0_0_20170116232725357jpg.chip.jpg",)
    assert parse_utkface_name("55_0_0_20170116232725357jpg.chip.jpg") == (55, 0, 0)
    assert parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg") is None


def test_utkface_deduplicated_before_splitting(utk):
    report = utk.report
    assert report.files_seen == 6523
    assert report.parsed == 6520
    assert report.duplicate_groups == 375
    hashes = [r.sha256 for r in utk.records]
    assert len(hashes) == len(set(hashes)), "byte-identical files survived deduplication"
    # every parsed file is either kept or counted as removed
    assert report.kept + report.duplicates_removed == report.parsed
    # one kept per group, except race-conflict groups without a majority (all dropped)
    assert report.duplicates_removed == report.duplicate_files - (report.duplicate_groups - report.race_conflicts_dropped)
    assert len(report.conflicting_race) == report.race_conflicts_kept_by_majority + report.race_conflicts_dropped
    assert report.conflicting_race and report.conflicting_age and report.conflicting_gender
    dropped_names = {n for group in report.conflicting_race for n in group}
    kept_names = {r.path.name for r in utk.records}
    assert len(dropped_names & kept_names) == report.race_conflicts_kept_by_majority
    assert sum(report.class_counts.values()) == report.kept == len(utk)


def test_split_is_stratified_seeded_and_disjoint(utk):
    train, test = split_stratified(utk, test_size=0.3, seed=0)
    assert len(train) + len(test) == len(utk)
    assert abs(len(test) - 0.3 * len(utk)) <= 1
    assert not {r.sha256 for r in train.records} & {r.sha256 for r in test.records}
    share_all = np.bincount(utk.labels, minlength=5) / len(utk)
    share_test = np.bincount(test.labels, minlength=5) / len(test)
    assert np.abs(share_all - share_test).max() < 0.005
    again = split_stratified(utk, test_size=0.3, seed=0)[1]
    other = split_stratified(utk, test_size=0.3, seed=1)[1]
    assert again.paths == test.paths and other.paths != test.paths


# --------------------------------------------------------------------------- UTKFace, synthetic conflicts


def _write(folder, name, content: bytes):
    (folder / name).write_bytes(content)


def test_utkface_conflict_policy_majority_or_drop(tmp_path):
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    # three copies, races 1, 1, 2 → kept once under race 1 (majority)
    for name in ("20_0_1_20170101000000001.jpg.chip.jpg", "21_0_1_20170101000000002.jpg.chip.jpg",
                 "20_0_2_20170101000000003.jpg.chip.jpg"):
        _write(folder, name, b"photo-A")
    # two copies, races 0 and 3 → no majority, both dropped
    _write(folder, "30_1_0_20170101000000004.jpg.chip.jpg", b"photo-B")
    _write(folder, "30_1_3_20170101000000005.jpg.chip.jpg", b"photo-B")
    # two copies that agree on race but not gender → kept once, listed
    _write(folder, "40_0_4_20170101000000006.jpg.chip.jpg", b"photo-C")
    _write(folder, "40_1_4_20170101000000007.jpg.chip.jpg", b"photo-C")
    _write(folder, "50_0_3_20170101000000008.jpg.chip.jpg", b"photo-D")
    _write(folder, "not_a_utkface_name.jpg", b"photo-E")
    index = load_utkface(folder)
    report = index.report
    assert report.unparseable == ("not_a_utkface_name.jpg",)
    assert report.duplicate_groups == 3
    assert report.race_conflicts_kept_by_majority == 1 and report.race_conflicts_dropped == 1
    assert len(report.conflicting_gender) == 1 and len(report.conflicting_age) == 1  # 20 vs 21 in group A
    kept = {r.path.name: r.race for r in index.records}
    assert kept == {"20_0_1_20170101000000001.jpg.chip.jpg": 1, "40_0_4_20170101000000006.jpg.chip.jpg": 4,
                    "50_0_3_20170101000000008.jpg.chip.jpg": 3}


def test_utkface_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataNotFoundError):
        load_utkface(tmp_path / "nope")
    with pytest.raises(EmptyGalleryError):
        load_utkface(tmp_path)


# --------------------------------------------------------------------------- LFW


def test_lfw_view2_pairs(data_root):
    pairs = read_lfw_pairs(data_root / "lfw" / "pairs.txt")
    assert len(pairs) == 6000 and pairs.n_folds == 10
    for fold in range(10):
        in_fold = pairs.fold == fold
        assert in_fold.sum() == 600 and pairs.same[in_fold].sum() == 300
    assert pairs.paths1[0].name == "Abel_Pacheco_0001.jpg" and pairs.paths2[0].name == "Abel_Pacheco_0004.jpg"
    assert not pairs.same[300] and pairs.paths2[300].parent.name == "Dean_Barker"
    assert all(p.is_file() for p in pairs.unique_paths[:50])


def test_lfw_view1_pairs_one_fold(data_root):
    pairs = read_lfw_pairs(data_root / "lfw" / "pairsDevTrain.txt")
    assert len(pairs) == 2200 and pairs.n_folds == 1 and pairs.same.sum() == 1100


def test_lfw_pairs_missing_image_and_bad_format(tmp_path, data_root):
    lines = (data_root / "lfw" / "pairs.txt").read_text().splitlines()
    small = tmp_path / "pairs.txt"
    small.write_text("1 1\n" + lines[1] + "\n" + lines[301] + "\n")
    with pytest.raises(DataNotFoundError, match="Abel_Pacheco_0001.jpg"):
        read_lfw_pairs(small, images_root=tmp_path / "empty")
    ok = read_lfw_pairs(small, images_root=data_root / "lfw" / "images_deepfunneled")
    assert ok.same.tolist() == [True, False]
    swapped = tmp_path / "swapped.txt"
    swapped.write_text("1 1\n" + lines[301] + "\n" + lines[1] + "\n")
    with pytest.raises(DatasetFormatError, match="same-person"):
        read_lfw_pairs(swapped, check_files=False)
    short = tmp_path / "short.txt"
    short.write_text("10 300\n" + lines[1] + "\n")
    with pytest.raises(DatasetFormatError, match="6000"):
        read_lfw_pairs(short, check_files=False)


def test_lfw_people(lfw_dir):
    people = lfw_people(lfw_dir)
    assert len(people) == 5749
    assert sum(map(len, people.values())) == 13233
    assert len(lfw_people(lfw_dir, min_images=10)) == 158


# --------------------------------------------------------------------------- identity folders


def test_celeba_reports_conflicting_duplicates():
    celeba = load_celeba()
    report = celeba.report
    assert len(report.conflicting_duplicates) == 6
    assert len(report.dropped_files) == 12
    assert report.image_count == 3000 - 12 and len(celeba) == 150
    dropped = set(report.dropped_files)
    assert not any(p.name in dropped for paths in celeba.identities.values() for p in paths)
    kept_all = load_celeba(drop_conflicting_duplicates=False)
    assert kept_all.report.image_count == 3000
    assert len(kept_all.report.conflicting_duplicates) == 6


def test_identity_folders_empty_identity_reported(tmp_path, examples_dir):
    root = tmp_path / "casia"
    (root / "0000045").mkdir(parents=True)
    (root / "0000099").mkdir()
    shutil.copy(examples_dir / "obama.jpg", root / "0000045" / "001.jpg")
    (root / "0000045" / "002.jpg").write_bytes(b"")  # empty file: unreadable
    (root / "0000099" / "notes.txt").write_text("no images here")
    loaded = load_identity_folders(root)
    assert list(loaded.identities) == ["0000045"]
    assert loaded.report.empty_identities == ("0000099",)
    assert [p.endswith("002.jpg") for p in loaded.report.unreadable_files] == [True]
    (root / "0000045" / "003.jpg").write_bytes(b"not a jpeg")
    assert len(load_identity_folders(root).identities["0000045"]) == 2
    assert len(load_identity_folders(root, verify=True).identities["0000045"]) == 1


def test_identity_folders_all_empty_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(EmptyGalleryError, match="2 identity folder"):
        load_identity_folders(tmp_path)
    with pytest.raises(DataNotFoundError):
        load_identity_folders(tmp_path / "missing")


def test_att_numeric_order():
    att = load_att()
    assert len(att) == 40 and att.report.image_count == 400
    assert list(att.identities)[:3] == ["s1", "s2", "s3"] and list(att.identities)[-1] == "s40"
    assert [p.name for p in att.identities["s1"]] == [f"{i}.pgm" for i in range(1, 11)]


def test_race_names():
    assert RACE_NAMES == ("White", "Black", "Asian", "Indian", "Others")
    assert Counter(load_att().image_counts().values()) == {10: 40}
