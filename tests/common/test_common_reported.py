"""crowdkit.common.reported: printed numbers keep their decimals; a file off its schema fails naming file, row and column."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from crowdkit.common.exceptions import DatasetFormatError
from crowdkit.common.reported import (Column, PrintedNumber, closest, counted, read_reported, reported_dir,
                                      reported_path, rows_to_frame, unknown_name_message)

SCHEMA = (Column("table", "int"), Column("member", "choice", ("Peter", "Ahmed")),
          Column("TP", "int"), Column("recall", "decimal", optional=True), Column("note", "text", optional=True))


def write(tmp_path, text: str):
    path = tmp_path / "figures.csv"
    path.write_text(text)
    return path


def failure(path, schema=SCHEMA, **kwargs) -> str:
    with pytest.raises(DatasetFormatError) as info:
        read_reported(path, schema, **kwargs)
    return str(info.value)


def test_printed_number_keeps_what_was_printed():
    assert PrintedNumber.parse("93.316") == PrintedNumber("93.316", 93.316, 3)
    assert PrintedNumber.parse("30.380").decimals == 3 and PrintedNumber.parse("30.38").decimals == 2
    assert PrintedNumber.parse("100") == PrintedNumber("100", 100.0, 0)
    assert PrintedNumber.parse("-0.085").value == -0.085
    blank = PrintedNumber.parse("")
    assert blank.missing and blank.value is None and blank.shown() == "-"
    assert blank.format(None) == "-" and blank.format(math.nan) == "-"
    assert PrintedNumber.parse("0.0").format(12.34567) == "12.3"
    with pytest.raises(ValueError):
        PrintedNumber.parse("12a")


def test_rounding_and_truncation_are_told_apart():
    printed = PrintedNumber.parse("96.065")
    assert printed.truncates_to(96.065508) and not printed.rounds_to(96.065508)
    assert PrintedNumber.parse("93.802").rounds_to(93.801928) and not PrintedNumber.parse("93.802").truncates_to(93.801928)
    assert PrintedNumber.parse("100").rounds_to(100.0) and PrintedNumber.parse("0.0").truncates_to(0.0)
    assert not PrintedNumber.parse("38.711").rounds_to(48.710991)
    assert PrintedNumber.parse("-0.085").truncates_to(-0.0855) and not PrintedNumber.parse("-0.085").truncates_to(-0.0845)
    assert not PrintedNumber.parse("").rounds_to(1.0)


def test_a_less_precise_statement_of_a_printed_number():
    def states(short, long):
        return PrintedNumber.parse(short).states(PrintedNumber.parse(long))

    assert states("93.8", "93.802") == "rounded"
    assert states("95", "95.733") == "truncated"
    assert states("92.62", "92.620") == "equal"
    assert states("98.2", "98.528") is None
    assert states("96.1", "96.065") == "rounded" and states("96.0", "96.065") == "truncated"
    assert states("0", "") is None and states("43.4251", "43.425") is None


def test_columns_are_declared_with_a_known_kind():
    with pytest.raises(ValueError, match="kind"):
        Column("x", "float")
    with pytest.raises(ValueError, match="choices"):
        Column("x", "choice")
    assert "one of Peter, Ahmed" in SCHEMA[1].expected()
    assert "empty cell" in SCHEMA[3].expected()


def test_reads_a_well_formed_file(tmp_path):
    path = write(tmp_path, "table,member,TP,recall,note\n3,Peter,529,92.644,\n5,Ahmed,0,,seen\n")
    rows = read_reported(path, SCHEMA, key=("table",))
    assert rows[0] == {"table": 3, "member": "Peter", "TP": 529, "recall": PrintedNumber("92.644", 92.644, 3),
                       "note": None}
    assert rows[1]["recall"].missing and rows[1]["note"] == "seen"
    frame = rows_to_frame(rows, SCHEMA)
    assert list(frame.columns) == ["table", "member", "TP", "recall", "recall_printed", "note"]
    assert frame["TP"].dtype == "int64" and math.isnan(frame.loc[1, "recall"])
    assert frame["recall_printed"].tolist() == ["92.644", ""] and frame["note"].tolist() == ["", "seen"]


def test_columns_may_come_in_any_order(tmp_path):
    path = write(tmp_path, "member,table,note,recall,TP\nPeter,3,,0.0,0\n")
    assert read_reported(path, SCHEMA)[0]["recall"] == PrintedNumber("0.0", 0.0, 1)


def test_a_missing_column_is_named_with_the_file(tmp_path):
    path = write(tmp_path, "table,member,recall,note\n3,Peter,1.0,\n")
    message = failure(path)
    assert str(path) in message and "missing column(s) TP" in message


def test_an_unexpected_column_is_named(tmp_path):
    message = failure(write(tmp_path, "table,member,TP,recall,note,extra\n3,Peter,1,1.0,,x\n"))
    assert "unexpected column(s) extra" in message


def test_a_count_that_is_not_an_integer_names_row_line_column_value_and_expectation(tmp_path):
    path = write(tmp_path, "table,member,TP,recall,note\n3,Peter,529,92.644,\n5,Peter,12a,8.429,\n")
    message = failure(path)
    assert message.startswith(f"{path}: data row 2 (line 3), column 'TP': '12a'")
    assert "expected an integer" in message


def test_an_unknown_choice_suggests_the_closest(tmp_path):
    message = failure(write(tmp_path, "table,member,TP,recall,note\n3,Petr,529,92.644,\n"))
    assert "data row 1 (line 2), column 'member': 'Petr'" in message
    assert "did you mean 'Peter'?" in message and "one of Peter, Ahmed" in message


def test_a_decimal_that_is_not_a_number_and_an_empty_required_cell(tmp_path):
    assert "column 'recall': '92,644'" in failure(write(tmp_path, 'table,member,TP,recall,note\n3,Peter,1,"92,644",\n'))
    message = failure(write(tmp_path, "table,member,TP,recall,note\n,Peter,1,1.0,\n"))
    assert "column 'table': '' is empty; expected an integer" in message


def test_a_short_row_a_repeated_key_and_an_empty_file(tmp_path):
    assert "data row 1 (line 2): 3 fields, expected 5" in failure(write(tmp_path, "table,member,TP,recall,note\n3,Peter,1\n"))
    repeated = write(tmp_path, "table,member,TP,recall,note\n3,Peter,1,,\n3,Ahmed,2,,\n")
    assert "data row 2 (line 3): {'table': 3} repeats data row 1" in failure(repeated, key=("table",))
    assert "no data rows" in failure(write(tmp_path, "table,member,TP,recall,note\n"))
    assert "does not exist" in failure(tmp_path / "nope.csv")


def test_closest_names():
    assert closest("Petr", ["Peter", "Ahmed"]) == "Peter"
    assert closest("nawfal", ["Peter", "Nawfal"]) == "Nawfal"
    assert closest("zzz", ["Peter", "Ahmed"]) is None
    assert unknown_name_message("member", "Petr", ["Peter", "Ahmed"]) == (
        "unknown member 'Petr' (known: Peter, Ahmed); did you mean 'Peter'?")


def test_the_project_folder_holds_the_transcriptions():
    assert reported_dir().is_dir()
    for name in ("crowd_tables.csv", "crowd_examples.csv", "crowd_prose.csv", "bias_table_5_1.csv",
                 "bias_table_5_2.csv", "bias_figures.csv", "README.md"):
        assert reported_path(name).is_file(), name
    assert isinstance(pd.read_csv(reported_path("crowd_tables.csv")), pd.DataFrame)


def test_counted_nouns():
    assert counted(1, "figure") == "1 figure" and counted(7, "figure") == "7 figures"
    assert counted(0, "figure is", "figures are") == "0 figures are" and counted(1, "does", "do") == "1 does"
