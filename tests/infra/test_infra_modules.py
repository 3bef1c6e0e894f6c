"""The infra package reads in one sitting: every module imports, none is over ~400 lines, and no import circles."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
MODULES = sorted(f"infra.{p.stem}" if p.stem != "__init__" else "infra" for p in INFRA.glob("*.py"))
MAX_LINES = 400


def _source(module: str) -> Path:
    return INFRA / ("__init__.py" if module == "infra" else f"{module.removeprefix('infra.')}.py")


def _imports(module: str) -> set[str]:
    """The infra modules ``module`` imports anywhere (top level, functions, ``TYPE_CHECKING`` blocks)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(_source(module).read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= (submodules & set(MODULES)) or {node.module}
    return {name for name in found if name in MODULES and name != module}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (a path that returns to its start), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_and_is_short(module: str) -> None:
    importlib.import_module(module)
    lines = len(_source(module).read_text().splitlines())
    assert lines <= MAX_LINES, f"{module}: {lines} lines"


def test_no_import_circles() -> None:
    graph = {module: _imports(module) for module in MODULES}
    assert graph["infra.stack"] >= {"infra.orchestrator"}  # the parser sees the imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_circles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_importing_the_package_starts_no_cdk() -> None:
    """``import infra`` (the local runtime does, on every start) loads neither aws_cdk nor its Node process."""
    code = "import sys, infra; assert 'aws_cdk' not in sys.modules and 'jsii' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=INFRA.parent, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
