"""``python -m hicopy.cli``."""

from __future__ import annotations

from hicopy.cli.app import main

raise SystemExit(main())
