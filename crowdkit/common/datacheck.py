"""Verify the data folder against its SHA256SUMS and say what is present."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from crowdkit.common import config
from crowdkit.common.exceptions import DataNotFoundError
from crowdkit.common.io import sha256_file, show_progress


@dataclass(frozen=True)
class DataReport:
    root: Path
    checked: int
    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    files_per_dataset: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


def read_checksums(sums_file: Path) -> dict[str, str]:
    entries = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.lstrip("*")] = digest
    return entries


def check_data(root: Path | None = None, *, progress: bool = True) -> DataReport:
    """Hash every file listed in ``root/SHA256SUMS``; missing and altered files are reported."""
    root = Path(root) if root else config.data_root()
    sums_file = root / "SHA256SUMS"
    if not sums_file.is_file():
        raise DataNotFoundError(f"{sums_file} not found: cannot verify {root}")
    expected = read_checksums(sums_file)
    missing, mismatched, counts = [], [], {}
    for name, digest in tqdm(expected.items(), desc="checking data", unit="file", disable=not show_progress(progress)):
        path = root / name
        dataset = name.split("/", 1)[0]
        if not path.is_file():
            missing.append(name)
            continue
        counts[dataset] = counts.get(dataset, 0) + 1
        if sha256_file(path) != digest:
            mismatched.append(name)
    return DataReport(root, len(expected), tuple(missing), tuple(mismatched), counts)
