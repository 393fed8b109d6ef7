"""The package's folders are its architecture: imports point one way, without cycles or private names.

    common  ←  engine  ←  crowd, bias  ←  book  ←  cli

Every ``import`` statement counts, at module level and inside functions alike.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "crowdkit"
TESTS = Path(__file__).resolve().parent

#: Subpackage → its layer; a module may import its own layer's subpackage and any lower layer.
LAYERS = {"common": 0, "engine": 1, "crowd": 2, "bias": 2, "book": 3, "cli": 4}
#: The root package holds only the version and lazy exports; importing the version is fine anywhere.
ROOT_NAMES_ALLOWED = {"__version__"}
MAX_MODULE_LINES = 500


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. "crowdkit.engine.faces"
    target: str  # imported module, e.g. "crowdkit.engine.detect"
    names: tuple[str, ...]  # names taken from it (empty for "import x")
    line: int

    def where(self) -> str:
        return f"{self.source} line {self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(source: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def crowdkit_modules() -> set[str]:
    return {module_name(p, PACKAGE) for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, root: Path) -> list[Import]:
    source = module_name(path, root)
    modules = crowdkit_modules()
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(source, a.name, (), node.lineno) for a in node.names if a.name.split(".")[0] == "crowdkit"]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(source, path.name == "__init__.py", node)
            if target.split(".")[0] != "crowdkit":
                continue
            names = tuple(a.name for a in node.names)
            submodules = [n for n in names if f"{target}.{n}" in modules]
            found += [Import(source, f"{target}.{n}", (), node.lineno) for n in submodules]
            rest = tuple(n for n in names if n not in submodules)
            if rest:
                found.append(Import(source, target, rest, node.lineno))
    return found


def all_imports() -> list[Import]:
    return [i for p in sorted(PACKAGE.rglob("*.py")) for i in imports_of(p, PACKAGE)]


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    stray = [m for m in crowdkit_modules() if m != "crowdkit" and layer(m) is None]
    assert not stray, f"modules outside the subpackages {sorted(LAYERS)}: {sorted(stray)}"


def test_imports_point_one_way():
    wrong = []
    for imp in all_imports():
        src, dst = layer(imp.source), layer(imp.target)
        if imp.source == "crowdkit":
            continue  # the root's lazy exports
        if dst is None:  # the root package itself
            if set(imp.names) - ROOT_NAMES_ALLOWED:
                wrong.append(f"{imp.where()}: imports {imp.names} from the root package")
            continue
        if LAYERS[dst] > LAYERS[src] or (LAYERS[dst] == LAYERS[src] and dst != src):
            wrong.append(f"{imp.where()}: {src} must not import {imp.target}")
    assert not wrong, "imports against  common ← engine ← crowd, bias ← book ← cli:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for imp in all_imports():
        if imp.target != imp.source and imp.target != "crowdkit":
            graph.setdefault(imp.source, set()).add(imp.target)
    # Importing a package runs its __init__; a submodule importing its own package's __init__ is not a cycle
    # worth reporting unless the __init__ imports back, which the graph then shows.
    visiting, done, cycles = set(), set(), []

    def visit(node: str, path: list[str]) -> None:
        if node in visiting:
            cycles.append(" → ".join(path[path.index(node):] + [node]))
            return
        if node in done:
            return
        visiting.add(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        visiting.discard(node)
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def private_uses(path: Path, root: Path) -> list[str]:
    """``from m import _x`` and ``m._x`` where ``m`` is another crowdkit module."""
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    source = module_name(path, root) if root == PACKAGE else path.name
    aliases: dict[str, str] = {}
    for imp in imports_of(path, root) if root == PACKAGE else test_imports(path):
        if imp.target == source:
            continue
        found += [f"{path.name} line {imp.line}: from {imp.target} import {n}"
                  for n in imp.names if n.startswith("_") and not n.startswith("__")]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("crowdkit"):
            for a in node.names:
                if f"{node.module}.{a.name}" in crowdkit_modules():
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("crowdkit") and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{path.name} line {node.lineno}: {aliases[node.value.id]}.{node.attr}")
    return found


def test_imports(path: Path) -> list[Import]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crowdkit"):
            found.append(Import(path.name, node.module, tuple(a.name for a in node.names), node.lineno))
    return found


test_imports.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("root", [PACKAGE, TESTS], ids=["package", "tests"])
def test_nobody_uses_another_modules_private_names(root):
    found = [u for p in sorted(root.rglob("*.py")) for u in private_uses(p, root)]
    assert not found, "private names used outside their module:\n" + "\n".join(found)


def test_no_module_is_over_the_size_limit():
    long = {module_name(p, PACKAGE): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_the_checker_sees_a_wrong_way_import(tmp_path):
    """The walk must catch an import inside a function, not only at module level."""
    fake = tmp_path / "crowdkit" / "common"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("def f():\n    from crowdkit.engine import faces\n    from ..crowd.run import _private\n")
    found = imports_of(fake / "x.py", tmp_path / "crowdkit")
    assert {(i.target, i.names) for i in found} == {("crowdkit.engine.faces", ()), ("crowdkit.crowd.run", ("_private",))}


MAX_FUNCTION_LINES = 60


def long_functions(path: Path) -> list[str]:
    """Functions (and methods) longer than the limit, docstring included, as ``module.function (n lines)``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{module_name(path, PACKAGE)}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_no_function_is_over_the_size_limit():
    long = [f for p in sorted(PACKAGE.rglob("*.py")) for f in long_functions(p)]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_test_files_have_unique_names():
    """pytest imports test files by their base name (no __init__.py in tests/): two of one name cannot both run."""
    names = [p.name for p in TESTS.rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
