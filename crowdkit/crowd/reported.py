"""The crowd report's printed figures, and audits of them against their own counts.

``data/reported/crowd_tables.csv`` holds the report's 20 performance tables as printed
(see ``data/reported/README.md``). :func:`audit_crowd_tables` recomputes every printed
figure from the same table's counts under the report's own definitions (those of its
appendix notebook, in percent):

- total positives = TP + FP and total negatives = TN + FN (the *predicted* classes);
- precision = TP / (TP + FP), undefined when nothing was predicted positive;
- recall = TP / (TP + FN); accuracy = (TP + TN) / all faces;
- F1 = 2·P·R / (P + R), undefined when precision is (or when P + R = 0).

A printed rate agrees when the recomputed value, rounded to the printed decimals, gives
it (half a unit of the last printed decimal, plus a tiny epsilon); with
``truncation=True`` (the default) a value cut after the printed decimals also agrees,
since the report truncates many of its figures. :func:`audit_prose` checks the figures
stated in the report's analysis paragraphs (``crowd_prose.csv``) against the tables.

The audit page (``notebooks/crowd/audit.ipynb``) shows them through
:func:`audit_markdown` and :func:`prose_markdown` (its prose, counts and one bullet per
flag), :func:`flagged_figures` and :func:`unsupported_claims` (its tables) and
:func:`plot_audit_grid` (a cell per printed figure, coloured by :func:`figure_status`).

Example::

    tables = load_crowd_tables(members=["Peter"])
    audit = audit_crowd_tables(tables)
    audit.loc[~audit["ok"], ["table", "figure", "printed", "implied", "why"]]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from crowdkit.common.exceptions import ConfigError, DatasetFormatError
from crowdkit.common.reported import (Column, PrintedNumber, counted, read_reported, reported_path, rows_to_frame,
                                      unknown_name_message)

#: The report's row labels, in its order.
MEMBERS = ("Peter", "Ahmed", "Yousef", "Nawfal")
#: The report's challenges ("Mask Challenge 1/2" are mask1/mask2).
CHALLENGES = ("normal", "compact", "intruder", "random", "mask1", "mask2")
OUTCOMES = ("TP", "FP", "TN", "FN")
COUNTS = ("total_positives", "total_negatives", *OUTCOMES)
RATES = ("precision", "recall", "f1", "accuracy")
#: Figures a prose claim may name: a table column, TP + FN, or the decision threshold.
PROSE_FIGURES = (*COUNTS, *RATES, "actual_positives", "threshold")
RELATIONS = ("=", "<", ">", "undefined")

_RUN = (Column("table", "int"), Column("member", "choice", MEMBERS), Column("challenge", "choice", CHALLENGES))
TABLES_SCHEMA = (*_RUN, *(Column(c, "int") for c in COUNTS), *(Column(r, "decimal", optional=True) for r in RATES))
EXAMPLES_SCHEMA = (*_RUN, Column("outcome", "choice", OUTCOMES), Column("index", "int"),
                   Column("value", "decimal", optional=True))
PROSE_SCHEMA = (Column("table", "int", optional=True), Column("member", "choice", MEMBERS, optional=True),
                Column("challenge", "choice", CHALLENGES, optional=True), Column("figure", "choice", PROSE_FIGURES),
                Column("relation", "choice", RELATIONS), Column("value", "decimal", optional=True),
                Column("source", "text"))


def _known(what: str, names: Iterable[str] | None, known: Sequence[str]) -> tuple[str, ...] | None:
    names = (names,) if isinstance(names, str) else None if names is None else tuple(names)
    for name in names or ():
        if name not in known:
            raise ConfigError(unknown_name_message(what, name, known))
    return names


def _load(path, default: str, schema, key, members, challenges) -> pd.DataFrame:
    members, challenges = _known("member", members, MEMBERS), _known("challenge", challenges, CHALLENGES)
    frame = rows_to_frame(read_reported(Path(path) if path is not None else reported_path(default), schema, key=key),
                          schema)
    if members is not None:
        frame = frame[frame["member"].isin(members)]
    if challenges is not None:
        frame = frame[frame["challenge"].isin(challenges)]
    return frame.reset_index(drop=True)


def load_crowd_tables(path: str | Path | None = None, *, members: Iterable[str] | None = None,
                      challenges: Iterable[str] | None = None) -> pd.DataFrame:
    """The printed performance tables (Tables 3, 5, …, 41), one row per run.

    Parameters
    ----------
    path : str or Path, optional
        Default: ``data/reported/crowd_tables.csv`` of the project.
    members, challenges : iterable of str, optional
        Keep only these runs; a name outside :data:`MEMBERS` / :data:`CHALLENGES` raises
        :class:`~crowdkit.common.exceptions.ConfigError` suggesting the closest known one.

    Returns
    -------
    pandas.DataFrame
        ``table, member, challenge``, the six counts, and per rate a float (NaN where
        printed "-") and ``<rate>_printed`` (the digits as printed, ``""`` for "-").
    """
    return _load(path, "crowd_tables.csv", TABLES_SCHEMA, ("member", "challenge"), members, challenges)


def load_crowd_examples(path: str | Path | None = None, *, members: Iterable[str] | None = None,
                        challenges: Iterable[str] | None = None) -> pd.DataFrame:
    """The example cosine distances of the results tables (Tables 2, 4, …, 40); see :func:`load_crowd_tables`."""
    return _load(path, "crowd_examples.csv", EXAMPLES_SCHEMA, ("table", "outcome", "index"), members, challenges)


def prose_claims(path: str | Path | None = None) -> pd.DataFrame:
    """The figures the report's analysis paragraphs (and its Methodology) state, one row each.

    A claim names its run (``table, member, challenge``; all empty for the Methodology's
    threshold), the ``figure``, a ``relation`` (``=``, ``<``, ``>`` or ``undefined``) and
    the ``value`` as stated (empty exactly for ``undefined``); ``value`` and
    ``value_printed`` are as in :func:`load_crowd_tables`.
    """
    source = Path(path) if path is not None else reported_path("crowd_prose.csv")
    claims = _load(source, "crowd_prose.csv", PROSE_SCHEMA, (), None, None)
    for number, claim in enumerate(claims.itertuples(index=False), start=1):
        if (claim.relation == "undefined") != (claim.value_printed == ""):
            raise DatasetFormatError(f"{source}: data row {number}, column 'value': {claim.value_printed!r} "
                                     f"with relation {claim.relation!r}; expected a value exactly unless "
                                     "the relation is 'undefined'")
        if pd.isna(claim.table) != (claim.member == "") or pd.isna(claim.table) != (claim.challenge == ""):
            raise DatasetFormatError(f"{source}: data row {number}, column 'table': table, member and "
                                     "challenge must be given together (or all left empty)")
    return claims


def study_rates(tp: int, fp: int, tn: int, fn: int) -> dict[str, float | None]:
    """Precision, recall, F1 and accuracy in percent under the report's definitions; None = undefined."""
    precision = 100 * tp / (tp + fp) if tp + fp else None
    recall = 100 * tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall else None)
    total = tp + fp + tn + fn
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": 100 * (tp + tn) / total if total else None}


@dataclass(frozen=True)
class FigureCheck:
    """One printed figure of one table beside what the table's counts imply (a row of the audit)."""

    table: int
    member: str
    challenge: str
    figure: str
    printed: str  # as printed; "-" where the report printed nothing
    recomputed: float  # NaN where the definition leaves the figure undefined
    implied: str  # ``recomputed`` with the printed decimals ("-" when undefined)
    ok: bool
    rounding: str  # "exact", "rounded", "truncated" or "" (disagrees or not a number)
    why: str


def _formula(figure: str, tp: int, fp: int, tn: int, fn: int) -> str:
    return {"precision": f"TP/(TP+FP) = {tp}/{tp + fp}", "recall": f"TP/(TP+FN) = {tp}/{tp + fn}",
            "accuracy": f"(TP+TN)/all = {tp + tn}/{tp + fp + tn + fn}", "f1": "2·P·R/(P+R)"}[figure]


def _undefined_reason(figure: str, tp: int, fp: int, fn: int) -> str:
    if figure == "precision" or (figure == "f1" and tp + fp == 0):
        return "TP + FP = 0 (no face predicted positive)" if figure == "precision" else "precision is undefined"
    if figure == "recall" or (figure == "f1" and tp + fn == 0):
        return "TP + FN = 0 (the subject is never among the faces)" if figure == "recall" else "recall is undefined"
    return "precision + recall = 0" if figure == "f1" else "the table counts no faces"


def _check_total(row, figure: str) -> FigureCheck:
    a, b, names = (row.TP, row.FP, "TP + FP") if figure == "total_positives" else (row.TN, row.FN, "TN + FN")
    printed, implied = int(getattr(row, figure)), a + b
    ok = printed == implied
    why = (f"printed {printed} = {names} = {a} + {b}" if ok
           else f"printed {printed} but {names} from the printed counts is {a} + {b} = {implied}")
    return FigureCheck(row.table, row.member, row.challenge, figure, str(printed), float(implied), str(implied),
                       ok, "exact" if ok else "", why)


def _check_rate(row, figure: str, rates: dict, truncation: bool) -> FigureCheck:
    tp, fp, tn, fn = (int(getattr(row, o)) for o in OUTCOMES)
    printed = PrintedNumber.parse(getattr(row, f"{figure}_printed"))
    value, shown = rates[figure], printed.shown()
    formula = _formula(figure, tp, fp, tn, fn)
    rounding = ""
    if value is None:
        ok = printed.missing
        why = f"printed {shown} {'and' if ok else 'but'} {figure} is undefined: {_undefined_reason(figure, tp, fp, fn)}"
        return FigureCheck(row.table, row.member, row.challenge, figure, shown, float("nan"), "-", ok, "", why)
    implied = (printed if not printed.missing else PrintedNumber("0.000", 0.0, 3)).format(value)
    if printed.missing:
        ok, why = False, f"printed - but {formula} from the printed counts is {implied}"
    elif printed.rounds_to(value) or (truncation and printed.truncates_to(value)):
        rounding = "exact" if abs(value - printed.value) < 1e-12 else (
            "rounded" if printed.rounds_to(value) else "truncated")
        ok, why = True, f"printed {shown} is {formula} = {value:.{printed.decimals + 3}f} {rounding}"
    else:
        ok, why = False, f"printed {shown} but {formula} from the printed counts is {implied}"
        alias = [o for o in RATES if o != figure and rates[o] is not None and printed.rounds_to(rates[o])]
        why += f" (printed {shown} is the counts' {alias[0]})" if alias else ""
        if figure == "f1" and row.precision_printed != "" and row.recall_printed != "":
            p, r = float(row.precision_printed), float(row.recall_printed)
            if p + r:
                why += f" (from the printed precision and recall: {printed.format(2 * p * r / (p + r))})"
    return FigureCheck(row.table, row.member, row.challenge, figure, shown, value, implied, ok, rounding, why)


def audit_crowd_tables(tables: pd.DataFrame | None = None, *, truncation: bool = True) -> pd.DataFrame:
    """Check every printed total and rate against the same table's counts.

    Parameters
    ----------
    tables : pandas.DataFrame, optional
        As returned by :func:`load_crowd_tables` (the default: all of them).
    truncation : bool
        Whether a rate cut (not rounded) after its printed decimals agrees.

    Returns
    -------
    pandas.DataFrame
        One row per (table, figure) with the fields of :class:`FigureCheck`; ``ok`` is
        False for a figure beyond its printed rounding, a number printed where the
        definition leaves it undefined, a "-" where it is defined, and a total that is
        not TP + FP / TN + FN.
    """
    tables = load_crowd_tables() if tables is None else tables
    needed = [c for c in ("table", "member", "challenge", *COUNTS, *(f"{r}_printed" for r in RATES))
              if c not in tables.columns]
    if needed:
        raise ConfigError(f"audit_crowd_tables needs the columns of load_crowd_tables; missing {', '.join(needed)}")
    checks = []
    for row in tables.itertuples(index=False):
        rates = study_rates(*(int(getattr(row, o)) for o in OUTCOMES))
        checks += [_check_total(row, "total_positives"), _check_total(row, "total_negatives")]
        checks += [_check_rate(row, figure, rates, truncation) for figure in RATES]
    return pd.DataFrame([asdict(c) for c in checks], columns=list(FigureCheck.__dataclass_fields__))


def _judge_claim(claim, row, reference: PrintedNumber | None) -> tuple[str, bool, str, str]:
    """(table value as printed, supported, how, why) for one prose claim."""
    stated = PrintedNumber.parse(claim.value_printed)
    if claim.figure == "threshold":
        if reference is None or pd.isna(claim.table):
            return stated.shown(), True, "reference", "the threshold the Methodology states for every run"
        ok = Decimal(stated.text) == Decimal(reference.text)
        return reference.text, ok, "equal" * ok, (f"stated {stated.text} {'as' if ok else 'but'} the "
                                                  f"Methodology states {reference.text}")
    if row is None or (row.member, row.challenge) != (claim.member, claim.challenge):
        return "", False, "", f"Table {claim.table} is not the {claim.member} {claim.challenge} performance table"
    if claim.figure in RATES:
        printed = PrintedNumber.parse(getattr(row, f"{claim.figure}_printed"))
    else:
        count = row.TP + row.FN if claim.figure == "actual_positives" else getattr(row, claim.figure)
        printed = PrintedNumber(str(int(count)), float(count), 0)
    where, shown = f"Table {row.table}", printed.shown()
    if claim.relation == "undefined" or printed.missing:
        ok, said = claim.relation == "undefined" and printed.missing, stated.text or "undefined"
        return shown, ok, "undefined" * ok, f"stated {said} {'and' if ok else 'but'} {where} prints {shown}"
    if claim.relation in ("<", ">"):
        ok = printed.value < stated.value if claim.relation == "<" else printed.value > stated.value
        return shown, ok, "bound" * ok, f"stated {claim.relation} {stated.text}; {where} prints {shown}"
    how = stated.states(printed)
    if how is not None:
        return shown, True, how, f"stated {stated.text} is {where}'s {shown}" + f" {how}" * (how != "equal")
    others = [c for c in (*OUTCOMES, *COUNTS[:2]) if claim.figure not in RATES and c != claim.figure
              and stated.value == getattr(row, c)]  # a count stated for another, e.g. TP as the total positives
    return shown, False, "", f"stated {stated.text} but {where} prints {shown}" + (
        f" ({stated.text} is its {others[0]})" if others else "")


def audit_prose(claims: pd.DataFrame | None = None, tables: pd.DataFrame | None = None) -> pd.DataFrame:
    """Check each figure the report's text states against its tables.

    A stated number is supported when it equals the table's printed value, or that value
    rounded or truncated to the stated decimals; a bound (``<``, ``>``) when the printed
    value satisfies it; "undefined" when the table prints "-". A stated threshold is
    compared with the one the Methodology states (the claim without a table).

    Parameters
    ----------
    claims, tables : pandas.DataFrame, optional
        From :func:`prose_claims` and :func:`load_crowd_tables` (the defaults).

    Returns
    -------
    pandas.DataFrame
        ``table, member, challenge, figure, relation, stated, table_value, supported,
        how, why, source``, one row per claim.
    """
    claims = prose_claims() if claims is None else claims
    tables = load_crowd_tables() if tables is None else tables
    by_table = {int(r.table): r for r in tables.itertuples(index=False)}
    refs = claims[(claims["figure"] == "threshold") & claims["table"].isna()]
    reference = PrintedNumber.parse(refs["value_printed"].iloc[0]) if len(refs) else None
    out = []
    for claim in claims.itertuples(index=False):
        row = None if pd.isna(claim.table) else by_table.get(int(claim.table))
        table_value, supported, how, why = _judge_claim(claim, row, reference)
        out.append({"table": claim.table, "member": claim.member, "challenge": claim.challenge,
                    "figure": claim.figure, "relation": claim.relation,
                    "stated": PrintedNumber.parse(claim.value_printed).shown(), "table_value": table_value,
                    "supported": supported, "how": how, "why": why, "source": claim.source})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- the audit page

#: How a printed figure fares in the audit, in the order of the page's legend.
STATUSES = ("agrees", "truncated", "undefined", "flagged")
#: The figures' names on the page.
FIGURE_LABELS = {"total_positives": "total positives", "total_negatives": "total negatives",
                 "precision": "precision", "recall": "recall", "f1": "F1", "accuracy": "accuracy",
                 "actual_positives": "actual positives (TP + FN)", "threshold": "threshold"}
_STATUS_COLOURS = ("#4575b4", "#abd9e9", "#d9d9d9", "#d73027")  # blue, light blue, grey, red


def figure_status(audit: pd.DataFrame) -> pd.Series:
    """Each row of :func:`audit_crowd_tables` as one of :data:`STATUSES`.

    ``agrees``: the counts give the printed figure exactly or rounded; ``truncated``: only
    when cut after the printed decimals; ``undefined``: printed "-" where the definition
    leaves the figure undefined; ``flagged``: ``ok`` is False.
    """
    status = pd.Series("agrees", index=audit.index, name="status")
    status[audit["ok"] & (audit["rounding"] == "truncated")] = "truncated"
    status[audit["ok"] & (audit["rounding"] == "")] = "undefined"
    status[~audit["ok"]] = "flagged"
    return status


def _run_label(table, member: str, challenge: str) -> str:
    """``"Table 3 (Peter, normal)"``; ``"the Methodology"`` for a claim without a table."""
    return "the Methodology" if pd.isna(table) else f"Table {int(table)} ({member}, {challenge})"


def audit_grid(audit: pd.DataFrame) -> pd.DataFrame:
    """The audit as a grid: one row per table (``"Table 3 (Peter, normal)"``), one column per figure, a status each."""
    frame = audit.assign(status=figure_status(audit), label=audit["figure"].map(FIGURE_LABELS),
                         run=[_run_label(r.table, r.member, r.challenge) for r in audit.itertuples()])
    grid = frame.pivot(index="run", columns="label", values="status")
    return grid.loc[list(dict.fromkeys(frame["run"])), list(dict.fromkeys(frame["label"]))]


def plot_audit_grid(audit: pd.DataFrame, *, ax=None):
    """Draw :func:`audit_grid`: a cell per printed figure, coloured by its status; returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    grid = audit_grid(audit)
    codes = [[STATUSES.index(status) for status in row] for row in grid.to_numpy()]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 0.3 * len(grid) + 1.6))
    ax.imshow(codes, cmap=ListedColormap(_STATUS_COLOURS), vmin=-0.5, vmax=len(STATUSES) - 0.5, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(grid)), grid.index)
    ax.set_xticks([x - 0.5 for x in range(1, grid.shape[1])], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(grid))], minor=True)
    ax.grid(False)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.legend(handles=[Patch(color=c, label=s) for c, s in zip(_STATUS_COLOURS, STATUSES)], ncols=len(STATUSES),
              loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return ax.figure


def flagged_figures(audit: pd.DataFrame) -> pd.DataFrame:
    """The flagged rows of :func:`audit_crowd_tables`: ``table, member, challenge, figure, printed, implied, why``."""
    flagged = audit.loc[~audit["ok"], ["table", "member", "challenge", "figure", "printed", "implied", "why"]]
    return flagged.assign(figure=flagged["figure"].map(FIGURE_LABELS)).reset_index(drop=True)


def audit_markdown(audit: pd.DataFrame) -> str:
    """The audit in a paragraph (figures checked, how many agree and how) and one bullet per flagged figure."""
    status = figure_status(audit).value_counts()
    agrees, undefined = status.get("agrees", 0), status.get("undefined", 0)
    flagged = audit[~audit["ok"]]
    lead = (f"Of {counted(len(audit), 'printed figure')} in {counted(audit['table'].nunique(), 'performance table')}, "
            f"{counted(agrees, 'follows', 'follow')} from the table's own counts exactly or rounded, "
            f"{status.get('truncated', 0)} only when truncated instead of rounded, and "
            f"{counted(undefined, 'is', 'are')} a \"-\" where the definition leaves the figure undefined; "
            f"**{counted(len(flagged), 'figure is', 'figures are')} flagged**" + (":" if len(flagged) else "."))
    bullets = [f"- **{_run_label(r.table, r.member, r.challenge)}**, {FIGURE_LABELS[r.figure]}: {r.why}."
               for r in flagged.itertuples()]
    return "\n".join([lead, "", *bullets])


def unsupported_claims(prose: pd.DataFrame) -> pd.DataFrame:
    """The claims of :func:`audit_prose` that the tables do not support.

    Columns ``table, member, challenge, figure, stated, table_value, why``, figures named as on the page.
    """
    claims = prose.loc[~prose["supported"], ["table", "member", "challenge", "figure", "stated", "table_value", "why"]]
    return claims.assign(figure=claims["figure"].map(FIGURE_LABELS)).reset_index(drop=True)


def prose_markdown(prose: pd.DataFrame, audit: pd.DataFrame) -> str:
    """The prose check in words: claims checked and unsupported (a bullet each), and supported
    claims that restate a printed figure the table audit flags (a bullet each, with what the counts imply)."""
    unsupported = prose[~prose["supported"]]
    supported = int(prose["supported"].sum())
    lead = (f"The report's text states {counted(len(prose), 'figure')} about its runs; "
            f"{counted(supported, 'agrees', 'agree')} with the tables as printed (equal, rounded or truncated to the "
            f"stated digits, within a stated bound, or undefined where the table prints \"-\"), "
            f"**{counted(len(unsupported), 'does', 'do')} not**" + (":" if len(unsupported) else "."))
    lines = [lead, "", *(f"- **{_run_label(r.table, r.member, r.challenge)}**, {FIGURE_LABELS[r.figure]}: {r.why}."
                         for r in unsupported.itertuples())]
    flags = audit.loc[~audit["ok"], ["table", "figure", "printed", "implied"]]
    restated = prose[prose["supported"]].dropna(subset=["table"]).astype({"table": int}).merge(
        flags, on=["table", "figure"])
    if len(restated):
        lines += ["", f"{counted(len(restated), 'supported claim restates', 'supported claims restate')} a "
                      "printed figure that the audit above flags:", ""]
        lines += [f"- **{_run_label(r.table, r.member, r.challenge)}**, {FIGURE_LABELS[r.figure]}: stated "
                  f"{'' if r.relation == '=' else r.relation + ' '}{r.stated}, printed {r.printed}; the counts "
                  + ("leave it undefined." if r.implied == "-" else f"imply {r.implied}.")
                  for r in restated.itertuples()]
    return "\n".join(lines)
