"""The code reads in one sitting: no import circle anywhere in the product, and no module longer than the layout
allows (functions/ and infra/ about 400 lines, offline/ about 600).

Every import counts: module level, inside functions and under ``TYPE_CHECKING``, because a circle that only a lazy
import hides is still a circle for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"hicopy": ROOT / "functions" / "hicopy", "infra": ROOT / "infra", "offline": ROOT / "offline"}
MAX_LINES = {"hicopy": 400, "infra": 400, "offline": 600}


def module_files(packages: dict[str, Path] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of ``packages``."""
    out: dict[str, Path] = {}
    for name, root in packages.items():
        for path in sorted(root.rglob("*.py")):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the product modules it imports (``from pkg import x``: module ``pkg.x`` if it is one)."""
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named = {f"{node.module}.{alias.name}" for alias in node.names} & files.keys()
                found |= named or {node.module}
        graph[module] = {m for m in found if m in files and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle found by a depth-first search, each as the path that closes it."""
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


def test_no_import_circle_in_the_product() -> None:
    graph = import_graph(module_files())
    assert "infra.orchestrator" in graph["infra.stack"]  # the parser sees the imports
    assert "offline.healthimaging.hook" in graph["offline.healthimaging.emulator"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_circles_also_lazy_ones(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from pkg.b import x\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    (tmp_path / "c.py").write_text("def f():\n    import pkg.a\n")
    graph = import_graph(module_files({"pkg": tmp_path}))
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


@pytest.mark.parametrize("module", sorted(module_files()))
def test_no_module_is_longer_than_the_layout_allows(module: str) -> None:
    limit = MAX_LINES[module.split(".", maxsplit=1)[0]]
    lines = len(module_files()[module].read_text().splitlines())
    assert lines <= limit, f"{module}: {lines} lines (at most about {limit})"
