"""crowdkit.bias.reported: the dissertation's Tables 5.1, 5.2 and named figures load as typed rows and check out."""
from __future__ import annotations

import dataclasses
import math
import shutil

import pytest

from crowdkit.bias.reported import (AucRow, EvaluationRow, ThesisTables, audit_thesis_markdown,
                                    audit_thesis_tables, load_thesis_tables)
from crowdkit.common.exceptions import ConfigError, DatasetFormatError
from crowdkit.common.reported import PrintedNumber, reported_dir

FILES = ("bias_table_5_1.csv", "bias_table_5_2.csv", "bias_figures.csv")


@pytest.fixture(scope="module")
def thesis() -> ThesisTables:
    return load_thesis_tables()


def copy_dir(tmp_path, name: str | None = None, old: str = "", new: str = ""):
    for file in FILES:
        shutil.copy(reported_dir() / file, tmp_path / file)
    if name:
        text = (tmp_path / name).read_text()
        assert old in text
        (tmp_path / name).write_text(text.replace(old, new, 1))
    return tmp_path


def test_the_real_tables_load_as_typed_rows(thesis):
    assert [(r.epochs, r.type) for r in thesis.evaluation] == [
        (30, "base"), (30, "modified"), (50, "base"), (50, "modified"), (75, "base"), (75, "modified")]
    first = thesis.evaluation[0]
    assert isinstance(first, EvaluationRow) and isinstance(thesis.auc[0], AucRow)
    assert first.accuracy == PrintedNumber("0.66733", 0.66733, 5)
    assert (first.val_rate.text, first.val_rate_std.text, first.far.text) == ("0.02267", "0.00786", "0.00167")
    assert thesis.evaluation[2].val_rate.text == "0.05400"  # trailing zeros kept
    assert thesis.auc[0].auc_increase.missing and thesis.auc[1].auc_increase.text == "-0.085"
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.epochs = 31


def test_frames(thesis):
    t51 = thesis.evaluation_frame()
    assert t51.columns.tolist()[:5] == ["epochs", "type", "accuracy", "accuracy_printed", "accuracy_std"]
    assert t51["auc"].tolist() == [0.744, 0.659, 0.718, 0.735, 0.708, 0.766]
    t52 = thesis.to_frame("5.2")
    assert t52["auc_increase"].isna().tolist() == [True, False] * 3
    assert t52["auc_increase_printed"].tolist() == ["", "-0.085", "", "0.017", "", "0.058"]
    figures = thesis.to_frame("figures")
    assert figures.columns.tolist() == ["name", "value", "value_printed", "source"]
    with pytest.raises(ConfigError, match="did you mean 'figures'"):
        thesis.to_frame("figure")


def test_named_figures(thesis):
    assert thesis.figure("classifier_val_acc_low").text == "0.48438"
    assert thesis.figure("classifier_val_acc_high").text == "0.51562"
    assert (thesis.figure("classifier_convergence_epoch_min").value,
            thesis.figure("classifier_convergence_epoch_max").value) == (27, 41)
    assert thesis.figure("lfw_eligible_classes").value == 2402
    assert (thesis.figure("classifier_train_images").value, thesis.figure("classifier_test_images").value) == (16591, 7114)
    assert all(f.source for f in thesis.figures)
    with pytest.raises(ConfigError, match="did you mean 'lfw_eligible_classes'"):
        thesis.figure("lfw_eligble_classes")


def test_table_5_2_agrees_with_table_5_1(thesis):
    audit = audit_thesis_tables(thesis)
    assert len(audit) == 12 and audit["ok"].all()
    increases = audit[(audit["figure"] == "auc_increase") & (audit["type"] == "modified")]
    assert increases["implied"].tolist() == ["-0.085", "0.017", "0.058"]


@pytest.mark.parametrize("name, old, new, flagged", [
    ("bias_table_5_2.csv", "0.017", "0.071", (50, "modified", "auc_increase")),
    ("bias_table_5_2.csv", "5.2,50,base,0.718,", "5.2,50,base,0.718,0.000", (50, "base", "auc_increase")),
    ("bias_table_5_1.csv", "0.00133,0.708", "0.00133,0.780", (75, "base", "auc")),
])
def test_a_disagreement_between_the_tables_is_flagged(tmp_path, name, old, new, flagged):
    audit = audit_thesis_tables(load_thesis_tables(copy_dir(tmp_path, name, old, new)))
    assert {(r.epochs, r.type, r.figure) for r in audit[~audit["ok"]].itertuples()} == {flagged}


@pytest.mark.parametrize("name, old, new, expected", [
    ("bias_table_5_1.csv", ",auc\n", ",area\n", "missing column(s) auc"),
    ("bias_table_5_1.csv", "5.1,50,base", "5.1,5O,base", "data row 3 (line 4), column 'epochs': '5O' is not an integer"),
    ("bias_table_5_2.csv", "5.2,30,base", "5.2,30,baseline", "column 'type': 'baseline' is not a known value; "
                                                            "did you mean 'base'?"),
    ("bias_table_5_1.csv", ",0.66733,0.01546,", ",0.66733+-0.01546,0.01546,",
     "data row 1 (line 2), column 'accuracy': '0.66733+-0.01546' is not a decimal number"),
    ("bias_table_5_2.csv", "5.2,75,base", "5.2,75,modified", "data row 6 (line 7): {'epochs': 75, 'type': 'modified'}"),
    ("bias_table_5_1.csv", "5.1,75,base", "5.1,70,base", "rows (epochs, type) are"),
    ("bias_figures.csv", "lfw_eligible_classes,2402", "casia_images,2402", "{'name': 'casia_images'} repeats"),
    ("bias_figures.csv", ",0.48438,", ",0.48438%,", "column 'value': '0.48438%' is not a decimal number"),
])
def test_a_malformed_file_names_file_row_and_column(tmp_path, name, old, new, expected):
    folder = copy_dir(tmp_path, name, old, new)
    with pytest.raises(DatasetFormatError) as info:
        load_thesis_tables(folder)
    assert str(folder / name) in str(info.value) and expected in str(info.value)


def test_accuracy_std_is_kept_with_its_printed_decimals(thesis):
    stds = [r.accuracy_std for r in thesis.evaluation]
    assert all(s.decimals == 5 for s in stds) and math.isclose(sum(s.value for s in stds), 0.10168)


def test_the_thesis_audit_in_words(thesis, tmp_path):
    text = audit_thesis_markdown(audit_thesis_tables(thesis))
    assert text == ("Table 5.2 repeats Table 5.1's AUC for 6 models and prints each modified model's AUC increase "
                    "over the base model trained as long: 12 figures checked, digit for digit, and every one agrees.")
    wrong = load_thesis_tables(copy_dir(tmp_path, "bias_table_5_2.csv", "0.017", "0.071"))
    lead, _, bullet = audit_thesis_markdown(audit_thesis_tables(wrong)).split("\n")
    assert lead.endswith("**1 figure flagged**:")
    assert bullet == ("- **Table 5.2**, modified model at 50 epochs, AUC increase: printed 0.071; "
                      "modified − base AUC is 0.017.")
