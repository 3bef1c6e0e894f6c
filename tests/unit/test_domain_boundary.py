"""The domain knows no AWS SDK, no Lambda runtime and no adapter: it talks to the world through ``hicopy.domain.ports``.

Checked on the source (every import statement of every module) and at run time (importing the domain loads neither
boto3 nor botocore), for ``hicopy.domain`` and the modules it builds on (``errors``, ``contract``, ``clock``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HICOPY = Path(__file__).resolve().parents[2] / "functions" / "hicopy"
CHECKED = sorted([*(HICOPY / "domain").glob("*.py"), HICOPY / "errors.py", HICOPY / "contract.py", HICOPY / "clock.py"])
FORBIDDEN = (
    "boto3",
    "botocore",
    "mypy_boto3",
    "aws_lambda_powertools",
    "hicopy.adapters",
    "hicopy.handlers",
    "hicopy.settings",
    "hicopy.observability",
)


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports (from hicopy...)"
            names += [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            names += [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    return names


def forbidden_in(path: Path) -> list[str]:
    return [n for n in imported_modules(path) if any(n == f or n.startswith(f"{f}.") for f in FORBIDDEN)]


def test_the_check_covers_the_domain():
    assert {"ports.py", "submission.py", "pacing.py", "outcome.py"} <= {p.name for p in CHECKED}


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(HICOPY)))
def test_no_sdk_or_adapter_import(path: Path):
    assert forbidden_in(path) == [], f"{path.relative_to(HICOPY)} imports {forbidden_in(path)}: use a port"


def test_importing_the_domain_loads_no_aws_sdk():
    modules = [f"hicopy.{p.stem}" if p.parent == HICOPY else f"hicopy.domain.{p.stem}" for p in CHECKED]
    code = (
        "import importlib, sys\n"
        f"for m in {[m for m in modules if not m.endswith('__init__')]!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'aws_lambda_powertools')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(HICOPY.parent)},
    )
    assert out.stdout.strip() == "[]", out.stdout
