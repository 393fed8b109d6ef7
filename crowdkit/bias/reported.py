"""The dissertation's printed results (Tables 5.1 and 5.2, and named figures), as typed rows.

The numbers live in ``data/reported/`` (``bias_table_5_1.csv``, ``bias_table_5_2.csv``,
``bias_figures.csv``; see the README there), transcribed as printed. Each is read against
a declared schema (:mod:`crowdkit.common.reported`), so a malformed file fails with a
:class:`~crowdkit.common.exceptions.DatasetFormatError` naming the file, row and column.
Every number is a :class:`~crowdkit.common.reported.PrintedNumber`: its value and its
printed decimals.

Example::

    thesis = load_thesis_tables()
    thesis.evaluation_frame()                 # Table 5.1, one row per model
    thesis.figure("classifier_val_acc_high")  # PrintedNumber(text='0.51562', ...)
    audit_thesis_tables(thesis)               # Table 5.2 against Table 5.1
    audit_thesis_markdown(audit_thesis_tables(thesis))  # the same, in words for the audit page
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path

import pandas as pd

from crowdkit.common.exceptions import ConfigError, DatasetFormatError
from crowdkit.common.reported import (Column, PrintedNumber, counted, read_reported, reported_dir, rows_to_frame,
                                      unknown_name_message)

#: The two models the dissertation compares.
MODEL_TYPES = ("base", "modified")
#: The epoch counts of Tables 5.1 and 5.2.
EPOCHS = (30, 50, 75)

_MODEL = (Column("epochs", "int"), Column("type", "choice", MODEL_TYPES))
TABLE_5_1_SCHEMA = (Column("table", "choice", ("5.1",)), *_MODEL,
                    *(Column(n, "decimal") for n in ("accuracy", "accuracy_std", "val_rate", "val_rate_std",
                                                     "far", "auc")))
TABLE_5_2_SCHEMA = (Column("table", "choice", ("5.2",)), *_MODEL, Column("auc", "decimal"),
                    Column("auc_increase", "decimal", optional=True))
FIGURES_SCHEMA = (Column("name", "text"), Column("value", "decimal"), Column("source", "text"))


def _frame(rows, schema) -> pd.DataFrame:
    """Frozen-dataclass rows → a frame (see :func:`~crowdkit.common.reported.rows_to_frame`)."""
    return rows_to_frame([{f.name: getattr(r, f.name) for f in fields(r)} for r in rows], schema)


@dataclass(frozen=True)
class EvaluationRow:
    """One row of Table 5.1: a model's LFW accuracy ± std, validation rate ± std at a FAR, and AUC."""

    epochs: int
    type: str
    accuracy: PrintedNumber
    accuracy_std: PrintedNumber
    val_rate: PrintedNumber
    val_rate_std: PrintedNumber
    far: PrintedNumber
    auc: PrintedNumber


@dataclass(frozen=True)
class AucRow:
    """One row of Table 5.2: a model's AUC and its increase over the base model (missing for a base row)."""

    epochs: int
    type: str
    auc: PrintedNumber
    auc_increase: PrintedNumber


@dataclass(frozen=True)
class ReportedFigure:
    """A named scalar the dissertation prints, with where it is printed."""

    name: str
    value: PrintedNumber
    source: str


@dataclass(frozen=True)
class ThesisTables:
    """Table 5.1 (``evaluation``), Table 5.2 (``auc``) and the named ``figures``, in printed order."""

    evaluation: tuple[EvaluationRow, ...]
    auc: tuple[AucRow, ...]
    figures: tuple[ReportedFigure, ...]

    def evaluation_frame(self) -> pd.DataFrame:
        """Table 5.1 as a frame (floats plus ``<column>_printed`` text)."""
        return _frame(self.evaluation, TABLE_5_1_SCHEMA[1:])

    def auc_frame(self) -> pd.DataFrame:
        """Table 5.2 as a frame (``auc_increase`` NaN where printed "-")."""
        return _frame(self.auc, TABLE_5_2_SCHEMA[1:])

    def figures_frame(self) -> pd.DataFrame:
        """The named figures as a frame: ``name, value, value_printed, source``."""
        return _frame(self.figures, FIGURES_SCHEMA)

    def to_frame(self, table: str = "5.1") -> pd.DataFrame:
        """``"5.1"``, ``"5.2"`` or ``"figures"`` as a frame."""
        frames = {"5.1": self.evaluation_frame, "5.2": self.auc_frame, "figures": self.figures_frame}
        if table not in frames:
            raise ConfigError(unknown_name_message("table", table, list(frames)))
        return frames[table]()

    def figure(self, name: str) -> PrintedNumber:
        """The named figure; :class:`ConfigError` suggesting the closest name when unknown."""
        for figure in self.figures:
            if figure.name == name:
                return figure.value
        raise ConfigError(unknown_name_message("figure", name, [f.name for f in self.figures]))


def _model_rows(path: Path, schema) -> list[dict]:
    rows = read_reported(path, schema, key=("epochs", "type"))
    found = [(r["epochs"], r["type"]) for r in rows]
    expected = [(e, t) for e in EPOCHS for t in MODEL_TYPES]
    if found != expected:
        raise DatasetFormatError(f"{path}: rows (epochs, type) are {found}; expected {expected} "
                                 "(each epoch count, base then modified, as printed)")
    return rows


def load_thesis_tables(directory: str | Path | None = None) -> ThesisTables:
    """Read Tables 5.1, 5.2 and the named figures.

    Parameters
    ----------
    directory : str or Path, optional
        Folder holding ``bias_table_5_1.csv``, ``bias_table_5_2.csv`` and
        ``bias_figures.csv``; default the project's ``data/reported``.

    Returns
    -------
    ThesisTables

    Raises
    ------
    DatasetFormatError
        When a file does not follow its schema (file, row, column and value named), a
        row of the tables is missing or out of order, or a figure name repeats.
    """
    folder = Path(directory) if directory is not None else reported_dir()
    t51 = _model_rows(folder / "bias_table_5_1.csv", TABLE_5_1_SCHEMA)
    t52 = _model_rows(folder / "bias_table_5_2.csv", TABLE_5_2_SCHEMA)
    figures = read_reported(folder / "bias_figures.csv", FIGURES_SCHEMA, key=("name",))
    return ThesisTables(
        evaluation=tuple(EvaluationRow(**{k: v for k, v in r.items() if k != "table"}) for r in t51),
        auc=tuple(AucRow(**{k: v for k, v in r.items() if k != "table"}) for r in t52),
        figures=tuple(ReportedFigure(**r) for r in figures),
    )


def audit_thesis_tables(thesis: ThesisTables | None = None) -> pd.DataFrame:
    """Check Table 5.2 against Table 5.1: the same AUC, and increase = modified − base.

    Parameters
    ----------
    thesis : ThesisTables, optional
        Default: :func:`load_thesis_tables`.

    Returns
    -------
    pandas.DataFrame
        ``epochs, type, figure, printed, implied, ok, why``: per row of Table 5.2 its AUC
        (implied by Table 5.1) and its increase (implied by the two AUCs of Table 5.2;
        a base row must print "-"). Compared as decimals, exactly.
    """
    thesis = load_thesis_tables() if thesis is None else thesis
    auc_51 = {(r.epochs, r.type): r.auc for r in thesis.evaluation}
    auc_52 = {(r.epochs, r.type): r.auc for r in thesis.auc}
    out = []
    for row in thesis.auc:
        key = (row.epochs, row.type)
        same = key in auc_51 and Decimal(row.auc.text) == Decimal(auc_51[key].text)
        implied = auc_51[key].text if key in auc_51 else "-"
        out.append({"epochs": row.epochs, "type": row.type, "figure": "auc", "printed": row.auc.text,
                    "implied": implied, "ok": same, "why": f"Table 5.2 prints {row.auc.text}, Table 5.1 {implied}"})
        if row.type == "base":
            ok, implied = row.auc_increase.missing, "-"
        else:
            base = auc_52.get((row.epochs, "base"))
            implied = "-" if base is None else str(Decimal(row.auc.text) - Decimal(base.text))
            ok = not row.auc_increase.missing and implied != "-" and Decimal(row.auc_increase.text) == Decimal(implied)
        reason = "a base row has no counterpart" if row.type == "base" else f"modified − base AUC is {implied}"
        out.append({"epochs": row.epochs, "type": row.type, "figure": "auc_increase",
                    "printed": row.auc_increase.shown(), "implied": implied, "ok": ok,
                    "why": f"printed {row.auc_increase.shown()}; {reason}"})
    return pd.DataFrame(out)


def audit_thesis_markdown(audit: pd.DataFrame) -> str:
    """:func:`audit_thesis_tables` in words: figures checked, how many flagged, and a bullet per flag."""
    flagged = audit[~audit["ok"]]
    models = audit[["epochs", "type"]].drop_duplicates()
    lead = (f"Table 5.2 repeats Table 5.1's AUC for {counted(len(models), 'model')} and prints each modified "
            f"model's AUC increase over the base model trained as long: {counted(len(audit), 'figure')} checked, "
            "digit for digit, " + (f"**{counted(len(flagged), 'figure')} flagged**:" if len(flagged)
                                  else "and every one agrees."))
    names = {"auc": "AUC", "auc_increase": "AUC increase"}
    bullets = [f"- **Table 5.2**, {r.type} model at {r.epochs} epochs, {names.get(r.figure, r.figure)}: {r.why}."
               for r in flagged.itertuples()]
    return "\n".join([lead, "", *bullets]) if bullets else lead
