"""CDK (Python) infrastructure of the HealthImaging copy orchestrator.

``from infra import CopyOrchestrator, HicopyConfig`` is the API for a CDK app of your own (README, "Use it in your
own CDK app"). Both are imported on first use, so importing ``infra`` alone starts no jsii/Node process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.paths import FUNCTIONS_DIR, ROOT

if TYPE_CHECKING:
    from infra.config import HicopyConfig
    from infra.orchestrator import CopyOrchestrator

__all__ = ["FUNCTIONS_DIR", "ROOT", "CopyOrchestrator", "HicopyConfig"]


def __getattr__(name: str) -> object:
    """``CopyOrchestrator`` and ``HicopyConfig``, imported when first asked for (PEP 562)."""
    if name == "CopyOrchestrator":
        from infra.orchestrator import CopyOrchestrator

        return CopyOrchestrator
    if name == "HicopyConfig":
        from infra.config import HicopyConfig

        return HicopyConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
