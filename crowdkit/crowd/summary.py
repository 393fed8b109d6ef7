"""The crowd study across runs: tables collected from every finished run, and the study's printed tables.

Each crowd run saves its tables (:func:`crowdkit.crowd.run.save_tables`); the
summary page collects them and shows them side by side::

    tables = collect_runs("book/runs/crowd")
    rate_table(tables["performance"], "f1")            # member × challenge, one column per rule × level
    gain_tables(tables["performance"], compare="level") # what deciding per track changes

Every function accepts an empty collection (no run finished yet) and returns
an empty table.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from crowdkit.common.exceptions import ConfigError
from crowdkit.common.metrics import MIN_SUPPORT
from crowdkit.common.run_tables import collect_run_tables
from crowdkit.crowd.intervals import interval_text
from crowdkit.crowd.params import ALL_PHOTOS
from crowdkit.crowd.scene import CHALLENGES

#: Columns of the counts table, in the study's layout plus ``missed``.
COUNT_COLUMNS = ("positives", "negatives", "TP", "FP", "TN", "FN", "precision", "recall", "f1", "accuracy", "missed")
#: Columns of the threshold re-tuning table.
RETUNING_COLUMNS = ("threshold", "n_tp", "n_fp", "mean_plus_2sigma", "flipped_to_positive", "flipped_to_negative",
                    "f1_at_mean_plus_2sigma", "auc", "eer", "eer_threshold")
_RATES = ("precision", "recall", "f1", "accuracy")


def collect_runs(runs_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Every finished run's tables under ``runs_dir`` (see :func:`crowdkit.common.run_tables.collect_run_tables`)."""
    return {name: collect_run_tables(runs_dir, name)
            for name in ("performance", "thresholds", "queries", "study_table", "examples", "study_intervals")}


def summary_table(performance: pd.DataFrame, *, value: str = "f1", main_only: bool = True) -> pd.DataFrame:
    """member × challenge table of ``value`` with one column block per rule and level."""
    if performance.empty:
        return pd.DataFrame()
    table = performance[performance["main"]] if main_only else performance
    order = [c for c in CHALLENGES if c in set(table["challenge"])]
    order += sorted(set(table["challenge"]) - set(order))
    pivot = table.pivot_table(index=["member", "challenge"], columns=["rule", "level"], values=value,
                              aggfunc="first", dropna=False)
    return pivot.reindex(order, level="challenge")


def gain_table(performance: pd.DataFrame, *, compare: str = "level", value: str = "f1") -> pd.DataFrame:
    """Per run: ``value`` per frame vs per track (``compare="level"``), or run's query vs all photos
    (``compare="query"``), under each rule, with the difference.

    Returns one row per member × challenge × rule with the two values and ``gain`` (second − first).
    """
    if performance.empty:
        return pd.DataFrame()
    if compare == "level":
        table = performance[performance["main"]]
        wide = table.pivot_table(index=["member", "challenge", "rule"], columns="level", values=value,
                                 aggfunc="first", dropna=False)
        first, second = "frame", "track"
    elif compare == "query":
        table = performance[performance["level"] == "frame"]
        main = table[table["main"]].set_index(["member", "challenge", "rule"])[value].rename("single")
        every = table[table["query"] == ALL_PHOTOS].set_index(["member", "challenge", "rule"])[value].rename(ALL_PHOTOS)
        wide = pd.concat([main, every], axis=1)
        first, second = "single", ALL_PHOTOS
    else:
        raise ConfigError(f"compare must be 'level' or 'query', got {compare!r}")
    wide = wide.reindex(columns=[first, second])
    wide["gain"] = wide[second] - wide[first]
    return wide


def in_challenge_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a table indexed by (member, challenge, ...) sorted by member, then challenge in the study's order."""
    rank = {c: i for i, c in enumerate(CHALLENGES)}
    frame = table.reset_index()
    frame["_rank"] = frame["challenge"].map(lambda c: rank.get(c, len(rank)))
    keys = list(table.index.names)
    frame = frame.sort_values(["member", "_rank", *[k for k in keys if k not in ("member", "challenge")]],
                              kind="stable")
    return frame.drop(columns="_rank").set_index(keys)


def run_names(performance: pd.DataFrame) -> list[str]:
    """The finished runs in a collected performance table, sorted."""
    return sorted(performance["run"].unique()) if not performance.empty else []


def rate_table(performance: pd.DataFrame, value: str) -> pd.DataFrame:
    """:func:`summary_table` of ``value`` as text with its 95 % interval.

    ``"0.750 [0.520, 0.910]"``; "undefined" where NaN; ``[too few]`` where fewer than 5 faces
    are in the rate's denominator (:func:`crowdkit.crowd.intervals.interval_text`).
    """
    if performance.empty:
        return pd.DataFrame()
    text = performance.assign(**{value: interval_text(performance, value)})
    return summary_table(text, value=value).fillna("undefined")


def detection_rate_table(performance: pd.DataFrame) -> pd.DataFrame:
    """member × challenge: share of annotated faces in view a detection matched, per rule (run's query)."""
    if performance.empty:
        return pd.DataFrame()
    rates = performance[performance["main"] & (performance["level"] == "frame")]
    return rate_table(rates.assign(level="frame"), "detection_rate")


def counts_table(performance: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The counts behind the rates under ``rule``, per frame, run's query: one row per member × challenge."""
    if performance.empty:
        return pd.DataFrame()
    main = performance[performance["main"] & (performance["level"] == "frame")]
    main = main[main["rule"] == rule]
    main = main.assign(**{column: interval_text(main, column) for column in _RATES})
    return in_challenge_order(main.set_index(["member", "challenge"])[list(COUNT_COLUMNS)])


def gain_tables(performance: pd.DataFrame, *, compare: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`gain_table` as (mean per challenge × rule, every run in the study's order), rounded to 3 places."""
    gains = gain_table(performance, compare=compare)
    if gains.empty:
        return pd.DataFrame(), pd.DataFrame()
    return gains.groupby(level=["challenge", "rule"]).mean().round(3), in_challenge_order(gains).round(3)


def retuning_table(thresholds: pd.DataFrame) -> pd.DataFrame:
    """Per run and rule: the threshold used, mean + 2σ, what it flips, AUC and the equal-error point."""
    if thresholds.empty:
        return pd.DataFrame()
    table = in_challenge_order(thresholds.set_index(["member", "challenge", "rule"]))
    return table[list(RETUNING_COLUMNS)].round(3)


def _study_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted as the report prints its runs: member (Peter, Ahmed, Yousef, Nawfal, then others), challenge."""
    from crowdkit.crowd.reported import MEMBERS

    members = {m: i for i, m in enumerate(MEMBERS)}
    challenges = {c: i for i, c in enumerate(CHALLENGES)}
    order = frame.assign(_m=frame["member"].map(lambda m: members.get(m, len(members))),
                         _c=frame["challenge"].map(lambda c: challenges.get(c, len(challenges))))
    return order.sort_values(["_m", "member", "_c"], kind="stable").drop(columns=["_m", "_c"])


def reported_vs_ours(study_tables: pd.DataFrame) -> pd.DataFrame:
    """Every run's study-layout table (:func:`crowdkit.crowd.study_table.study_table`) side by side.

    One row per member × challenge × source (the study's printed table, ours at the study's
    rule, ours at the run's threshold), one column per figure in the study's order.
    """
    from crowdkit.crowd.study_table import OUR_ROWS, STUDY_ROWS

    if study_tables.empty:
        return pd.DataFrame()
    frame = _study_order(study_tables)
    sources = list(dict.fromkeys(frame["source"]))
    wide = frame.pivot_table(index=["member", "challenge", "source"], columns="figure", values="value",
                             aggfunc="first", sort=False)
    runs = list(dict.fromkeys(zip(frame["member"], frame["challenge"])))
    sources.sort(key=lambda source: not source.startswith("study"))  # the printed table first, then ours
    index = [(m, c, s) for m, c in runs for s in sources if (m, c, s) in wide.index]
    return wide.reindex(index=pd.MultiIndex.from_tuples(index, names=wide.index.names),
                        columns=[c for c in (*STUDY_ROWS, *OUR_ROWS) if c in wide.columns])


def examples_vs_ours(examples: pd.DataFrame) -> pd.DataFrame:
    """The study's example cosine values beside our distances of the same outcome, every run."""
    if examples.empty:
        return pd.DataFrame()
    frame = _study_order(examples.drop(columns=["run"], errors="ignore"))
    return frame.set_index(["member", "challenge", "outcome", "example"])


def _printed_figures(study_tables: pd.DataFrame) -> pd.DataFrame:
    """The study's printed rates per run (percent; NaN for "-") with the printed faces in each denominator."""
    from crowdkit.crowd.study_table import STUDY_SUPPORT

    printed = study_tables[study_tables["source"].str.startswith("study")]
    wide = printed.pivot_table(index=["member", "challenge"], columns="figure", values="value", aggfunc="first")
    rows = []
    for (member, challenge), row in wide.iterrows():
        counts = {c: pd.to_numeric(row.get(c), errors="coerce") for c in ("TP", "FP", "TN", "FN")}
        for figure, columns in STUDY_SUPPORT.items():
            rows.append({"member": member, "challenge": challenge, "figure": figure,
                         "printed": pd.to_numeric(row.get(figure), errors="coerce"),
                         "study faces": sum(counts[c] for c in columns)})
    return pd.DataFrame(rows, columns=["member", "challenge", "figure", "printed", "study faces"])


def printed_vs_interval(study_tables: pd.DataFrame, study_intervals: pd.DataFrame) -> pd.DataFrame:
    """Each printed rate beside our 95 % interval under the study's protocol, marked where it lies outside.

    Both in percent: the study's printed figure, ours at the study's rule with its interval
    (:func:`crowdkit.crowd.study_table.study_intervals`), the faces in each one's denominator
    and the tracks holding ours. ``outside`` is True where the printed figure lies outside an
    interval of ours resting on at least 5 faces; the ``mark`` column says so in words.

    Returns one row per member × challenge × rate (the report's order); empty when either
    table is.
    """
    from crowdkit.crowd.study_table import study_interval_text

    if study_tables.empty or study_intervals.empty:
        return pd.DataFrame()
    ours = study_intervals.drop(columns=["run"], errors="ignore")
    table = _printed_figures(study_tables).merge(ours, on=["member", "challenge", "figure"], how="inner")
    enough = table["faces"] >= MIN_SUPPORT
    table["outside"] = enough & table["printed"].notna() & ((table["printed"] < table["low"])
                                                          | (table["printed"] > table["high"]))
    table["ours, study's protocol [95 %]"] = study_interval_text(table)
    table["mark"] = table["outside"].map({True: "printed outside ours", False: ""})
    table = _study_order(table).set_index(["member", "challenge", "figure"])
    return table[["printed", "study faces", "ours, study's protocol [95 %]", "faces", "tracks", "outside", "mark"]]
