"""Where the project's files are: the repository root and the Lambda code asset folder (``functions/``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
