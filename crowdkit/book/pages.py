"""What the runner does to an executed notebook before it becomes a page of the book.

The source notebooks stay runnable as they are; only the executed copy is shaped:

- its first ``# `` heading becomes the run's title (runs of one notebook would
  otherwise share one name in the navigation);
- the ``parameters`` cell and papermill's ``injected-parameters`` copy are
  removed from the page (``remove-cell``), and the run's parameters appear
  once instead, as a small table in a collapsed box under the first paragraph;
- a cell whose output holds a table longer than :data:`LONG_TABLE_ROWS` rows
  gets MyST-NB's ``scroll-output`` tag: the table sits in a box of fixed
  height that scrolls, so the page's findings are not pushed out of sight.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

#: Cell tags of the parameter cells (papermill's names).
PARAMETER_TAGS = ("parameters", "injected-parameters")
#: The tag Jupyter Book reads to leave a cell out of the page.
REMOVE_CELL = "remove-cell"
#: Tables with more rows than this are shown in a scrolling box (MyST-NB's tag for it).
LONG_TABLE_ROWS, SCROLL_OUTPUT = 15, "scroll-output"


def shape_page(path: Path, *, title: str, parameters: Mapping[str, Any]) -> None:
    """Title, hidden parameter cells and one parameters table (see the module docstring); rewrites ``path``."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if title:
        _set_title(nb, title)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if any(t in tags for t in PARAMETER_TAGS) and REMOVE_CELL not in tags:
            cell.metadata["tags"] = [*tags, REMOVE_CELL]
        elif longest_table(cell) > LONG_TABLE_ROWS and SCROLL_OUTPUT not in tags:
            cell.metadata["tags"] = [*tags, SCROLL_OUTPUT]
    if parameters:
        first_markdown = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
        nb.cells.insert(first_markdown + 1, nbformat.v4.new_markdown_cell(parameters_box(parameters)))
    nbformat.write(nb, path)


def longest_table(cell) -> int:
    """Body rows of the longest HTML table among a code cell's outputs (0 for none)."""
    longest = 0
    for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
        html = output.get("data", {}).get("text/html", "")
        html = "".join(html) if isinstance(html, list) else html
        for body in re.findall(r"<tbody.*?</tbody>", html, flags=re.S):
            longest = max(longest, body.count("<tr"))
    return longest


def parameters_box(parameters: Mapping[str, Any]) -> str:
    """A collapsed MyST admonition holding a two-column table of the run's parameters."""
    rows = "\n".join(f"| `{name}` | `{_shown(value)}` |" for name, value in parameters.items())
    return (":::{admonition} Parameters of this run\n:class: dropdown\n\n"
            "| parameter | value |\n|---|---|\n" + rows + "\n:::")


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text.replace("|", "\\|").replace("`", "'")


def _set_title(nb, title: str) -> None:
    import nbformat

    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for index, line in enumerate(lines):
            if line.startswith("# "):
                lines[index] = f"# {title}"
                cell.source = "\n".join(lines)
                return
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {title}"))
