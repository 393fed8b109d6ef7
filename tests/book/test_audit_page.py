"""The audit page (notebooks/crowd/audit.ipynb) executes on the project's data/reported and shows its flags cleanly."""
from __future__ import annotations

import json

import nbformat
import papermill as pm
import pytest

from crowdkit.book.execute import DEFAULT_KERNEL
from crowdkit.common import config

pytestmark = pytest.mark.slow  # a kernel start and the whole page: ~30 s on 2 cores

NOTEBOOK = config.PROJECT_ROOT / "notebooks" / "crowd" / "audit.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    output = tmp_path_factory.mktemp("audit") / "audit.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(output), kernel_name=DEFAULT_KERNEL, progress_bar=False,
                        cwd=str(config.PROJECT_ROOT))
    return nbformat.read(output, as_version=4)


def outputs_text(notebook) -> str:
    return "\n".join(json.dumps(output) for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []))


def test_the_page_names_the_flags_without_errors_or_warnings(executed):
    text = outputs_text(executed)
    assert "Table 3" in text and "81.573" in text  # Table 3's F1 and what its counts imply
    assert "Table 5.2" in text and "image/png" in text
    for unwanted in ("Traceback", "WARNING", "Warning", "/tmp", "/root"):
        assert unwanted not in text, unwanted
    assert not [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if o.output_type in ("error", "stream")]


def test_the_page_keeps_the_book_conventions(executed):
    tags = [cell.metadata.get("tags", []) for cell in executed.cells if cell.cell_type == "code"]
    assert ["remove-input"] in tags and ["hide-input"] in tags
    code = [line for cell in nbformat.read(NOTEBOOK, as_version=4).cells if cell.cell_type == "code"
            for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) <= 50
    assert not [line for line in code if line.lstrip().startswith(("if ", "for ", "def ", "class "))]
