"""Every infra module imports, and `import infra` starts no CDK (sizes, import circles: tests/unit/test_layout.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
MODULES = sorted(f"infra.{p.stem}" if p.stem != "__init__" else "infra" for p in INFRA.glob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_importing_the_package_starts_no_cdk() -> None:
    """``import infra`` (the local runtime does, on every start) loads neither aws_cdk nor its Node process."""
    code = "import sys, infra; assert 'aws_cdk' not in sys.modules and 'jsii' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=INFRA.parent, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
