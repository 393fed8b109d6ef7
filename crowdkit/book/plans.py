"""Run plans: a notebook × parameter sets, executed with papermill, skipped when nothing changed.

A plan is a YAML file under ``data/plans/``::

    description: one line shown in logs
    notebook: notebooks/crowd/crowd_run.ipynb   # relative to the project root
    output_dir: book/runs/crowd                 # executed notebooks land here
    order: 20                                    # plans run in this order (default 50)
    summary: false                               # true: a page collecting earlier runs (see below)
    rerun: changed                               # or "always"
    title: "{member}: {challenge}"               # page title (parameters and {name}); optional
    parameters: {stride: 2}                      # defaults for every run
    profiles:                                    # overrides per profile
      quick: {parameters: {max_frames: 60}, runs: [alice-normal]}
      default: {}
      full: {parameters: {stride: 1}}
    runs:
      - name: alice-normal
        parameters: {member: alice, challenge: normal}
        # optional: title, notebook (another notebook), depends_on: [other run names],
        # expected_seconds: 300 (how long a cold run takes: the build starts long runs first)

A summary plan (``summary: true``: the crowd summary, the appendix) runs, in
``crowdkit book build``, after every run of the plans before it, and its hash
includes theirs: it re-runs exactly when one of them changed. Run on its own
(``crowdkit run``) it cannot know what it summarises, so it always runs.

Parameters are merged plan < run < profile < command line. Every run is
executed with the working directory at the project root, so relative paths in
parameters mean the same thing on the command line and inside the notebook,
and gets one more parameter, ``run_dir`` (when its parameters cell declares
it; the environment variable ``CROWDKIT_RUN_DIR`` always): a folder beside the
executed notebook where :func:`crowdkit.common.run_tables.save_run_table` keeps the run's tables for summary pages.

For every run the executor writes ``<output_dir>/<run>.ipynb`` (only when the
notebook finished) and ``<output_dir>/<run>.run.json`` (parameters, content
hash, package versions, data checksums, timing, status). A run whose content
hash (notebook bytes, parameters, input files, crowdkit version and source,
dependencies' hashes) equals the one recorded is skipped.
"""
from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError
from crowdkit.common.run_tables import NAME_PATTERN

log = logging.getLogger(__name__)

#: Parameter injected into every run: the folder for the run's tables.
RUN_DIR_PARAMETER = "run_dir"
#: Folder (inside a plan's output_dir) where notebooks are executed before they are final.
STAGING = ".staging"

_PLAN_KEYS = {"description", "notebook", "output_dir", "order", "rerun", "summary", "title", "parameters", "profiles",
              "runs"}
_RUN_KEYS = {"name", "title", "parameters", "notebook", "depends_on", "expected_seconds"}
_PROFILE_KEYS = {"parameters", "runs"}

# --------------------------------------------------------------------------- plans

@dataclass(frozen=True)
class RunSpec:
    """One notebook execution: everything needed to run it, and where its results go."""

    plan: str
    name: str
    notebook: Path  # absolute
    parameters: dict[str, Any]  # merged, without run_dir
    output_dir: Path  # absolute
    root: Path  # project root: the working directory of the kernel
    depends_on: tuple[str, ...] = ()  # keys ("plan/name") of runs that must finish first
    always: bool = False  # re-run even when nothing changed
    summary: bool = False  # collects earlier runs: runs after them, re-runs when one of them changed
    profile: str = "default"
    title: str = ""  # page title: replaces the executed notebook's first "# " heading ("" keeps it)
    expected_seconds: float | None = None  # a cold run's duration, for ordering a build (the last recorded one wins)

    @property
    def key(self) -> str:
        return f"{self.plan}/{self.name}"

    @property
    def output_path(self) -> Path:
        return self.output_dir / f"{self.name}.ipynb"

    @property
    def failed_path(self) -> Path:
        return self.output_dir / f"{self.name}.failed.ipynb"

    @property
    def sidecar_path(self) -> Path:
        return self.output_dir / f"{self.name}.run.json"

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.name


@dataclass(frozen=True)
class Plan:
    name: str
    path: Path
    profile: str
    runs: tuple[RunSpec, ...]
    output_dir: Path
    order: int = 50
    description: str = ""

    def select(self, patterns: Sequence[str]) -> "Plan":
        """The plan restricted to runs matching any of ``patterns`` (fnmatch), plus their dependencies."""
        if not patterns:
            return self
        chosen = {r.key for r in self.runs if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)}
        if not chosen:
            known = ", ".join(r.name for r in self.runs)
            raise ConfigError(f"{self.path}: no run matches {list(patterns)}; runs are: {known}")
        by_key = {r.key: r for r in self.runs}
        stack = list(chosen)
        while stack:
            for dep in by_key[stack.pop()].depends_on:
                if dep in by_key and dep not in chosen:
                    chosen.add(dep)
                    stack.append(dep)
        return replace(self, runs=tuple(r for r in self.runs if r.key in chosen))


def _check_keys(found: Mapping, allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(found) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} in {where} (allowed: {', '.join(sorted(allowed))})")


def _mapping(value: Any, where: str, path: Path) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: {where} must be a mapping of name: value, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(f"{path}: {where} has {key!r}, which is not a valid Python parameter name")
    return dict(value)


def _project_of(plan_path: Path) -> Path:
    """The project a plan belongs to: ``<root>/data/plans/x.yaml`` → ``<root>``, else this checkout."""
    folder = plan_path.resolve().parent
    if folder.name == "plans" and folder.parent.name == "data":
        return folder.parent.parent
    return config.PROJECT_ROOT


def load_plan(path: str | os.PathLike, profile: str = "default", *, root: str | os.PathLike | None = None,
              overrides: Mapping[str, Any] | None = None) -> Plan:
    """Read and validate a plan; parameters merged for ``profile`` and ``overrides`` (command line).

    Unknown keys, a missing notebook entry, duplicate run names and unknown
    profiles raise :class:`~crowdkit.common.exceptions.ConfigError` naming the file
    and the key. The notebook need not exist yet (``crowdkit book build``
    skips such plans with a warning; ``crowdkit run`` refuses them).
    """
    path = Path(path)
    root = Path(root).resolve() if root else _project_of(path)
    raw = _read_plan_file(path, root)
    name = path.stem
    if "output_dir" not in raw:
        raise ConfigError(f"{path}: missing key 'output_dir' (e.g. book/runs/{name})")
    rerun = raw.get("rerun", "changed")
    if rerun not in ("changed", "always"):
        raise ConfigError(f"{path}: rerun must be 'changed' or 'always', got {rerun!r}")
    chosen = _chosen_profile(raw, profile, path)
    layers = (_mapping(raw.get("parameters"), "parameters", path),
              _mapping(chosen.get("parameters"), f"profiles.{profile}.parameters", path),
              _mapping(overrides, "command-line parameters", path))
    output_dir = (root / raw["output_dir"]).resolve()
    entries = raw.get("runs")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: 'runs' must be a non-empty list of {{name, parameters}}")
    runs: list[RunSpec] = []
    for index, entry in enumerate(entries):
        runs.append(_run_spec(entry, index, raw, layers, path=path, root=root, output_dir=output_dir,
                              profile=profile, always=rerun == "always"))
    _check_runs(runs, path)
    plan = Plan(name=name, path=path.resolve(), profile=profile, runs=tuple(runs), output_dir=output_dir,
                order=int(raw.get("order", 50)), description=str(raw.get("description", "")))
    selection = chosen.get("runs")
    return plan.select([str(s) for s in selection]) if selection else plan


def _read_plan_file(path: Path, root: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise ConfigError(f"plan {path} does not exist (plans live in {root / 'data' / 'plans'})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: a plan is a mapping with keys {', '.join(sorted(_PLAN_KEYS))}")
    _check_keys(raw, _PLAN_KEYS, "the plan", path)
    return raw


def _chosen_profile(raw: Mapping[str, Any], profile: str, path: Path) -> Mapping[str, Any]:
    """The overrides of ``profile``; every profile of the plan is checked, not only the one asked for."""
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"{path}: profiles must be a mapping of profile name to overrides")
    if profiles and profile not in profiles and profile != "default":  # a plan without profiles runs alike in all
        raise ConfigError(f"{path}: unknown profile {profile!r} (known: {', '.join(sorted(set(profiles) | {'default'}))})")
    for profile_name, entry in profiles.items():
        if not isinstance(entry, (Mapping, type(None))):
            raise ConfigError(f"{path}: profile {profile_name!r} must be a mapping with 'parameters' and/or 'runs'")
        _check_keys(entry or {}, _PROFILE_KEYS, f"profile {profile_name!r}", path)
    return profiles.get(profile) or {}


def _run_spec(entry: Any, index: int, raw: Mapping[str, Any], layers: tuple[dict, dict, dict], *, path: Path,
              root: Path, output_dir: Path, profile: str, always: bool) -> RunSpec:
    """One run of the plan; parameters merged plan < run < profile < command line."""
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise ConfigError(f"{path}: runs[{index}] must be a mapping with at least 'name'")
    _check_keys(entry, _RUN_KEYS, f"runs[{index}] ({entry.get('name')})", path)
    run_name = str(entry["name"])
    if not NAME_PATTERN.match(run_name):
        raise ConfigError(f"{path}: run name {run_name!r} may hold only letters, digits, '_', '-', '.'")
    notebook = entry.get("notebook", raw.get("notebook"))
    if not notebook:
        raise ConfigError(f"{path}: run {run_name!r} has no notebook (set 'notebook' on the plan or the run)")
    base, profile_params, extra = layers
    params = {**base, **_mapping(entry.get("parameters"), f"runs[{index}].parameters", path),
              **profile_params, **extra}
    if RUN_DIR_PARAMETER in params:
        raise ConfigError(f"{path}: {RUN_DIR_PARAMETER!r} is set by crowdkit for every run; do not set it")
    title = entry.get("title", raw.get("title", ""))
    try:
        title = str(title).format(name=run_name, **params) if title else ""
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(f"{path}: title {title!r} of run {run_name!r} names {error}, which is not a parameter")
    depends = entry.get("depends_on") or []
    depends = [depends] if isinstance(depends, str) else depends
    return RunSpec(plan=path.stem, name=run_name, notebook=(root / notebook).resolve(), parameters=params,
                   output_dir=output_dir, root=root, depends_on=tuple(f"{path.stem}/{d}" for d in depends),
                   always=always, summary=bool(raw.get("summary", False)), profile=profile, title=title,
                   expected_seconds=_expected_seconds(entry.get("expected_seconds"), run_name, path))


def _expected_seconds(value: Any, run_name: str, path: Path) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e6:
        raise ConfigError(f"{path}: run {run_name!r}: expected_seconds must be a positive number of seconds, "
                          f"got {value!r}")
    return float(value)


def _check_runs(runs: Sequence[RunSpec], path: Path) -> None:
    """Run names are unique, and every dependency names a run of this plan."""
    seen: set[str] = set()
    for run in runs:
        if run.name in seen:
            raise ConfigError(f"{path}: run name {run.name!r} appears twice")
        seen.add(run.name)
    for run in runs:
        for dep in run.depends_on:
            if dep.split("/", 1)[1] not in seen:
                raise ConfigError(f"{path}: run {run.name!r} depends on {dep.split('/', 1)[1]!r}, which is not a run of this plan")


def discover_plans(root: str | os.PathLike | None = None) -> list[Path]:
    root = Path(root) if root else config.PROJECT_ROOT
    return sorted((root / "data" / "plans").glob("*.yaml"))

def relative_path(path: Path, root: Path) -> str:
    """``path`` relative to the project ``root`` (POSIX), or as given when it lies outside."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
