"""Every notebook under notebooks/ is committed clean and can be parametrized by papermill."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from crowdkit.common import config
from crowdkit.book import execute
from crowdkit.book import plans

NOTEBOOKS = sorted((config.PROJECT_ROOT / "notebooks").rglob("*.ipynb"))
NOTEBOOKS = [p for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts]


def _id(path: Path) -> str:
    return path.relative_to(config.PROJECT_ROOT / "notebooks").as_posix()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{_id(path)}: cells {dirty} hold outputs or execution counts; "
                       f"clear them (jupyter nbconvert --clear-output --inplace {path})")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_exactly_one_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{_id(path)}: {len(tagged)} cells tagged 'parameters' (cells {tagged}); papermill needs exactly one"
    assert nb.cells[tagged[0]].cell_type == "code"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_runs_on_the_crowdkit_kernel(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == execute.DEFAULT_KERNEL, (
        f"{_id(path)}: kernelspec must be {execute.DEFAULT_KERNEL!r} (the kernel `make setup` registers)")


def test_every_plan_loads_for_every_profile():
    found = plans.discover_plans()
    assert {p.stem for p in found} >= {"engine", "crowd", "bias", "appendix"}
    for path in found:
        for profile in ("quick", "default", "full"):
            plan = plans.load_plan(path, profile)
            assert plan.runs, f"{path} has no runs for profile {profile}"
    crowd = plans.load_plan(config.PROJECT_ROOT / "data" / "plans" / "crowd.yaml")
    assert len(crowd.runs) == 24
    assert len({(r.parameters["member"], r.parameters["challenge"]) for r in crowd.runs}) == 24
