"""crowdkit.crowd.cast: who plays whom, who shares a scene, and one meaning for a member's name."""
from __future__ import annotations

import pytest

from crowdkit.common.exceptions import ConfigError
from crowdkit.crowd.cast import CAST, STUDY_MATRIX, person_to_find, scene_members
from crowdkit.crowd.reported import MEMBERS, load_crowd_tables


def test_the_study_matrix_is_the_reports_20_tables():
    tables = load_crowd_tables()
    assert {(r.member, r.challenge) for r in tables.itertuples()} == {
        (m, c) for m, challenges in STUDY_MATRIX.items() for c in challenges}
    assert tuple(CAST) == MEMBERS and len(set(CAST.values())) == 4


def test_scene_members_follow_the_matrix():
    assert scene_members("compact") == ("Yousef", "Nawfal")
    assert scene_members("intruder") == ("Peter", "Ahmed", "Yousef")
    assert scene_members("mask1") == scene_members("mask2") == MEMBERS
    assert scene_members("compact", "all") == MEMBERS
    with pytest.raises(ConfigError, match="unknown run matrix"):
        scene_members("normal", "some")


def test_a_name_means_the_person_to_find():
    people = ["George_W_Bush", "Maria_Shriver", "Edmund_Stoiber"]
    assert person_to_find("George_W_Bush", people) == "George_W_Bush"
    assert person_to_find("Peter", people) == CAST["Peter"]
    with pytest.raises(ConfigError, match="closest known names: George_W_Bush"):
        person_to_find("George_Bush", people)
    with pytest.raises(ConfigError, match="stand-in"):
        person_to_find("Nobody_Here", people)
    assert person_to_find("Nobody_Here", people, stand_in=True) is None


def test_cli_simulate_finds_the_member_it_names(tmp_path, capsys):
    import json

    from crowdkit.cli import main

    args = ["--challenge", "normal", "--seed", "7", "--frames", "1", "--people", "3", "--json"]
    assert main(["simulate", "--member", "George_W_Bush", "--out", str(tmp_path / "a"), *args]) == 0
    assert json.loads(capsys.readouterr().out)["subject"] == "George_W_Bush"
    assert main(["simulate", "--member", "Nobody_Here", "--out", str(tmp_path / "b"), *args]) == 2
    assert "closest known names" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    assert main(["simulate", "--member", "Nobody_Here", "--stand-in", "--out", str(tmp_path / "c"),
                 *args[:-1]]) == 0
    assert capsys.readouterr().out.startswith("stand-in: 'Nobody_Here' names nobody")
