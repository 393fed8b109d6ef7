"""The hand-transcribed figures in data/reported/ check themselves.

The studies' tables are redundant (totals repeat sums of counts, rates follow from the
counts, two queries on the same video see the same faces, Table 5.2 repeats part of
Table 5.1), so a typing error here breaks one of these identities. Where the printed
document itself breaks one, the exception is listed explicitly: any other mismatch fails.
Only pandas is used, so these tests say nothing about crowdkit's code.
"""
from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
import pytest

REPORTED = Path(__file__).resolve().parents[2] / "data" / "reported"
COUNTS = ["total_positives", "total_negatives", "TP", "FP", "TN", "FN"]
RATES = ["precision", "recall", "f1", "accuracy"]

#: The runs in the order of the report's table of contents.
CONTENTS = {
    "Peter": ["normal", "intruder", "random", "mask1", "mask2"],
    "Ahmed": ["normal", "intruder", "random", "mask1", "mask2"],
    "Yousef": ["normal", "compact", "intruder", "mask1", "mask2"],
    "Nawfal": ["normal", "compact", "random", "mask1", "mask2"],
}

#: Printed totals that are not TP + FP / TN + FN: none (every table is consistent).
TOTAL_MISMATCHES: set[tuple[int, str]] = set()

#: Printed rates that neither round nor truncate to the value the printed counts imply,
#: or that are printed although the definition leaves them undefined.
RATE_MISMATCHES = {(3, "precision"), (3, "recall"), (3, "f1"), (7, "recall"),
                   (31, "precision"), (31, "f1"), (39, "f1")}

#: Printed rates that are the implied value truncated, not rounded, to the printed decimals.
TRUNCATED = {(7, "accuracy"), (15, "f1"), (17, "f1"), (21, "precision"), (21, "accuracy"),
             (23, "precision"), (23, "f1"), (25, "precision"), (25, "recall"), (25, "accuracy"),
             (27, "recall"), (27, "accuracy"), (31, "recall"), (31, "accuracy")}

#: Example distances on the wrong side of the stated 0.65 threshold (table, outcome, index):
#: Yousef's normal and intruder runs were evidently decided at a higher threshold.
THRESHOLD_EXCEPTIONS = {(22, "TP", 1), (22, "TP", 2), (22, "FP", 1), (22, "FP", 2),
                        (26, "TP", 1), (26, "TP", 2), (26, "FP", 1), (26, "FP", 2)}


def read(name: str) -> pd.DataFrame:
    return pd.read_csv(REPORTED / name, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def tables() -> pd.DataFrame:
    return read("crowd_tables.csv")


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return read("crowd_examples.csv")


def implied_rates(row) -> dict[str, float | None]:
    """The study's definitions, in percent; None where a denominator is zero."""
    tp, fp, tn, fn = (int(row[c]) for c in ("TP", "FP", "TN", "FN"))
    precision = 100 * tp / (tp + fp) if tp + fp else None
    recall = 100 * tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall else None)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": 100 * (tp + tn) / (tp + fp + tn + fn)}


def at_printed_decimals(value: float, printed: str, rounding: str) -> str:
    exponent = Decimal(printed).as_tuple().exponent
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(exponent), rounding=rounding))


def test_columns_and_formats(tables, examples):
    assert list(tables.columns) == ["table", "member", "challenge", *COUNTS, *RATES]
    assert list(examples.columns) == ["table", "member", "challenge", "outcome", "index", "value"]
    assert tables[["table", *COUNTS]].apply(lambda c: c.str.fullmatch(r"\d+")).all().all()
    for column in RATES:
        assert tables[column].str.fullmatch(r"(\d+(\.\d+)?)?").all(), column
    assert examples["value"].str.fullmatch(r"(\d\.\d+)?").all()


def test_table_numbers_and_runs_follow_the_table_of_contents(tables):
    runs = [(m, c) for m, challenges in CONTENTS.items() for c in challenges]
    assert list(zip(tables["member"], tables["challenge"])) == runs
    assert tables["table"].astype(int).tolist() == list(range(3, 42, 2))


def test_totals_are_the_predicted_positives_and_negatives(tables):
    found = set()
    for _, r in tables.iterrows():
        tp, fp, tn, fn = (int(r[c]) for c in ("TP", "FP", "TN", "FN"))
        if int(r["total_positives"]) != tp + fp:
            found.add((int(r["table"]), "total_positives"))
        if int(r["total_negatives"]) != tn + fn:
            found.add((int(r["table"]), "total_negatives"))
    assert found == TOTAL_MISMATCHES


def test_rates_follow_from_the_counts_except_the_known_ones(tables):
    mismatches, truncated = set(), set()
    for _, r in tables.iterrows():
        for rate, value in implied_rates(r).items():
            key, printed = (int(r["table"]), rate), r[rate]
            if value is None or printed == "":
                if (value is None) != (printed == ""):
                    mismatches.add(key)
                continue
            rounded = at_printed_decimals(value, printed, ROUND_HALF_UP)
            down = at_printed_decimals(value, printed, ROUND_DOWN)
            if Decimal(printed) == Decimal(rounded):
                continue
            (truncated if Decimal(printed) == Decimal(down) else mismatches).add(key)
    assert mismatches == RATE_MISMATCHES
    assert truncated == TRUNCATED


def test_undefined_rates_are_empty_never_zero(tables):
    mask1 = tables[tables["challenge"] == "mask1"]
    assert (mask1["precision"] == "").all()
    assert mask1.set_index("member")["f1"].to_dict() == {"Peter": "", "Ahmed": "", "Yousef": "", "Nawfal": "0.0"}


def test_both_mask_queries_searched_the_same_faces(tables):
    counts = tables.set_index(["member", "challenge"])[["TP", "FP", "TN", "FN"]].astype(int)
    faces = counts.sum(axis=1)
    actual_positives = counts["TP"] + counts["FN"]
    for member in CONTENTS:
        assert faces[(member, "mask1")] == faces[(member, "mask2")], member
        assert actual_positives[(member, "mask1")] == actual_positives[(member, "mask2")], member
    assert {m: faces[(m, "mask1")] for m in CONTENTS} == {"Peter": 5294, "Ahmed": 5294, "Yousef": 5294, "Nawfal": 4523}


def test_each_results_table_precedes_its_performance_table(tables, examples):
    per_table = examples.groupby("table", sort=False)
    assert [int(t) for t in per_table.groups] == list(range(2, 41, 2))
    for _, r in tables.iterrows():
        shown = per_table.get_group(str(int(r["table"]) - 1))
        assert set(zip(shown["member"], shown["challenge"])) == {(r["member"], r["challenge"])}
        expected = 9 if r["table"] == "5" else 8  # Peter's intruder table shows a third false negative
        assert len(shown) == expected
        for outcome in ("TP", "FP", "TN", "FN"):
            values = shown.loc[shown["outcome"] == outcome, "value"]
            # a table shows "-" for an outcome exactly when the run has no face of it
            assert (values == "").all() == (int(r[outcome]) == 0), (r["table"], outcome)
            assert (values == "").any() == (int(r[outcome]) == 0), (r["table"], outcome)


def test_example_distances_sit_on_the_side_of_the_threshold_their_outcome_says(examples):
    shown = examples[examples["value"] != ""]
    wrong = {(int(r["table"]), r["outcome"], int(r["index"])) for _, r in shown.iterrows()
             if (float(r["value"]) <= 0.65) != (r["outcome"] in ("TP", "FP"))}
    assert wrong == THRESHOLD_EXCEPTIONS
    assert len(set(zip(examples["table"], examples["outcome"], examples["index"]))) == len(examples)


# --------------------------------------------------------------------------- the dissertation


@pytest.fixture(scope="module")
def table_5_1() -> pd.DataFrame:
    return read("bias_table_5_1.csv")


@pytest.fixture(scope="module")
def table_5_2() -> pd.DataFrame:
    return read("bias_table_5_2.csv")


def test_thesis_tables_cover_three_epoch_counts_and_both_models(table_5_1, table_5_2):
    for table in (table_5_1, table_5_2):
        assert list(zip(table["epochs"], table["type"])) == [
            (e, t) for e in ("30", "50", "75") for t in ("base", "modified")]


def test_table_5_2_repeats_the_auc_of_table_5_1(table_5_1, table_5_2):
    assert table_5_2["auc"].tolist() == table_5_1["auc"].tolist()


def test_table_5_2_increases_are_modified_minus_base(table_5_2):
    auc = table_5_2.set_index(["epochs", "type"])["auc"].map(Decimal)
    increase = table_5_2.set_index(["epochs", "type"])["auc_increase"]
    for epochs in ("30", "50", "75"):
        assert increase[(epochs, "base")] == ""
        assert Decimal(increase[(epochs, "modified")]) == auc[(epochs, "modified")] - auc[(epochs, "base")]


def test_figures_agree_with_each_other_and_with_table_5_1(table_5_1):
    figures = read("bias_figures.csv")
    assert figures["name"].is_unique and (figures["source"] != "").all()
    f = {n: Decimal(v) for n, v in zip(figures["name"], figures["value"])}
    # the generators' counts add up to the filtered set, and so do the per-class counts of 5.2.1
    assert f["classifier_train_images"] + f["classifier_test_images"] == f["utkface_filtered_images"]
    assert f["utkface_images_largest_class"] + f["utkface_images_other_four_classes"] == f["utkface_filtered_images"]
    assert f["classifier_convergence_epoch_min"] < f["classifier_convergence_epoch_max"] < f["classifier_planned_epochs_short"]
    assert f["classifier_val_acc_low"] < f["log_val_acc"] < f["classifier_val_acc_high"]
    # a 70 % split floored per class (5 classes) loses less than one image per class
    whole = math.floor(f["utkface_filtered_images"] * Decimal("0.7"))
    assert whole - f["classifier_classes"] < f["classifier_train_images"] <= whole
    # 5.3.1: the modified model's accuracy trails by 1.1 to 3.1 points (truncated), FAR lower in 2 of 3
    rows = table_5_1.set_index(["epochs", "type"])
    lag = [100 * (Decimal(rows.loc[(e, "base"), "accuracy"]) - Decimal(rows.loc[(e, "modified"), "accuracy"]))
           for e in ("30", "50", "75")]
    assert min(lag).quantize(Decimal("0.1"), ROUND_DOWN) == f["accuracy_lag_min_percent"]
    assert max(lag).quantize(Decimal("0.1"), ROUND_DOWN) == f["accuracy_lag_max_percent"]
    lower_far = sum(Decimal(rows.loc[(e, "modified"), "far"]) < Decimal(rows.loc[(e, "base"), "far"])
                    for e in ("30", "50", "75"))
    assert (lower_far, 3) == (f["far_improved_experiments"], f["far_experiments"])
