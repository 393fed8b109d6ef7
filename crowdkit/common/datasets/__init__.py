"""Dataset loaders, one module per dataset: UTKFace, LFW (folders and pairs files), identity folders (CASIA-WebFace layout, CelebA), AT&T.

Every loader finds its data through :func:`crowdkit.common.config.data_path` unless given a
folder, copes with the known problems of its dataset (see ``data/README.md`` in the
data folder) and says what it did in a frozen report instead of silently fixing it.

Example::

    >>> from crowdkit.common.datasets import load_utkface, split_stratified
    >>> index = load_utkface()                           # doctest: +SKIP
    >>> index.report.skipped_no_race                     # doctest: +SKIP
    ('39_1_20170116174525125.jpg.chip.jpg', ...)
    >>> train, test = split_stratified(index, test_size=0.3, seed=0)  # doctest: +SKIP
"""
from crowdkit.common.datasets.identities import (IdentityReport, IdentitySet, load_att, load_celeba,
                                                  load_identity_folders)
from crowdkit.common.datasets.lfw import PairSet, lfw_image_path, lfw_people, read_lfw_pairs
from crowdkit.common.datasets.utkface import (GENDER_NAMES, RACE_NAMES, LoadReport, UTKFaceIndex, UTKFaceRecord,
                                               load_utkface, parse_utkface_name, split_stratified,
                                               subsample_per_class)

__all__ = [
    "GENDER_NAMES", "RACE_NAMES", "IdentityReport", "IdentitySet", "LoadReport", "PairSet", "UTKFaceIndex",
    "UTKFaceRecord", "lfw_image_path", "lfw_people", "load_att", "load_celeba", "load_identity_folders",
    "load_utkface", "parse_utkface_name", "read_lfw_pairs", "split_stratified", "subsample_per_class",
]
