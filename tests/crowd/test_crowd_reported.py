"""crowdkit.crowd.reported: the crowd report's printed tables load, and the audits flag exactly its known slips."""
from __future__ import annotations

import math
import shutil

import pytest

from crowdkit.common.exceptions import ConfigError, DatasetFormatError
from crowdkit.common.reported import reported_path
from crowdkit.crowd import reported
from crowdkit.crowd.reported import (STATUSES, audit_crowd_tables, audit_grid, audit_markdown, audit_prose,
                                     figure_status, flagged_figures, load_crowd_examples, load_crowd_tables,
                                     plot_audit_grid, prose_claims, prose_markdown, study_rates,
                                     unsupported_claims)

#: (table, figure) → (printed, implied): every printed figure the counts do not support.
KNOWN_DISAGREEMENTS = {
    (3, "precision"): ("93.316", "92.644"),
    (3, "recall"): ("92.644", "72.865"),
    (3, "f1"): ("72.865", "81.573"),
    (7, "recall"): ("38.711", "48.711"),
    (31, "precision"): ("77.477", "9.338"),
    (31, "f1"): ("42.131", "14.119"),
    (39, "f1"): ("0.0", "-"),  # printed although precision, hence F1, is undefined
}
#: Figures that agree only when truncation is allowed (the report cut them, not rounded them).
TRUNCATED = {(7, "accuracy"), (15, "f1"), (17, "f1"), (21, "precision"), (21, "accuracy"),
             (23, "precision"), (23, "f1"), (25, "precision"), (25, "recall"), (25, "accuracy"),
             (27, "recall"), (27, "accuracy"), (31, "recall"), (31, "accuracy")}
#: (table, figure, stated) of the prose claims the tables do not support.
UNSUPPORTED_PROSE = {(3, "accuracy", "98.2"), (23, "threshold", "0.8"), (33, "total_positives", "120"),
                     (39, "precision", "0")}

HEADER = "table,member,challenge,total_positives,total_negatives,TP,FP,TN,FN,precision,recall,f1,accuracy\n"


@pytest.fixture(scope="module")
def audit():
    return audit_crowd_tables(load_crowd_tables())


def keyed(frame, where):
    return {(int(r.table), r.figure): r for r in frame[where].itertuples()}


def test_the_real_tables_load():
    tables = load_crowd_tables()
    assert len(tables) == 20 and tables["table"].tolist() == list(range(3, 42, 2))
    assert tables.groupby("member").size().to_dict() == {"Ahmed": 5, "Nawfal": 5, "Peter": 5, "Yousef": 5}
    peter = tables.iloc[0]
    assert (peter.TP, peter.f1, peter.f1_printed) == (529, 72.865, "72.865")
    mask1 = tables[tables["challenge"] == "mask1"]
    assert mask1["precision"].isna().all() and (mask1["precision_printed"] == "").all()
    nawfal = tables[tables["table"] == 33].iloc[0]
    assert (nawfal.f1_printed, nawfal.recall_printed) == ("30.38", "18.66")


def test_examples_and_prose_load():
    examples = load_crowd_examples()
    assert len(examples) == 161 and examples["table"].nunique() == 20
    third = examples[(examples["table"] == 4) & (examples["index"] == 3)]
    assert third[["outcome", "value_printed"]].values.tolist() == [["FN", "0.9459201787080707"]]
    assert examples.loc[examples["table"] == 8, "value"].isna().sum() == 4
    claims = prose_claims()
    assert len(claims) == 103 and claims["table"].isna().sum() == 1


def test_filters_and_their_refusals():
    assert load_crowd_tables(members=["Peter"])["challenge"].tolist() == ["normal", "intruder", "random", "mask1", "mask2"]
    assert load_crowd_tables(challenges="mask1")["member"].tolist() == ["Peter", "Ahmed", "Yousef", "Nawfal"]
    assert load_crowd_tables(members="Yousef", challenges=["compact"])["table"].tolist() == [25]
    with pytest.raises(ConfigError, match="did you mean 'Peter'"):
        load_crowd_tables(members=["Petr"])
    with pytest.raises(ConfigError, match=r"unknown challenge 'masks'.*did you mean 'mask[12]'"):
        load_crowd_examples(challenges=["masks"])


def test_the_report_sets_agree_with_the_simulator():
    from crowdkit.crowd.scene import CHALLENGES

    assert set(reported.CHALLENGES) == set(CHALLENGES)


def test_study_rates_leave_undefined_undefined():
    assert study_rates(0, 0, 5004, 290) == {"precision": None, "recall": 0.0, "f1": None,
                                            "accuracy": pytest.approx(100 * 5004 / 5294)}
    assert study_rates(0, 3, 10, 0)["recall"] is None
    assert study_rates(0, 3, 10, 2)["f1"] is None  # precision = recall = 0
    assert study_rates(1, 1, 1, 1) == {"precision": 50.0, "recall": 50.0, "f1": 50.0, "accuracy": 50.0}


def test_the_audit_covers_every_figure(audit):
    assert list(audit.columns) == ["table", "member", "challenge", "figure", "printed", "recomputed", "implied",
                                   "ok", "rounding", "why"]
    assert len(audit) == 20 * 6
    assert audit.loc[audit["figure"].str.startswith("total_"), "ok"].all()


def test_the_audit_flags_exactly_the_known_disagreements(audit):
    flagged = keyed(audit, ~audit["ok"])
    assert {k: (r.printed, r.implied) for k, r in flagged.items()} == KNOWN_DISAGREEMENTS


def test_why_is_built_from_the_numbers(audit):
    flagged = keyed(audit, ~audit["ok"])
    assert flagged[(3, "f1")].why == ("printed 72.865 but 2·P·R/(P+R) from the printed counts is 81.573 "
                                      "(printed 72.865 is the counts' recall) "
                                      "(from the printed precision and recall: 92.979)")
    assert "103/1103" in flagged[(31, "precision")].why and "9.338" in flagged[(31, "precision")].why
    assert flagged[(39, "f1")].why == "printed 0.0 but f1 is undefined: precision is undefined"
    assert math.isnan(flagged[(39, "f1")].recomputed)
    assert "359/737" in flagged[(7, "recall")].why


def test_correct_figures_are_not_flagged(audit):
    rows = keyed(audit, audit["ok"])
    assert rows[(9, "precision")].printed == "-" and rows[(9, "precision")].implied == "-"
    assert rows[(5, "accuracy")].rounding == "rounded" and rows[(7, "accuracy")].rounding == "truncated"
    assert rows[(41, "recall")].rounding == "exact" and rows[(3, "accuracy")].implied == "98.528"
    assert rows[(33, "f1")].implied == "30.38"  # printed with two decimals, implied with two
    assert {k for k, r in rows.items() if r.rounding == "truncated"} == TRUNCATED


def test_without_truncation_the_truncated_figures_are_flagged_too():
    strict = audit_crowd_tables(load_crowd_tables(), truncation=False)
    assert set(keyed(strict, ~strict["ok"])) == set(KNOWN_DISAGREEMENTS) | TRUNCATED


def test_a_wrong_total_and_a_missing_rate_are_flagged(tmp_path):
    path = tmp_path / "tables.csv"
    path.write_text(HEADER + "3,Peter,normal,572,15666,529,42,15469,197,,72.865,81.573,98.528\n")
    flagged = keyed((a := audit_crowd_tables(load_crowd_tables(path))), ~a["ok"])
    assert set(flagged) == {(3, "total_positives"), (3, "precision")}
    assert flagged[(3, "total_positives")].why == "printed 572 but TP + FP from the printed counts is 529 + 42 = 571"
    assert flagged[(3, "precision")].why == "printed - but TP/(TP+FP) = 529/571 from the printed counts is 92.644"


def test_the_audit_refuses_a_frame_without_the_printed_text():
    with pytest.raises(ConfigError, match="precision_printed"):
        audit_crowd_tables(load_crowd_tables().drop(columns=["precision_printed"]))


def test_prose_claims_not_supported_by_the_tables():
    prose = audit_prose()
    assert {(int(r.table), r.figure, r.stated) for r in prose[~prose["supported"]].itertuples()} == UNSUPPORTED_PROSE
    why = {(int(r.table), r.figure, r.stated): r.why for r in prose.dropna(subset=["table"]).itertuples()}
    assert why[(3, "accuracy", "98.2")] == "stated 98.2 but Table 3 prints 98.528"
    assert why[(23, "threshold", "0.8")] == "stated 0.8 but the Methodology states 0.65"
    assert why[(33, "total_positives", "120")] == "stated 120 but Table 33 prints 147 (120 is its TP)"
    assert why[(39, "precision", "0")] == "stated 0 but Table 39 prints -"
    how = {(int(r.table), r.figure, r.stated): r.how for r in prose.dropna(subset=["table"]).itertuples()}
    assert how[(7, "precision", "95")] == "truncated" and how[(5, "recall", "8.43")] == "rounded"
    assert how[(7, "recall", "50")] == "bound" and how[(9, "f1", "-")] == "undefined"
    assert how[(39, "f1", "0")] == "equal" and how[(31, "actual_positives", "356")] == "equal"


def copy_with(tmp_path, name: str, old: str, new: str):
    path = tmp_path / name
    shutil.copy(reported_path(name), path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, expected", [
    ("table,member,", "table,", "missing column(s) member"),
    ("15666,529,", "15666,12a,", "data row 1 (line 2), column 'TP': '12a' is not an integer; expected an integer"),
    ("3,Peter,", "3,Petr,", "data row 1 (line 2), column 'member': 'Petr' is not a known value; did you mean 'Peter'?"),
    ("9,Peter,mask1", "9,Peter,masks", "data row 4 (line 5), column 'challenge': 'masks' is not a known value"),
    ("93.316", "93.3l6", "data row 1 (line 2), column 'precision': '93.3l6' is not a decimal number"),
    ("5,Peter,intruder", "5,Peter,normal", "data row 2 (line 3): {'member': 'Peter', 'challenge': 'normal'} repeats"),
])
def test_a_malformed_tables_file_names_file_row_and_column(tmp_path, old, new, expected):
    path = copy_with(tmp_path, "crowd_tables.csv", old, new)
    with pytest.raises(DatasetFormatError) as info:
        load_crowd_tables(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_a_malformed_prose_file(tmp_path):
    path = copy_with(tmp_path, "crowd_prose.csv", "accuracy,=,98.2,", "accuracy,=,,")
    with pytest.raises(DatasetFormatError, match=r"data row 2, column 'value'"):
        prose_claims(path)
    path = copy_with(tmp_path, "crowd_prose.csv", "3,Peter,normal,", ",Peter,normal,")
    with pytest.raises(DatasetFormatError, match="given together"):
        prose_claims(path)


# --------------------------------------------------------------------------- the audit page

def test_each_figure_has_one_status(audit):
    status = figure_status(audit)
    assert set(status) == set(STATUSES)
    assert set(keyed(audit, (status == "flagged").to_numpy())) == set(KNOWN_DISAGREEMENTS)
    assert set(keyed(audit, (status == "truncated").to_numpy())) == TRUNCATED
    assert set(keyed(audit, (status == "undefined").to_numpy())) == {
        (t, f) for t in (9, 19, 29, 39) for f in ("precision", "f1")} - {(39, "f1")}
    assert status.value_counts().to_dict() == {"agrees": 92, "truncated": 14, "undefined": 7, "flagged": 7}


def test_the_grid_has_a_row_per_table_and_a_column_per_figure(audit):
    grid = audit_grid(audit)
    assert grid.shape == (20, 6) and grid.index[0] == "Table 3 (Peter, normal)"
    assert list(grid.columns) == ["total positives", "total negatives", "precision", "recall", "F1", "accuracy"]
    assert grid.loc["Table 39 (Nawfal, mask1)", "F1"] == "flagged"
    assert grid.loc["Table 39 (Nawfal, mask1)", "precision"] == "undefined"
    assert grid.loc["Table 7 (Peter, random)", "accuracy"] == "truncated"


def test_the_grid_is_drawn(audit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plot_audit_grid(audit)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["Table 3 (Peter, normal)", "Table 5 (Peter, intruder)"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(STATUSES)
    assert ax.images[0].get_array().shape == (20, 6)
    plt.close(figure)


def test_the_flagged_figures_table(audit):
    flagged = flagged_figures(audit)
    assert list(flagged.columns) == ["table", "member", "challenge", "figure", "printed", "implied", "why"]
    assert len(flagged) == len(KNOWN_DISAGREEMENTS)
    f1 = flagged[(flagged["table"] == 3) & (flagged["figure"] == "F1")].iloc[0]
    assert (f1.printed, f1.implied) == ("72.865", "81.573")


def test_the_audit_in_words_counts_and_names_every_flag(audit):
    text = audit_markdown(audit)
    lead, _, *bullets = text.split("\n")
    assert lead.startswith("Of 120 printed figures in 20 performance tables, 92 follow")
    assert "14 only when truncated" in lead and '7 are a "-"' in lead and "**7 figures are flagged**:" in lead
    assert len(bullets) == len(KNOWN_DISAGREEMENTS) and all(b.startswith("- **Table ") for b in bullets)
    table_3_f1 = [b for b in bullets if b.startswith("- **Table 3 (Peter, normal)**, F1:")]
    assert len(table_3_f1) == 1 and "printed 72.865" in table_3_f1[0] and "is 81.573" in table_3_f1[0]
    assert "- **Table 39 (Nawfal, mask1)**, F1: printed 0.0 but f1 is undefined: precision is undefined." in bullets
    assert "TP/(TP+FN) = 359/737 from the printed counts is 48.711" in text


def test_an_audit_without_flags_says_so(tmp_path):
    path = tmp_path / "tables.csv"
    path.write_text(HEADER + "5,Peter,intruder,95,11941,66,29,11224,717,69.474,8.429,15.034,93.802\n")
    text = audit_markdown(audit_crowd_tables(load_crowd_tables(path)))
    assert text.startswith("Of 6 printed figures in 1 performance table, 6 follow") and text.endswith(
        "**0 figures are flagged**.\n")
    assert flagged_figures(audit_crowd_tables(load_crowd_tables(path))).empty


def test_the_prose_in_words_and_its_table(audit):
    prose = audit_prose()
    text = prose_markdown(prose, audit)
    assert text.startswith("The report's text states 103 figures about its runs; 99 agree") and "**4 do not**:" in text
    assert "- **Table 3 (Peter, normal)**, accuracy: stated 98.2 but Table 3 prints 98.528." in text
    assert ("- **Table 33 (Nawfal, normal)**, total positives: stated 120 but Table 33 prints 147 "
            "(120 is its TP).") in text
    assert "2 supported claims restate a printed figure that the audit above flags:" in text
    assert "- **Table 7 (Peter, random)**, recall: stated < 50, printed 38.711; the counts imply 48.711." in text
    assert "- **Table 39 (Nawfal, mask1)**, F1: stated 0, printed 0.0; the counts leave it undefined." in text
    claims = unsupported_claims(prose)
    assert list(claims.columns) == ["table", "member", "challenge", "figure", "stated", "table_value", "why"]
    assert {(int(r.table), r.stated) for r in claims.itertuples()} == {(t, s) for t, _, s in UNSUPPORTED_PROSE}
    assert claims.loc[claims["table"] == 23, "figure"].tolist() == ["threshold"]
