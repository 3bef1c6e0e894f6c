"""CDK (Python) infrastructure of the HealthImaging copy orchestrator."""

from __future__ import annotations

from infra.paths import FUNCTIONS_DIR, ROOT, ensure_functions_importable

__all__ = ["FUNCTIONS_DIR", "ROOT", "ensure_functions_importable"]
