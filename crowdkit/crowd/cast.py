"""Who plays whom: the study's four members, the LFW identities standing in for them, and who ran what.

The report labels its tables with four team members; each ran five of the six
challenges (:data:`STUDY_MATRIX`). Their faces are private, so each member is
played by one fixed LFW identity with many photos (:data:`CAST`), chosen so that
its default query photo (the most frontal one) shows exactly one face. Where
several members ran one challenge, the study filmed them in one video: one
simulated scene per challenge holds every member who ran it
(:func:`scene_members`).

A name given for a run means one thing everywhere (:func:`person_to_find`): an
LFW identity is the person to find; a study member is the identity playing
them; anything else is refused with the closest known names, unless a stand-in
is asked for.
"""
from __future__ import annotations

import difflib
from typing import Iterable, Mapping

from crowdkit.common.exceptions import ConfigError
from crowdkit.crowd.reported import CHALLENGES, MEMBERS

#: The LFW identity playing each member of the study (query photo: one face, checked with MTCNN).
CAST = {"Peter": "Donald_Rumsfeld", "Ahmed": "Gerhard_Schroeder", "Yousef": "Junichiro_Koizumi",
        "Nawfal": "Serena_Williams"}
#: The challenges each member ran in the report (its 20 performance tables).
STUDY_MATRIX = {
    "Peter": ("normal", "intruder", "random", "mask1", "mask2"),
    "Ahmed": ("normal", "intruder", "random", "mask1", "mask2"),
    "Yousef": ("normal", "compact", "intruder", "mask1", "mask2"),
    "Nawfal": ("normal", "compact", "random", "mask1", "mask2"),
}
#: Run matrices a plan can ask for: the study's 20 runs, or every member × every challenge (24).
MATRICES = {"study": STUDY_MATRIX, "all": {member: CHALLENGES for member in MEMBERS}}


def check_matrix(matrix: str) -> Mapping[str, tuple[str, ...]]:
    """The run matrix called ``matrix``; an unknown name raises :class:`ConfigError` listing the known ones."""
    if matrix not in MATRICES:
        raise ConfigError(f"unknown run matrix {matrix!r}; choose one of {', '.join(MATRICES)}")
    return MATRICES[matrix]


def family(challenge: str) -> str:
    """Challenges that share one video: ``mask1`` and ``mask2`` are both ``"mask"``."""
    return "mask" if challenge.startswith("mask") else challenge


def scene_members(challenge: str, matrix: str = "study") -> tuple[str, ...]:
    """The members (in the report's order) filmed in the scene of ``challenge`` under ``matrix``.

    Examples
    --------
    >>> scene_members("compact")
    ('Yousef', 'Nawfal')
    >>> scene_members("mask2") == MEMBERS
    True
    """
    runs = check_matrix(matrix)
    return tuple(m for m in MEMBERS if any(family(c) == family(challenge) for c in runs.get(m, ())))


def closest_names(name: str, known: Iterable[str], *, n: int = 5) -> list[str]:
    """Up to ``n`` of ``known`` that look most like ``name`` (difflib, case ignored)."""
    known = list(known)
    by_lower = {k.lower(): k for k in known}
    return [by_lower[k] for k in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.5)]


def person_to_find(name: str, identities: Iterable[str], *, stand_in: bool = False) -> str | None:
    """The LFW identity ``name`` stands for, or None when a stand-in is asked for and allowed.

    Parameters
    ----------
    name : an LFW identity (the person to find), or a study member (:data:`CAST`)
    identities : the LFW identities available
    stand_in : allow a name that is neither: None is returned, and the scene chooses a
        stand-in from the name and the seed

    Raises
    ------
    ConfigError
        ``name`` is neither and ``stand_in`` is False; the message lists the closest names.
    """
    identities = set(identities)
    if name in identities:
        return name
    if name in CAST:
        return CAST[name]
    if stand_in:
        return None
    close = closest_names(name, [*CAST, *identities])
    hint = f"; closest known names: {', '.join(close)}" if close else ""
    raise ConfigError(f"{name!r} is neither an LFW identity nor a member of the study ({', '.join(CAST)}){hint}. "
                      "Give an LFW name (the person to find), or ask for a stand-in chosen from the name and the seed "
                      "(stand_in: true; CLI: --stand-in)")
