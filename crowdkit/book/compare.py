"""Compare two builds of the book: the tables runs saved, and the numbers their pages print.

A change that should not move any number (a refactoring, a faster engine with
the same model) is checked by building the book before and after and running::

    crowdkit book compare BEFORE/book/runs AFTER/book/runs

Two checks, strongest first:

- every ``<plan>/<run>/<table>.parquet`` found in both builds must be equal
  (columns, rows, values; floats to ``rtol``);
- for every executed notebook found in both, the decimal numbers its outputs
  show (``0.9882``, ``93.316``: two or more decimals, so run times such as
  ``43.2 s`` do not count) are compared as sets, since a rewritten notebook
  may show the same numbers in other cells or in another order. A number one
  build prints with more decimals than the other (``0.010269`` and
  ``0.0103``) counts as the same number when it rounds to it.

Paths inside saved tables are compared from their ``cache/`` or ``runs/``
folder on, so two builds with different ``CROWDKIT_HOME`` folders compare equal.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Numbers with at least two decimals, as a page prints them.
_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d{2,}(?![\w.])")
#: A path's machine-specific prefix: everything before its cache/ or runs/ folder.
_HOME_PREFIX = re.compile(r"^.*?/(?=(cache|runs)/)")
#: Output mime types whose text is searched for numbers.
_TEXT_TYPES = ("text/plain", "text/markdown", "text/html")


@dataclass(frozen=True)
class TableDifference:
    """One saved table that differs (or exists in one build only)."""

    table: str  # "<plan>/<run>/<name>"
    problem: str


@dataclass(frozen=True)
class PageNumbers:
    """The decimal numbers one page shows in a build and not in the other."""

    page: str  # "<plan>/<run>"
    only_before: tuple[str, ...]
    only_after: tuple[str, ...]
    n_before: int
    n_after: int

    @property
    def same(self) -> bool:
        return not self.only_before and not self.only_after


@dataclass(frozen=True)
class BuildComparison:
    tables_compared: int
    table_differences: tuple[TableDifference, ...]
    pages: tuple[PageNumbers, ...]

    @property
    def same(self) -> bool:
        return not self.table_differences and all(p.same for p in self.pages)

    def report(self, *, limit: int = 12) -> str:
        """A plain-text report: the tables that differ, then per page the numbers found on one side only."""
        lines = [f"{self.tables_compared} saved tables compared, {len(self.table_differences)} differ"]
        lines += [f"  {d.table}: {d.problem}" for d in self.table_differences]
        lines.append(f"{len(self.pages)} pages compared, {sum(not p.same for p in self.pages)} show other numbers")
        for page in self.pages:
            status = "same numbers" if page.same else "DIFFERENT"
            lines.append(f"  {page.page}: {page.n_before} → {page.n_after} decimal numbers, {status}")
            if not page.same:
                lines.append(f"    only before: {', '.join(page.only_before[:limit])}")
                lines.append(f"    only after:  {', '.join(page.only_after[:limit])}")
        return "\n".join(lines)


def compare_builds(before: str | Path, after: str | Path, *, rtol: float = 1e-9) -> BuildComparison:
    """Compare two ``book/runs`` folders (see the module docstring)."""
    before, after = Path(before), Path(after)
    tables = _relative_files(before, "*/*/*.parquet") & _relative_files(after, "*/*/*.parquet")
    differences = [d for name in sorted(tables) if (d := _compare_table(before / name, after / name, name, rtol))]
    only = _relative_files(before, "*/*/*.parquet") ^ _relative_files(after, "*/*/*.parquet")
    differences += [TableDifference(name, "saved in one build only") for name in sorted(only)]
    pages = _relative_files(before, "*/*.ipynb") & _relative_files(after, "*/*.ipynb")
    return BuildComparison(len(tables), tuple(differences),
                           tuple(_compare_page(before / p, after / p, p) for p in sorted(pages)))


def _relative_files(root: Path, pattern: str) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.glob(pattern) if ".staging" not in p.parts}


def _compare_table(before: Path, after: Path, name: str, rtol: float) -> TableDifference | None:
    a, b = pd.read_parquet(before), pd.read_parquet(after)
    if list(a.columns) != list(b.columns):
        return TableDifference(name, f"columns {list(a.columns)} → {list(b.columns)}")
    if len(a) != len(b):
        return TableDifference(name, f"{len(a)} → {len(b)} rows")
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            equal = np.isclose(x.to_numpy(), y.to_numpy(), rtol=rtol, atol=0, equal_nan=True)
        else:
            equal = (_portable(x) == _portable(y)).to_numpy()
        if not equal.all():
            row = int(np.flatnonzero(~equal)[0])
            return TableDifference(name, f"column {column!r} differs in {int((~equal).sum())} rows "
                                         f"(first: row {row}, {x.iloc[row]!r} → {y.iloc[row]!r})")
    return None


def _portable(values: pd.Series) -> pd.Series:
    """Text values with a path's home-folder prefix removed (see the module docstring)."""
    return values.astype(str).str.replace(_HOME_PREFIX, "", regex=True)


def page_numbers(path: str | Path) -> Counter:
    """The decimal numbers (as printed) in an executed notebook's outputs."""
    found: Counter = Counter()
    for cell in json.loads(Path(path).read_text(encoding="utf-8")).get("cells", []):
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [output.get("data", {}).get(t, "") for t in _TEXT_TYPES]
            for text in texts:
                found.update(_DECIMAL.findall("".join(text) if isinstance(text, list) else str(text)))
    return found


def _unmatched(numbers: set[str], others: set[str]) -> tuple[str, ...]:
    """Numbers not among ``others``, also not once the one with more decimals is rounded to the other's."""
    by_places: dict[int, list[float]] = {}
    for other in others:
        by_places.setdefault(len(other.split(".")[1]), []).append(float(other))
    left = []
    for number in sorted(numbers - others):
        places, value = len(number.split(".")[1]), float(number)
        matched = any(abs(value - o) <= 0.5 * 10.0 ** -min(places, d) + 1e-9
                      for d, values in by_places.items() if d != places for o in values)
        if not matched:
            left.append(number)
    return tuple(left)


def _compare_page(before: Path, after: Path, name: str) -> PageNumbers:
    a, b = page_numbers(before), page_numbers(after)
    # A page showing one number in two places before and one after still shows it: compare sets.
    return PageNumbers(name.removesuffix(".ipynb"), _unmatched(set(a), set(b)), _unmatched(set(b), set(a)),
                       sum(a.values()), sum(b.values()))
