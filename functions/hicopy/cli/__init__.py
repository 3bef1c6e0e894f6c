"""``hicopy``: the command line for a deployed copy orchestrator (``hicopy --help``; README, "Operating it")."""

from __future__ import annotations

from hicopy.cli.app import main

__all__ = ["main"]
