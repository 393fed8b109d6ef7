"""Reading the figures transcribed from the two studies (``data/reported/*.csv``).

Each file is read against a declared schema: every column has a kind (an integer, a
decimal kept as printed, free text, or a choice from a fixed set) and may be optional
(an empty cell, which is how a printed "-" is kept). A file that does not follow its
schema fails with :class:`~crowdkit.common.exceptions.DatasetFormatError` naming the file,
the data row and CSV line, the column, the value and what was expected.

A decimal is read into a :class:`PrintedNumber`, which keeps the text as printed and so
the number of printed decimals: an audit needs them to tell a rounded or truncated figure
from a wrong one.

Example::

    schema = (Column("table", "int"), Column("member", "choice", choices=("Peter", "Ahmed")),
              Column("recall", "decimal", optional=True))
    rows = read_reported(reported_path("crowd_tables.csv"), schema)
    rows[0]["recall"].decimals
"""
from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from crowdkit.common import config
from crowdkit.common.exceptions import DatasetFormatError

#: Kinds a :class:`Column` may declare.
KINDS = ("int", "decimal", "text", "choice")
#: Tolerance added to half a printed unit, for binary floating point.
EPSILON = 1e-9

_INT = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")


def reported_dir() -> Path:
    """The project's ``data/reported`` folder (beside the package in a checkout)."""
    return config.PROJECT_ROOT / "data" / "reported"


def reported_path(name: str) -> Path:
    """A file in :func:`reported_dir`, e.g. ``reported_path("crowd_tables.csv")``."""
    return reported_dir() / name


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name`` (case-insensitive), or None when none is close."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[match[0]] if match else None


def unknown_name_message(what: str, name: str, known: Sequence[str]) -> str:
    """``"unknown member 'Petr' (known: ...); did you mean 'Peter'?"``."""
    guess = closest(name, known)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return f"unknown {what} {name!r} (known: {', '.join(known)}){hint}"


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``"1 figure"``, ``"7 figures"``: a count with its noun, for prose the library writes."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


@dataclass(frozen=True)
class PrintedNumber:
    """A number as a document printed it.

    Attributes
    ----------
    text : str
        The digits exactly as printed; ``""`` where the document printed "-".
    value : float or None
        The number, None when missing.
    decimals : int
        Digits after the decimal point in ``text`` (0 when missing).
    """

    text: str
    value: float | None
    decimals: int

    @classmethod
    def parse(cls, text: str) -> "PrintedNumber":
        """Read ``"93.316"``, ``"100"``, ``"-0.085"`` or ``""`` (missing); ValueError otherwise."""
        text = text.strip()
        if text == "":
            return cls("", None, 0)
        if not _DECIMAL.fullmatch(text):
            raise ValueError(f"{text!r} is not a decimal number")
        return cls(text, float(text), len(text.split(".")[1]) if "." in text else 0)

    @property
    def missing(self) -> bool:
        return self.value is None

    @property
    def unit(self) -> float:
        """One unit of the last printed decimal (0.001 for ``"93.316"``)."""
        return 10.0 ** -self.decimals

    def shown(self) -> str:
        """The text as the document shows it: ``"-"`` when missing."""
        return "-" if self.missing else self.text

    def format(self, value: float | None) -> str:
        """``value`` with this number's printed decimals (``"-"`` for None or NaN)."""
        if value is None or value != value:
            return "-"
        return f"{value:.{self.decimals}f}"

    def rounds_to(self, value: float) -> bool:
        """True when ``value`` rounded to the printed decimals gives this number."""
        return not self.missing and abs(value - self.value) <= self.unit / 2 + EPSILON

    def truncates_to(self, value: float) -> bool:
        """True when ``value`` cut (towards zero) after the printed decimals gives this number."""
        if self.missing:
            return False
        if self.value > 0 or (self.value == 0 and value >= 0):
            return self.value - EPSILON <= value < self.value + self.unit - EPSILON
        return self.value - self.unit + EPSILON < value <= self.value + EPSILON

    def states(self, precise: "PrintedNumber") -> str | None:
        """How this (less precise) number states ``precise``: "equal", "rounded", "truncated" or None.

        Compares decimal text exactly, so ``"98.2"`` does not state ``"98.528"`` while
        ``"95"`` states ``"95.733"`` (truncated) and ``"92.62"`` states ``"92.620"``.
        """
        if self.missing or precise.missing:
            return None
        mine, theirs = Decimal(self.text), Decimal(precise.text)
        if mine == theirs:
            return "equal"
        if self.decimals >= precise.decimals:
            return None
        step = Decimal(1).scaleb(-self.decimals)
        if theirs.quantize(step, rounding=ROUND_HALF_UP) == mine:
            return "rounded"
        if theirs.quantize(step, rounding=ROUND_DOWN) == mine:
            return "truncated"
        return None


@dataclass(frozen=True)
class Column:
    """One declared column of a reported CSV.

    Attributes
    ----------
    name : str
        The header.
    kind : {"int", "decimal", "text", "choice"}
        How a cell is read: an ``int``, a :class:`PrintedNumber`, a ``str``, or a ``str``
        that must be one of ``choices``.
    choices : tuple of str
        The allowed values of a ``choice`` column.
    optional : bool
        Whether a cell may be empty (then None, or a missing :class:`PrintedNumber`).
    """

    name: str
    kind: str
    choices: tuple[str, ...] = ()
    optional: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"column {self.name!r}: choices go with kind 'choice' only, and it needs some")

    def expected(self) -> str:
        """What a cell should hold, in words (for error messages)."""
        what = {"int": "an integer", "decimal": "a decimal number as printed, e.g. 93.316",
                "text": "non-empty text",
                "choice": "one of " + ", ".join(self.choices)}[self.kind]
        return what + (" or an empty cell (printed '-')" if self.optional else "")

    def read(self, cell: str) -> object:
        """The cell's value; ValueError (its message a short reason) when it does not fit."""
        cell = cell.strip()
        if cell == "":
            if not self.optional:
                raise ValueError("empty")
            return PrintedNumber.parse("") if self.kind == "decimal" else None
        if self.kind == "int":
            if not _INT.fullmatch(cell):
                raise ValueError("not an integer")
            return int(cell)
        if self.kind == "decimal":
            if not _DECIMAL.fullmatch(cell):
                raise ValueError("not a decimal number")
            return PrintedNumber.parse(cell)
        if self.kind == "choice" and cell not in self.choices:
            guess = closest(cell, self.choices)
            raise ValueError("not a known value" + (f"; did you mean {guess!r}?" if guess else ""))
        return cell


def _check_header(path: Path, header: list[str], schema: Sequence[Column]) -> None:
    declared = [c.name for c in schema]
    missing = [n for n in declared if n not in header]
    extra = [h for h in header if h not in declared]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected column(s) {', '.join(extra)}"] if extra else [])
        raise DatasetFormatError(f"{path}: {'; '.join(parts)} (expected columns: {', '.join(declared)})")


def read_reported(path: str | Path, schema: Sequence[Column], *,
                  key: Sequence[str] = ()) -> list[dict[str, object]]:
    """Read a reported CSV against ``schema``.

    Parameters
    ----------
    path : str or Path
        The CSV file (UTF-8, a header line, comma-separated).
    schema : sequence of Column
        Every column the file must have, in any order; other columns are an error.
    key : sequence of str
        Columns whose values together must be unique over the rows.

    Returns
    -------
    list of dict
        One dict per data row, column name → value read by :meth:`Column.read`.

    Raises
    ------
    DatasetFormatError
        Naming the file, the 1-based data row and its CSV line, the column, the value
        and what was expected; or the file and its missing or unexpected columns.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetFormatError(f"{path} does not exist (a transcribed-figures CSV was expected)") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    _check_header(path, header, schema)
    by_name = {c.name: c for c in schema}
    rows, seen = [], {}
    for number, cells in enumerate(reader, start=1):
        where = f"{path}: data row {number} (line {reader.line_num})"
        if len(cells) != len(header):
            raise DatasetFormatError(f"{where}: {len(cells)} fields, expected {len(header)} ({', '.join(header)})")
        row = {}
        for name, cell in zip(header, cells):
            column = by_name[name]
            try:
                row[name] = column.read(cell)
            except ValueError as err:
                raise DatasetFormatError(
                    f"{where}, column {name!r}: {cell!r} is {err}; expected {column.expected()}") from None
        if key:
            ident = tuple(row[k] for k in key)
            if ident in seen:
                raise DatasetFormatError(
                    f"{where}: {dict(zip(key, ident))} repeats data row {seen[ident]}; each must appear once")
            seen[ident] = number
        rows.append(row)
    if not rows:
        raise DatasetFormatError(f"{path} holds a header but no data rows")
    return rows


def rows_to_frame(rows: Sequence[dict[str, object]], schema: Sequence[Column]) -> pd.DataFrame:
    """Rows of :func:`read_reported` as a frame, columns in schema order.

    A decimal column becomes a float (NaN when missing) followed by ``<name>_printed``
    (the text as printed, ``""`` when missing); an int column is ``int64`` (``Int64``
    when optional); a text or choice column is ``str`` (``""`` when missing).
    """
    data: dict[str, object] = {}
    for column in schema:
        values = [r[column.name] for r in rows]
        if column.kind == "decimal":
            data[column.name] = [float("nan") if v.missing else v.value for v in values]
            data[f"{column.name}_printed"] = [v.text for v in values]
        elif column.kind == "int":
            data[column.name] = pd.array(values, dtype="Int64" if column.optional else "int64")
        else:
            data[column.name] = ["" if v is None else v for v in values]
    return pd.DataFrame(data)
