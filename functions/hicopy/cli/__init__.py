"""``hicopy``: the command line for a deployed copy orchestrator (see ``hicopy --help`` and docs/operating.md)."""

from __future__ import annotations

from hicopy.cli.app import main

__all__ = ["main"]
