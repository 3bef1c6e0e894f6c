"""CDK (Python) infrastructure of the HealthImaging copy orchestrator.

``from infra import CopyOrchestrator, HicopyConfig`` is the API for a CDK app of your own (README, "Use it in your
own CDK app"). Both are imported on first use, so importing ``infra`` alone starts no jsii/Node process (the local
runtime imports it for :func:`ensure_functions_importable` on every start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.paths import FUNCTIONS_DIR, ROOT, ensure_functions_importable

if TYPE_CHECKING:
    from infra.config import HicopyConfig
    from infra.orchestrator import CopyOrchestrator

__all__ = ["FUNCTIONS_DIR", "ROOT", "CopyOrchestrator", "HicopyConfig", "ensure_functions_importable"]


def __getattr__(name: str) -> object:
    """``CopyOrchestrator`` and ``HicopyConfig``, imported when first asked for (PEP 562)."""
    if name == "CopyOrchestrator":
        ensure_functions_importable()
        from infra.orchestrator import CopyOrchestrator

        return CopyOrchestrator
    if name == "HicopyConfig":
        ensure_functions_importable()
        from infra.config import HicopyConfig

        return HicopyConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
