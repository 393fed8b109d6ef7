"""Run plans: validation, papermill execution, skipping, failures, parallel and Dask executors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from crowdkit.book import build, execute, hashing, plans, scheduler
from crowdkit.common import run_tables
from crowdkit.common.io import sha256_file
from crowdkit.cli import main
from crowdkit.common.exceptions import ConfigError, RunFailedError

BODY = """\
import os, pathlib
from crowdkit.common.run_tables import save_run_table
import pandas as pd
if data_file:
    text = pathlib.Path(data_file).read_text()
print(f"x={x} cwd={os.getcwd()}")
assert not fail, "asked to fail"
save_run_table("numbers", pd.DataFrame({"x": [x, x + 1]}), run_dir=run_dir)
save_run_table("env", pd.DataFrame({"x": [x]}))  # run_dir from CROWDKIT_RUN_DIR
"""


def write_notebook(path: Path, body: str = BODY, *, declared: str = "x = 1\nfail = False\ndata_file = ''\nrun_dir = None") -> Path:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell(declared)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# A tiny run"), parameters, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "crowdkit", "display_name": "Python (crowdkit)", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def write_plan(root: Path, text: str, name: str = "tiny") -> Path:
    path = root / "data" / "plans" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


PLAN = """\
notebook: notebooks/tiny.ipynb
output_dir: book/runs/tiny
parameters: {x: 1}
profiles:
  quick: {parameters: {x: 100}, runs: [a]}
  default: {}
runs:
  - name: a
  - name: b
    parameters: {x: 2}
"""


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A project folder with one tiny notebook; crowdkit's own source counts as unchanged."""
    monkeypatch.setattr(hashing, "crowdkit_source_hash", lambda: "fixed-for-test")
    write_notebook(tmp_path / "notebooks" / "tiny.ipynb")
    return tmp_path


def outputs_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


# --------------------------------------------------------------------------- plans

def test_plan_merges_defaults_runs_profile_and_command_line(project):
    path = write_plan(project, PLAN)
    plan = plans.load_plan(path, root=project)
    assert [r.name for r in plan.runs] == ["a", "b"]
    assert [r.parameters["x"] for r in plan.runs] == [1, 2]
    assert plan.runs[0].output_path == project / "book" / "runs" / "tiny" / "a.ipynb"
    quick = plans.load_plan(path, "quick", root=project)
    assert [(r.name, r.parameters["x"]) for r in quick.runs] == [("a", 100)]
    cli = plans.load_plan(path, root=project, overrides={"x": 7})
    assert {r.parameters["x"] for r in cli.runs} == {7}
    assert [r.name for r in plan.select(["b"]).runs] == ["b"]


@pytest.mark.parametrize("text, named", [
    (PLAN + "colour: blue\n", "'colour'"),
    (PLAN.replace("  - name: a\n", "  - name: a\n    paramters: {x: 3}\n"), "'paramters'"),
    (PLAN.replace("  quick: {", "  quick: {runz: [a], "), "'runz'"),
    (PLAN.replace("output_dir: book/runs/tiny\n", ""), "'output_dir'"),
    (PLAN.replace("name: b", "name: a"), "'a' appears twice"),
    (PLAN.replace("parameters: {x: 2}", "parameters: {run_dir: here}"), "'run_dir'"),
    (PLAN.replace("name: b", "name: b/c"), "'b/c'"),
    (PLAN.replace("  - name: a\n", "  - name: a\n    depends_on: [zz]\n"), "'zz'"),
    ("runs: [\n", "not valid YAML"),
])
def test_plan_errors_name_the_key_and_the_file(project, text, named):
    path = write_plan(project, text)
    with pytest.raises(ConfigError) as error:
        plans.load_plan(path, root=project)
    assert named in str(error.value) and str(path) in str(error.value)


def test_unknown_profile_lists_known_ones(project):
    path = write_plan(project, PLAN)
    with pytest.raises(ConfigError, match="known: default, quick"):
        plans.load_plan(path, "fast", root=project)
    plain = write_plan(project, "notebook: n.ipynb\noutput_dir: out\nruns: [{name: a}]\n", name="plain")
    assert plans.load_plan(plain, "fast", root=project).runs[0].name == "a"  # no profiles: the same in every one


# --------------------------------------------------------------------------- execution

def test_run_writes_notebook_sidecar_and_table_then_skips(project):
    plan = plans.load_plan(write_plan(project, PLAN), root=project)
    first = scheduler.run_plan(plan, progress=False)
    assert [r.status for r in first] == ["ran", "ran"]
    a, b = plan.runs
    assert f"x=2 cwd={project}" in outputs_text(b.output_path)  # parameters injected, cwd = project root
    sidecar = json.loads(b.sidecar_path.read_text())
    assert sidecar["status"] == "ok" and sidecar["parameters"]["x"] == 2
    assert sidecar["parameters"]["run_dir"] == "book/runs/tiny/b"  # relative to the kernel's cwd, the root
    assert sidecar["content_hash"] == first[1].content_hash and sidecar["seconds"] > 0
    assert "papermill" in sidecar["packages"] and sidecar["crowdkit_version"]
    assert not list((plan.output_dir / plans.STAGING).iterdir())  # nothing half-written left behind
    table = run_tables.collect_run_tables(plan.output_dir, "numbers")
    assert table.to_dict("list") == {"run": ["a", "a", "b", "b"], "x": [1, 2, 2, 3]}
    assert run_tables.collect_run_tables(plan.output_dir, "env").to_dict("list") == {"run": ["a", "b"], "x": [1, 2]}

    again = scheduler.run_plan(plan, progress=False)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert json.loads(b.sidecar_path.read_text())["started"] == sidecar["started"]

    changed = plans.load_plan(plan.path, root=project, overrides={"x": 5})
    assert [r.status for r in scheduler.run_plan(changed, progress=False)] == ["ran", "ran"]
    assert "x=5" in outputs_text(a.output_path)

    titled = plans.load_plan(write_plan(project, PLAN.replace("parameters: {x: 1}\n", "parameters: {x: 1}\ntitle: 'Run {name}, x = {x}'\n")),
                            root=project)
    assert [r.title for r in titled.runs] == ["Run a, x = 1", "Run b, x = 2"]
    scheduler.run_plan(titled, progress=False)  # the title is part of the hash: both run again, renamed
    assert nbformat.read(b.output_path, as_version=4).cells[0].source == "# Run b, x = 2"
    with pytest.raises(ConfigError, match="'y'"):
        plans.load_plan(write_plan(project, PLAN.replace("parameters: {x: 1}\n", "parameters: {x: 1}\ntitle: '{y}'\n")),
                       root=project)


def test_changed_notebook_or_input_file_reruns(project):
    data = project / "inputs" / "numbers.txt"
    data.parent.mkdir()
    data.write_text("1 2 3")
    plan = plans.load_plan(write_plan(project, PLAN), root=project, overrides={"data_file": "inputs/numbers.txt"})
    spec = plan.runs[0]
    assert execute.execute_run(spec).status == "ran"
    assert json.loads(spec.sidecar_path.read_text())["data_checksums"] == {
        "inputs/numbers.txt": sha256_file(data)}
    assert execute.execute_run(spec).status == "skipped"
    data.write_text("1 2 3 4")
    assert execute.execute_run(spec).status == "ran"
    write_notebook(spec.notebook, BODY + "print('edited')\n")
    assert execute.execute_run(spec).status == "ran"
    assert execute.execute_run(spec).status == "skipped"
    spec.output_path.unlink()  # a deleted output is re-made even though the sidecar matches
    assert execute.execute_run(spec).status == "ran"


def test_failed_notebook_names_cell_and_error_and_keeps_partial_aside(project):
    plan = plans.load_plan(write_plan(project, PLAN), root=project)
    spec = plan.runs[0]
    assert execute.execute_run(spec).status == "ran"  # an older finished page exists ...
    failing = plans.load_plan(plan.path, root=project, overrides={"fail": True}).runs[0]
    with pytest.raises(RunFailedError) as error:
        execute.execute_run(failing)
    message = str(error.value)
    assert "notebooks/tiny.ipynb" in message and "tiny/a" in message
    assert "cell 3" in message  # markdown, parameters, injected parameters, body: the body is index 3
    assert "AssertionError: asked to fail" in message
    assert not spec.output_path.exists()  # ... and is gone: never shown as a finished chapter
    assert spec.failed_path.is_file() and "asked to fail" in spec.failed_path.read_text()
    assert json.loads(spec.sidecar_path.read_text())["status"] == "failed"
    assert run_tables.collect_run_tables(plan.output_dir, "numbers").empty
    assert execute.execute_run(spec).status == "ran"  # fixed: runs again although the hash matches the old one
    assert not spec.failed_path.exists()


def test_failure_stops_the_build_and_cli_exits_nonzero(project, capsys):
    write_notebook(project / "notebooks" / "broken.ipynb", "raise ValueError('bad cell')")
    path = write_plan(project, PLAN.replace("  - name: b\n", "  - name: b\n    notebook: notebooks/broken.ipynb\n"))
    plan = plans.load_plan(path, root=project)
    with pytest.raises(RunFailedError, match="broken.ipynb.*ValueError: bad cell"):
        scheduler.run_plan(plan, progress=False)
    # the CLI finds the project from the plan's place (<root>/data/plans/) and prints one line, no traceback
    code = main(["run", str(path), "--only", "b"])
    assert code == 2
    assert "ValueError: bad cell" in capsys.readouterr().err


@pytest.mark.slow
def test_parallel_jobs_run_four_notebooks_each_on_its_share_of_the_cpus(tmp_path):
    write_notebook(tmp_path / "notebooks" / "tiny.ipynb",
                   "import os\nprint(f'x={x}')\nprint('threads=' + os.environ.get('OMP_NUM_THREADS', 'unset'))\n")
    names = "".join(f"  - name: r{i}\n    parameters: {{x: {i}}}\n" for i in range(4))
    path = write_plan(tmp_path, "notebook: notebooks/tiny.ipynb\noutput_dir: book/runs/par\nruns:\n" + names)
    plan = plans.load_plan(path, root=tmp_path)
    results = scheduler.run_plan(plan, jobs=2, progress=False, stagger=0.2)
    assert [r.status for r in results] == ["ran"] * 4
    expected = os.environ.get("OMP_NUM_THREADS", str(scheduler.threads_per_job(2)))  # a value set outside wins
    for i, spec in enumerate(plan.runs):
        assert f"x={i}" in outputs_text(spec.output_path)
        assert f"threads={expected}" in outputs_text(spec.output_path)


def test_threads_per_job_shares_the_cpus_and_never_drops_to_zero():
    assert scheduler.threads_per_job(2, cpus=2) == 1
    assert scheduler.threads_per_job(2, cpus=16) == 8
    assert scheduler.threads_per_job(4, cpus=2) == 1
    assert scheduler.threads_per_job(1, cpus=2) == 2


@pytest.mark.slow
def test_dask_local_cluster_executor(project):
    from distributed import Client, LocalCluster

    plan = plans.load_plan(write_plan(project, PLAN), root=project)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        results = scheduler.run_plan(plan, executor="dask", scheduler=client, progress=False, stagger=0.2)
    assert [r.status for r in results] == ["ran", "ran"]
    assert "x=2" in outputs_text(plan.runs[1].output_path)


def test_dependencies_run_first_and_their_changes_propagate(project):
    text = PLAN.replace("    parameters: {x: 2}\n", "    parameters: {x: 2}\n    depends_on: [a]\n")
    plan = plans.load_plan(write_plan(project, text), root=project)
    first = scheduler.run_plan(plan, progress=False)
    assert [r.status for r in first] == ["ran", "ran"]
    a_changed = plans.load_plan(plan.path, root=project, overrides={"x": 9}).runs[0]
    execute.execute_run(a_changed)  # a's hash changes ...
    again = scheduler.run_plan(plans.load_plan(plan.path, root=project, overrides={"x": 9}), progress=False)
    assert [r.status for r in again] == ["skipped", "ran"]  # ... so b, which depends on it, re-runs


def test_book_runs_every_plan_leaves_out_missing_notebooks_and_puts_aside_unselected_runs(project, caplog):
    write_plan(project, PLAN, name="tiny")
    write_plan(project, "notebook: notebooks/not_yet.ipynb\noutput_dir: book/runs/later\nruns:\n  - name: one\n",
               name="later")
    write_plan(project, "notebook: notebooks/tiny.ipynb\noutput_dir: book/runs/summary\nsummary: true\norder: 90\n"
               "profiles: {quick: {}}\nruns:\n  - name: all\n", name="summary")
    zz = PLAN.replace("runs: [a]", "runs: []").replace("quick: {parameters: {x: 100}, ", "quick: {")
    write_plan(project, zz, name="zz")  # no quick selection: all runs in every profile
    with pytest.raises(ConfigError, match="would both write"):
        build.book_specs(project, "default")
    write_plan(project, zz.replace("book/runs/tiny", "book/runs/zz"), name="zz")
    specs, left_out = build.book_specs(project, "default")
    assert left_out == ["later/one"] and "notebooks/not_yet.ipynb does not exist yet" in caplog.text
    assert specs[-1].key == "summary/all"
    assert set(specs[-1].depends_on) == {"tiny/a", "tiny/b", "zz/a", "zz/b"}

    first = build.build_book(project, html=False, progress=False)
    assert sorted(r.status for r in first.runs) == ["ran"] * 5
    quick = build.build_book(project, profile="quick", html=False, progress=False)
    assert {r.key: r.status for r in quick.runs}["tiny/a"] == "ran"  # x=100 in quick
    tiny = project / "book" / "runs" / "tiny"
    assert not (tiny / "b.ipynb").exists()  # not part of the quick book: put aside, not deleted
    assert (project / "book" / "runs" / ".unused" / "book__runs__tiny" / "b.ipynb").is_file()
    again = build.build_book(project, html=False, progress=False)
    statuses = {r.key: r.status for r in again.runs}
    assert statuses["tiny/b"] == "skipped" and (tiny / "b.ipynb").is_file()  # back, and still up to date
    assert statuses["tiny/a"] == "ran" and statuses["zz/a"] == "skipped" and statuses["summary/all"] == "ran"
    unchanged = build.build_book(project, html=False, progress=False)
    assert {r.status for r in unchanged.runs} == {"skipped"}  # the summary too: nothing it reads changed
    assert scheduler.run_plan(plans.load_plan(project / "data" / "plans" / "summary.yaml"), progress=False)[0].status == "ran"


def test_missing_kernel_is_named_with_the_fix(project):
    spec = plans.load_plan(write_plan(project, PLAN), root=project).runs[0]
    with pytest.raises(RunFailedError, match="no_such_kernel_here.*ipykernel install"):
        execute.execute_run(spec, kernel="no_such_kernel_here")
    assert not spec.output_path.exists()


def test_a_chain_of_dependent_runs_starts_first(project):
    text = PLAN.replace("  - name: b\n", "  - name: c\n  - name: d\n    depends_on: [c]\n  - name: b\n")
    text = text.replace("    parameters: {x: 2}\n", "    parameters: {x: 2}\n    depends_on: [d]\n")
    plan = plans.load_plan(write_plan(project, text), root=project)
    assert scheduler.critical_paths(plan.runs) == {"tiny/a": 1, "tiny/c": 3, "tiny/d": 2, "tiny/b": 1}
    results = scheduler.run_plan(plan, progress=False)  # one job: the chain c → d first
    assert [r.key for r in _by_finish(results)] == ["tiny/c", "tiny/d", "tiny/a", "tiny/b"]  # ties: plan order


def _by_finish(results):
    return sorted(results, key=lambda r: r.output_path.stat().st_mtime_ns)


def test_a_long_run_starts_first_and_its_last_recorded_time_wins(project):
    text = PLAN.replace("  - name: b\n", "  - name: b\n    expected_seconds: 300\n")
    plan = plans.load_plan(write_plan(project, text), root=project)
    seconds = {s.key: scheduler.expected_seconds(s) for s in plan.runs}
    assert seconds == {"tiny/a": scheduler.UNKNOWN_SECONDS, "tiny/b": 300}
    assert [r.key for r in _by_finish(scheduler.run_plan(plan, progress=False))] == ["tiny/b", "tiny/a"]
    # Both have run now: what they took here decides, not the plan's guess.
    a, b = plan.runs
    assert scheduler.expected_seconds(b) < 300
    assert scheduler.critical_paths(plan.runs, {"tiny/a": 5.0, "tiny/b": 2.0}) == {"tiny/a": 5.0, "tiny/b": 2.0}
    for bad in ("soon", 0, -3, True):
        with pytest.raises(ConfigError, match="expected_seconds must be a positive number"):
            plans.load_plan(write_plan(project, PLAN.replace("  - name: b\n", f"  - name: b\n    expected_seconds: {bad}\n")),
                            root=project)


def test_run_dir_goes_only_to_notebooks_that_declare_it(project, caplog):
    write_notebook(project / "notebooks" / "tiny.ipynb", BODY.replace("run_dir=run_dir", "run_dir=None"),
                   declared="x = 1\nfail = False\ndata_file = ''")
    plan = plans.load_plan(write_plan(project, PLAN), root=project).select(["a"])
    with caplog.at_level("WARNING"):
        scheduler.run_plan(plan, progress=False)
    assert "unknown parameter" not in caplog.text
    assert "run_dir" not in json.loads(plan.runs[0].sidecar_path.read_text())["parameters"]
    assert run_tables.collect_run_tables(plan.output_dir, "env").to_dict("list") == {"run": ["a"], "x": [1]}


def test_setup_notebook_works_in_the_builds_root_not_crowdkits_checkout(project):
    """A build in another folder (``book build --root``, a copy): relative run paths resolve inside that folder."""
    body = ("import os\nimport pandas as pd\nfrom crowdkit.book.notebook import setup_notebook\n"
            "from crowdkit.common.run_tables import save_run_table\n"
            "session = setup_notebook(run_dir=run_dir, theme=False)\n"
            "print(f'cwd={os.getcwd()}')\n"
            "save_run_table('numbers', pd.DataFrame({'x': [x]}), run_dir=run_dir)\n")
    write_notebook(project / "notebooks" / "tiny.ipynb", body)
    plan = plans.load_plan(write_plan(project, PLAN), root=project).select(["a"])
    scheduler.run_plan(plan, progress=False)
    assert f"cwd={project}" in outputs_text(plan.runs[0].output_path)
    assert run_tables.collect_run_tables(plan.output_dir, "numbers").to_dict("list") == {"run": ["a"], "x": [1]}
