"""CDK (Python) infrastructure of the HealthImaging copy orchestrator."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"


def ensure_functions_importable() -> None:
    """Make the Lambda package ``hicopy`` importable, so infra shares its error names and arithmetic.

    Called by the modules that need ``hicopy`` right before importing it (no side effect at import time).
    """
    path = str(FUNCTIONS_DIR)
    if path not in sys.path:
        sys.path.append(path)
