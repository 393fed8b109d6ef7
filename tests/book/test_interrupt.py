"""Ctrl-C (or kill) during ``crowdkit run``: the kernels stop within seconds, and the output says what was kept."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from crowdkit.book import execute

SLEEPER = """\
import os, pathlib, time
pathlib.Path(pid_file).write_text(str(os.getpid()))
time.sleep(300)
"""

PLAN = """\
notebook: notebooks/sleeper.ipynb
output_dir: book/runs/sleep
runs:
  - name: quick
    parameters: {pid_file: "", sleep: false}
  - name: first
  - name: second
"""


def make_project(root: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("pid_file = ''\nsleep = True")
    parameters.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell("import pathlib\npid_file = pid_file or None\n")
    sleeper = nbformat.v4.new_code_cell("if sleep:\n" + "".join("    " + line + "\n" for line in SLEEPER.splitlines()))
    nb.cells = [nbformat.v4.new_markdown_cell("# sleeper"), parameters, body, sleeper]
    nb.metadata["kernelspec"] = {"name": "crowdkit", "display_name": "Python (crowdkit)", "language": "python"}
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(nb, root / "notebooks" / "sleeper.ipynb")
    plan = root / "data" / "plans" / "sleep.yaml"
    plan.parent.mkdir(parents=True)
    text = PLAN.replace("  - name: first\n", f"  - name: first\n    parameters: {{pid_file: {root / 'first.pid'}}}\n")
    text = text.replace("  - name: second\n", f"  - name: second\n    parameters: {{pid_file: {root / 'second.pid'}}}\n")
    plan.write_text(text)
    return plan


@pytest.mark.slow
@pytest.mark.parametrize("jobs, stop", [(1, signal.SIGINT), (2, signal.SIGINT), (2, signal.SIGTERM)])
def test_ctrl_c_stops_the_kernels_and_says_what_was_kept(tmp_path, jobs, stop):
    plan = make_project(tmp_path)
    crowdkit = Path(sys.executable).with_name("crowdkit")
    process = subprocess.Popen([str(crowdkit), "run", str(plan), "--jobs", str(jobs)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = tmp_path / "first.pid"
    deadline = time.monotonic() + 120
    while not pid_file.is_file() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
    assert pid_file.is_file(), process.communicate()[1][-2000:]
    kernel = int(pid_file.read_text())
    sent = time.monotonic()
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=30)
    stopped_after = time.monotonic() - sent
    assert process.returncode == 130, stderr[-2000:]
    assert stopped_after < 20
    assert "interrupted" in stderr and "sleep/first" in stderr and "resume" in stderr
    time.sleep(1)
    assert not execute.process_alive(kernel), "the interrupted run's kernel is still running"
    assert not list((tmp_path / "book" / "runs" / "sleep" / ".staging").glob("*.ipynb"))
    assert json.loads((tmp_path / "book/runs/sleep/first.run.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "book/runs/sleep/second.ipynb").exists()


def test_a_later_build_removes_partial_notebooks_of_dead_processes(tmp_path):
    staging = tmp_path / "out" / ".staging"
    staging.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left_behind = staging / execute.staging_name("a", pid=dead.pid)
    still_running = staging / execute.staging_name("b")  # this process: alive
    old_format = staging / "c.0123abcd.ipynb"  # written before the pid was part of the name
    for path in (left_behind, still_running, old_format):
        path.write_text("{}")
    removed = execute.remove_stale_staging([tmp_path / "out"])
    assert sorted(removed) == sorted([left_behind, old_format])
    assert still_running.is_file()
