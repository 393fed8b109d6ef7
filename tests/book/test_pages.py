"""An executed notebook becomes a page: its title, parameter cells hidden, the parameters once as a table."""
from __future__ import annotations

import nbformat

from crowdkit.book.pages import parameters_box, shape_page


def executed(path):
    nb = nbformat.v4.new_notebook()
    defaults = nbformat.v4.new_code_cell("member = 'x'")
    defaults.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell("member = 'Peter'")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# One run\n\nWhat this page is."), defaults, injected,
                nbformat.v4.new_code_cell("result = 1")]
    nbformat.write(nb, path)
    return path


def test_title_hidden_parameter_cells_and_one_table(tmp_path):
    path = executed(tmp_path / "run.ipynb")
    shape_page(path, title="Peter, normal", parameters={"member": "Peter", "frames": [1, 2], "run_dir": "book/x"})
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].source.startswith("# Peter, normal\n\nWhat this page is.")
    assert "Parameters of this run" in cells[1].source and "| `member` | `Peter` |" in cells[1].source
    assert "| `frames` | `[1, 2]` |" in cells[1].source
    assert [c.metadata.get("tags") for c in cells[2:4]] == [["parameters", "remove-cell"],
                                                             ["injected-parameters", "remove-cell"]]
    assert cells[4].source == "result = 1"


def test_a_notebook_without_a_heading_gets_one(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1")]
    nbformat.write(nb, tmp_path / "a.ipynb")
    shape_page(tmp_path / "a.ipynb", title="A title", parameters={})
    assert nbformat.read(tmp_path / "a.ipynb", as_version=4).cells[0].source == "# A title"


def test_table_cells_cannot_break_the_table():
    assert "a\\|b" in parameters_box({"x": "a|b"})


def test_a_long_table_scrolls_and_a_short_one_does_not(tmp_path):
    import pandas as pd

    from crowdkit.book.pages import LONG_TABLE_ROWS, SCROLL_OUTPUT

    nb = nbformat.v4.new_notebook()
    cells = []
    for rows in (LONG_TABLE_ROWS, LONG_TABLE_ROWS + 1):
        cell = nbformat.v4.new_code_cell("table")
        html = pd.DataFrame({"a": range(rows), "b": range(rows)}).to_html()  # two header rows outside the body
        cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/html": html, "text/plain": "t"},
                                               execution_count=1)]
        cells.append(cell)
    nb.cells = [nbformat.v4.new_markdown_cell("# Tables"), *cells]
    nbformat.write(nb, tmp_path / "t.ipynb")
    shape_page(tmp_path / "t.ipynb", title="", parameters={})
    short, long = nbformat.read(tmp_path / "t.ipynb", as_version=4).cells[1:]
    assert SCROLL_OUTPUT not in short.metadata.get("tags", []) and long.metadata["tags"] == [SCROLL_OUTPUT]
