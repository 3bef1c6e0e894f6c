"""The emulator package has no import circle, counting every import: module level, in functions, under TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "offline.healthimaging"
ROOT = Path(__file__).resolve().parents[2] / "offline" / "healthimaging"


def _module(path: Path) -> str:
    return PACKAGE if path.name == "__init__.py" else f"{PACKAGE}.{path.stem}"


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports (``from offline.healthimaging import x``: module ``x`` if it is one)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PACKAGE:
                named = {f"{PACKAGE}.{alias.name}" for alias in node.names}
                found.update({m if m in modules else PACKAGE for m in named})
            elif node.module in modules:
                found.add(node.module)
    return found - {_module(path)}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    paths = sorted(root.glob("*.py"))
    modules = {_module(p) for p in paths}
    return {_module(p): _imports(p, modules) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each as the path that closes it (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_emulator_package_has_no_import_circle() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.hook" in graph[f"{PACKAGE}.emulator"]  # the graph sees the imports
    assert cycles(graph) == []


def test_the_cycle_finder_finds_circles_also_under_type_checking(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from offline.healthimaging.b import x\n")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from offline.healthimaging import a\n"
    )
    (tmp_path / "c.py").write_text("def f():\n    import offline.healthimaging.a\n")
    assert cycles(import_graph(tmp_path)) == [[f"{PACKAGE}.a", f"{PACKAGE}.b", f"{PACKAGE}.a"]]
