"""Where the project's files are, and how infra reaches the Lambda package ``hicopy`` (``functions/``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"


def ensure_functions_importable() -> None:
    """Make the Lambda package ``hicopy`` importable, so infra shares its names, models and arithmetic.

    Called by the entry points (``app.py``, ``from infra import CopyOrchestrator``, the local runtime) before they
    import the infra modules that use ``hicopy``; a no-op once ``hicopy`` is on ``sys.path``.
    """
    path = str(FUNCTIONS_DIR)
    if path not in sys.path:
        sys.path.append(path)
